//! Source changes of a function crate, debounced: what `okonomi run` rebuilds
//! and restarts on, and what `okonomi dev` redeploys on.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Watches a crate's directory for changes to its sources.
pub struct SourceWatcher {
    // Dropping the watcher stops the notifications: kept for that alone.
    _watcher: notify::RecommendedWatcher,
    changes: mpsc::Receiver<()>,
}

impl SourceWatcher {
    /// Starts watching `dir` recursively.
    pub fn new(dir: &Path) -> anyhow::Result<Self> {
        // One slot: a pending change already means "rebuild"; more fold into it.
        let (tx, changes) = mpsc::channel::<()>(1);
        let root = dir.to_path_buf();
        let mut watcher =
            notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
                // Reads are not changes: rustc opening the sources must not trigger a rebuild.
                if let Ok(event) = result
                    && !matches!(event.kind, EventKind::Access(_))
                    && event.paths.iter().any(|p| is_source(&root, p))
                {
                    let _ = tx.try_send(());
                }
            })
            .context("starting the file watcher")?;
        watcher
            .watch(dir, RecursiveMode::Recursive)
            .with_context(|| format!("watching {}", dir.display()))?;
        Ok(Self {
            _watcher: watcher,
            changes,
        })
    }

    /// Waits for a change, then for `quiet` without one (an editor's save is
    /// often several writes), so one burst of writes is one rebuild. `None`
    /// when the watcher has stopped.
    pub async fn next_change(&mut self, quiet: Duration) -> Option<()> {
        self.changes.recv().await?;
        while let Ok(Some(())) = tokio::time::timeout(quiet, self.changes.recv()).await {}
        Some(())
    }
}

/// Changes under target/ or hidden directories are build output, not sources;
/// so is Cargo.lock, which cargo itself rewrites during the build.
fn is_source(root: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else {
        return true;
    };
    // The directory itself changes when target/ appears.
    if rel.as_os_str().is_empty() || rel == Path::new("Cargo.lock") {
        return false;
    }
    !rel.components().any(|c| {
        let s = c.as_os_str().to_string_lossy();
        s == "target" || s.starts_with('.')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_output_is_not_a_source() {
        let root = Path::new("/f");
        assert!(is_source(root, Path::new("/f/src/main.rs")));
        assert!(is_source(root, Path::new("/f/okonomi.toml")));
        assert!(!is_source(root, Path::new("/f/target/debug/f")));
        assert!(!is_source(root, Path::new("/f/.git/index")));
        assert!(!is_source(root, Path::new("/f/Cargo.lock")));
        assert!(!is_source(root, Path::new("/f")));
    }

    #[tokio::test]
    async fn a_write_to_a_source_is_a_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("src")).expect("mkdir");
        let mut watcher = SourceWatcher::new(dir.path()).expect("watch");
        for i in 0..5 {
            std::fs::write(dir.path().join("src/main.rs"), format!("// {i}")).expect("write");
        }
        let quiet = Duration::from_millis(200);
        tokio::time::timeout(Duration::from_secs(10), watcher.next_change(quiet))
            .await
            .expect("a change within 10 s")
            .expect("watcher alive");
    }
}
