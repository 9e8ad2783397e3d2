//! A cache of compressed binary layers, keyed by what determines them (binary,
//! name, epoch): a no-change rebuild skips recompressing a few MiB.
//! It wraps the same layer-making function, as ko's caching wrappers do.

use std::path::{Path, PathBuf};

use crate::digest::sha256_digest;
use crate::image;
use crate::layer::Layer;

/// Cache directory of compressed layers (`<target-dir>/okonomi/layers`).
#[derive(Debug, Clone)]
pub struct LayerCache {
    dir: PathBuf,
}

impl LayerCache {
    /// A cache in `dir` (created on first store).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LayerCache { dir: dir.into() }
    }

    /// The cache's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// [`image::binary_layer`], served from the cache when the same inputs were seen.
    pub fn binary_layer(&self, name: &str, binary: Vec<u8>, epoch: u64) -> std::io::Result<Layer> {
        let mut key_input = format!("okonomi-binary-layer-v1\0{name}\0{epoch}\0").into_bytes();
        key_input.extend_from_slice(&binary);
        let key = sha256_digest(&key_input)
            .trim_start_matches("sha256:")
            .to_string();
        if let Some(layer) = self.load(&key) {
            return Ok(layer);
        }
        let layer = image::binary_layer(name, binary, epoch)?;
        // A cache that cannot be written is only slower: ignore the error.
        let _ = self.store(&key, &layer);
        Ok(layer)
    }

    fn load(&self, key: &str) -> Option<Layer> {
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.dir.join(format!("{key}.json"))).ok()?)
                .ok()?;
        let compressed = std::fs::read(self.dir.join(format!("{key}.tar.gz"))).ok()?;
        let digest = sha256_digest(&compressed);
        // A truncated or altered entry is a miss, never a wrong layer.
        if meta["digest"] != digest.as_str() {
            return None;
        }
        Some(Layer {
            compressed,
            digest,
            diff_id: meta["diff_id"].as_str()?.to_string(),
            comment: meta["comment"].as_str()?.to_string(),
        })
    }

    fn store(&self, key: &str, layer: &Layer) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let meta = serde_json::json!({"digest": layer.digest, "diff_id": layer.diff_id, "comment": layer.comment});
        // Write then rename: concurrent builds never read half a file.
        for (suffix, data) in [
            ("tar.gz", layer.compressed.clone()),
            ("json", serde_json::to_vec(&meta).unwrap_or_default()),
        ] {
            let tmp = self
                .dir
                .join(format!("{key}.{suffix}.{}", std::process::id()));
            std::fs::write(&tmp, data)?;
            std::fs::rename(&tmp, self.dir.join(format!("{key}.{suffix}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hit_equals_a_fresh_layer_and_corruption_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LayerCache::new(dir.path().join("layers"));
        let fresh = cache.binary_layer("f", b"binary".to_vec(), 5).unwrap();
        let cached = cache.binary_layer("f", b"binary".to_vec(), 5).unwrap();
        assert_eq!(
            (cached.digest.as_str(), cached.diff_id.as_str()),
            (fresh.digest.as_str(), fresh.diff_id.as_str())
        );
        assert_eq!(cached.compressed, fresh.compressed);
        let entries = std::fs::read_dir(cache.dir()).unwrap().count();
        assert_eq!(entries, 2, "one layer and its metadata");
        for entry in std::fs::read_dir(cache.dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "gz") {
                std::fs::write(&path, b"garbage").unwrap();
            }
        }
        let rebuilt = cache.binary_layer("f", b"binary".to_vec(), 5).unwrap();
        assert_eq!(rebuilt.digest, fresh.digest);
        assert_ne!(
            cache
                .binary_layer("f", b"binary".to_vec(), 6)
                .unwrap()
                .digest,
            fresh.digest
        );
    }
}
