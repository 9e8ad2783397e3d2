//! Per-instance logs: the last lines in memory (for status messages) and
//! every line in a file under the state dir (for `okonomi logs NAME`).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};

/// Lines kept in memory per revision.
const RING_LINES: usize = 200;

/// The in-memory tail of a revision's instance logs, shared by its instances.
#[derive(Debug, Clone, Default)]
pub struct LogRing {
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl LogRing {
    /// Appends a line, dropping the oldest beyond capacity.
    pub fn push(&self, line: String) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == RING_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The last `n` lines.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines
            .iter()
            .skip(lines.len().saturating_sub(n))
            .cloned()
            .collect()
    }
}

/// Copies a child's output line by line into the ring and the log file.
pub async fn pump(
    reader: impl AsyncRead + Unpin,
    ring: LogRing,
    file: Arc<tokio::sync::Mutex<tokio::fs::File>>,
    prefix: String,
) {
    let mut lines = BufReader::new(reader).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let stamped = format!("{} {prefix} {line}\n", jiff::Timestamp::now());
        {
            let mut file = file.lock().await;
            // A full disk must not take the instance down: the ring still
            // has the line.
            let _ = file.write_all(stamped.as_bytes()).await;
            let _ = file.flush().await;
        }
        ring.push(format!("{prefix} {line}"));
    }
}

/// Opens (appending) the log file of one instance.
pub async fn open(dir: &Path, instance: &str) -> std::io::Result<(PathBuf, tokio::fs::File)> {
    tokio::fs::create_dir_all(dir).await?;
    let path = dir.join(format!("{instance}.log"));
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .await?;
    Ok((path, file))
}

/// The directory of a revision's logs under the state dir (grouped by the
/// service, or configuration, the revision belongs to).
pub fn revision_dir(state_dir: &Path, namespace: &str, service: &str, revision: &str) -> PathBuf {
    state_dir
        .join("logs")
        .join(namespace)
        .join(service)
        .join(revision)
}

/// Reads the last `tail` lines of every instance log of the revisions of
/// `service` in `namespace`, oldest first. This reads files only, so `okonomi logs NAME` works from another
/// process than the engine's.
pub fn read_service_logs(
    state_dir: &Path,
    namespace: &str,
    service: &str,
    tail: usize,
) -> std::io::Result<Vec<String>> {
    let service_dir = state_dir.join("logs").join(namespace).join(service);
    let mut lines = Vec::new();
    let entries = match std::fs::read_dir(&service_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(lines),
        Err(e) => return Err(e),
    };
    for revision in entries.flatten() {
        for file in std::fs::read_dir(revision.path())?.flatten() {
            let text = std::fs::read_to_string(file.path())?;
            lines.extend(text.lines().map(str::to_string));
        }
    }
    // Lines start with an RFC 3339 timestamp: sorting interleaves instances.
    lines.sort();
    let skip = lines.len().saturating_sub(tail);
    Ok(lines.split_off(skip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_last_lines() {
        let ring = LogRing::default();
        for i in 0..(RING_LINES + 5) {
            ring.push(format!("line {i}"));
        }
        let tail = ring.tail(2);
        assert_eq!(
            tail,
            vec![
                format!("line {}", RING_LINES + 3),
                format!("line {}", RING_LINES + 4)
            ]
        );
    }

    #[tokio::test]
    async fn logs_are_found_by_service_name() {
        let dir = tempfile::tempdir().unwrap();
        let rev_dir = revision_dir(dir.path(), "default", "hello", "hello-00001");
        let (_, file) = open(&rev_dir, "i1").await.unwrap();
        let file = Arc::new(tokio::sync::Mutex::new(file));
        pump(
            &b"first\nsecond\n"[..],
            LogRing::default(),
            file,
            "[i1]".into(),
        )
        .await;
        let other = revision_dir(dir.path(), "default", "hello-world", "hello-world-00001");
        let (_, f) = open(&other, "i2").await.unwrap();
        pump(
            &b"not mine\n"[..],
            LogRing::default(),
            Arc::new(tokio::sync::Mutex::new(f)),
            "[i2]".into(),
        )
        .await;
        let lines = read_service_logs(dir.path(), "default", "hello", 10).unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].ends_with("[i1] first"));
        assert!(lines[1].ends_with("[i1] second"));
    }
}
