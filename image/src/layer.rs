//! Reproducible filesystem layers: sorted tar entries with fixed owners and
//! mtimes, gzip with no timestamp or name, so the same inputs give the same digest.

use std::collections::BTreeMap;
use std::io::Write;

use flate2::{Compression, GzBuilder};

use crate::digest::sha256_digest;

/// The uid and gid the function runs as (distroless's "nonroot").
pub const NONROOT_ID: u64 = 65532;

/// One entry of a layer, by path inside the image (no leading slash).
#[derive(Debug, Clone)]
pub enum Entry {
    /// A directory.
    Dir {
        /// Permission bits, e.g. 0o755.
        mode: u32,
        /// Owner uid and gid.
        owner: u64,
    },
    /// A regular file.
    File {
        /// Contents.
        data: Vec<u8>,
        /// Permission bits.
        mode: u32,
        /// Owner uid and gid.
        owner: u64,
    },
}

/// A layer being assembled: entries are kept sorted by path.
#[derive(Debug, Default, Clone)]
pub struct LayerBuilder {
    entries: BTreeMap<String, Entry>,
}

/// A finished, compressed layer.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The gzip-compressed tar (the blob pushed to a registry).
    pub compressed: Vec<u8>,
    /// `sha256:…` of `compressed` (the manifest's layer digest).
    pub digest: String,
    /// `sha256:…` of the uncompressed tar (the config's diff_id).
    pub diff_id: String,
    /// What the layer holds, for the image history.
    pub comment: String,
}

impl LayerBuilder {
    /// An empty layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory (and its missing parents, as 0755 root directories).
    pub fn dir(&mut self, path: &str, mode: u32, owner: u64) -> &mut Self {
        self.parents(path);
        self.entries
            .insert(normalize(path), Entry::Dir { mode, owner });
        self
    }

    /// Adds a file owned by root (and its missing parents).
    pub fn file(&mut self, path: &str, data: Vec<u8>, mode: u32) -> &mut Self {
        self.parents(path);
        self.entries.insert(
            normalize(path),
            Entry::File {
                data,
                mode,
                owner: 0,
            },
        );
        self
    }

    fn parents(&mut self, path: &str) {
        let path = normalize(path);
        let mut prefix = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            prefix.push_str(part);
            self.entries.entry(prefix.clone()).or_insert(Entry::Dir {
                mode: 0o755,
                owner: 0,
            });
            prefix.push('/');
        }
    }

    /// Writes the tar with every mtime set to `epoch`, compresses it and digests both.
    pub fn finish(&self, epoch: u64, comment: &str) -> std::io::Result<Layer> {
        let tar = self.tar(epoch)?;
        let diff_id = sha256_digest(&tar);
        // Fixed level, no mtime, no file name, fixed OS byte: a pure function of the tar.
        let mut gz = GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(Vec::with_capacity(tar.len() / 2), Compression::best());
        gz.write_all(&tar)?;
        let compressed = gz.finish()?;
        Ok(Layer {
            digest: sha256_digest(&compressed),
            diff_id,
            compressed,
            comment: comment.to_string(),
        })
    }

    fn tar(&self, epoch: u64) -> std::io::Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, entry) in &self.entries {
            let mut header = tar::Header::new_ustar();
            header.set_mtime(epoch);
            match entry {
                Entry::Dir { mode, owner } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_uid(*owner);
                    header.set_gid(*owner);
                    header.set_size(0);
                    builder.append_data(&mut header, format!("{path}/"), std::io::empty())?;
                }
                Entry::File { data, mode, owner } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_uid(*owner);
                    header.set_gid(*owner);
                    header.set_size(data.len() as u64);
                    builder.append_data(&mut header, path, data.as_slice())?;
                }
            }
        }
        builder.into_inner()
    }
}

fn normalize(path: &str) -> String {
    path.trim_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(layer: &Layer) -> Vec<(String, u64, u64, u32)> {
        let tar = flate2::read::GzDecoder::new(layer.compressed.as_slice());
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.mtime().unwrap(),
                    h.uid().unwrap(),
                    h.mode().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn same_entries_in_any_order_give_the_same_digest() {
        let mut a = LayerBuilder::new();
        a.file("etc/b", b"b".to_vec(), 0o644)
            .file("etc/a", b"a".to_vec(), 0o644);
        let mut b = LayerBuilder::new();
        b.file("/etc/a", b"a".to_vec(), 0o644)
            .file("etc/b", b"b".to_vec(), 0o644);
        let (la, lb) = (a.finish(42, "x").unwrap(), b.finish(42, "x").unwrap());
        assert_eq!(la.digest, lb.digest);
        assert_eq!(la.diff_id, lb.diff_id);
        assert_ne!(la.digest, la.diff_id);
        let entries = listing(&la);
        let paths: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(paths, ["etc/", "etc/a", "etc/b"]);
        assert!(entries.iter().all(|e| e.1 == 42 && e.2 == 0));
        // A different epoch is a different layer.
        assert_ne!(a.finish(43, "x").unwrap().digest, la.digest);
    }

    #[test]
    fn directories_keep_mode_and_owner() {
        let mut l = LayerBuilder::new();
        l.dir("tmp", 0o1777, 0)
            .dir("home/nonroot", 0o700, NONROOT_ID);
        let entries = listing(&l.finish(0, "base").unwrap());
        assert!(
            entries.contains(&("tmp/".into(), 0, 0, 0o1777)),
            "{entries:?}"
        );
        assert!(
            entries.contains(&("home/nonroot/".into(), 0, NONROOT_ID, 0o700)),
            "{entries:?}"
        );
        assert!(
            entries.contains(&("home/".into(), 0, 0, 0o755)),
            "{entries:?}"
        );
    }
}
