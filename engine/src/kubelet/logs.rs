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

/// The directory of a revision's logs under the state dir (grouped by the
/// service, or configuration, the revision belongs to).
pub fn revision_dir(state_dir: &Path, namespace: &str, service: &str, revision: &str) -> PathBuf {
    state_dir
        .join("logs")
        .join(namespace)
        .join(service)
        .join(revision)
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
}
