//! Each Pod's container log, as the kubelet keeps it: one file per run
//! (`POD.log`), the run before it kept as `POD.previous.log` for
//! `kubectl logs --previous`, every line stamped with when it was written.
//! [`read`] serves `pods/log`: `--tail`, `--since`, and `-f` following the
//! file until the Pod is gone.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use jiff::Timestamp;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// How often a followed log is read again for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// The log of the current run of `pod`.
pub fn current(dir: &Path, pod: &str) -> PathBuf {
    dir.join(format!("{pod}.log"))
}

/// The log of the run before the current one.
pub fn previous(dir: &Path, pod: &str) -> PathBuf {
    dir.join(format!("{pod}.previous.log"))
}

/// Opens the log of a new run of `pod`; the last run's log becomes the
/// previous one.
pub async fn open_run(dir: &Path, pod: &str) -> std::io::Result<(PathBuf, tokio::fs::File)> {
    tokio::fs::create_dir_all(dir).await?;
    let path = current(dir, pod);
    match tokio::fs::rename(&path, previous(dir, pod)).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .await?;
    Ok((path, file))
}

/// One line of a log file, `TIME [POD] TEXT`: its time and text (with a
/// newline).
pub fn parse(line: &str) -> Option<(Timestamp, Bytes)> {
    let (time, rest) = line.split_once(' ')?;
    let time: Timestamp = time.parse().ok()?;
    let text = match rest.strip_prefix('[').and_then(|r| r.split_once("] ")) {
        Some((_, text)) => text,
        None => rest
            .strip_prefix('[')
            .map_or(rest, |r| r.split_once(']').map_or(rest, |(_, text)| text)),
    };
    Some((time, Bytes::from(format!("{text}\n"))))
}

/// What to read of one log file.
#[derive(Debug, Clone, Default)]
pub struct Read {
    /// Only the last this many lines.
    pub tail: Option<u64>,
    /// Only lines at or after.
    pub since: Option<Timestamp>,
    /// Keep reading new lines while `alive` says the Pod runs.
    pub follow: bool,
}

/// A line and when it was written.
pub type Line = (Timestamp, Bytes);

/// The lines of the log at `path` as `read` asks; when following, new lines
/// as they are written until `alive()` is false (then what was written last
/// is sent and the stream ends).
pub async fn read(
    path: PathBuf,
    read: Read,
    alive: Arc<dyn Fn() -> bool + Send + Sync>,
) -> std::io::Result<BoxStream<'static, std::io::Result<Line>>> {
    let mut file = tokio::fs::File::open(&path).await?;
    let mut text = String::new();
    file.read_to_string(&mut text).await?;
    // A line still being written stays for the next read.
    let complete = text.rfind('\n').map_or(0, |i| i + 1);
    let offset = complete as u64;
    let mut lines: VecDeque<Line> = text[..complete]
        .lines()
        .filter_map(parse)
        .filter(|(time, _)| read.since.is_none_or(|since| *time >= since))
        .collect();
    if let Some(tail) = read.tail {
        let tail = usize::try_from(tail).unwrap_or(usize::MAX);
        while lines.len() > tail {
            lines.pop_front();
        }
    }
    let first = stream::iter(lines.into_iter().map(Ok));
    if !read.follow {
        return Ok(first.boxed());
    }
    let state = (file, offset, read.since, alive, false);
    let rest = stream::unfold(
        state,
        |(mut file, mut offset, since, alive, done)| async move {
            if done {
                return None;
            }
            loop {
                // Read the liveness first: lines written before the Pod went are
                // still sent.
                let running = alive();
                let mut more = String::new();
                let read = async {
                    file.seek(std::io::SeekFrom::Start(offset)).await?;
                    file.read_to_string(&mut more).await
                };
                if let Err(error) = read.await {
                    return Some((vec![Err(error)], (file, offset, since, alive, true)));
                }
                let complete = more.rfind('\n').map_or(0, |i| i + 1);
                offset += complete as u64;
                let lines: Vec<std::io::Result<Line>> = more[..complete]
                    .lines()
                    .filter_map(parse)
                    .filter(|(time, _)| since.is_none_or(|since| *time >= since))
                    .map(Ok)
                    .collect();
                if !lines.is_empty() || !running {
                    return Some((lines, (file, offset, since, alive, !running)));
                }
                tokio::time::sleep(FOLLOW_POLL).await;
            }
        },
    )
    .flat_map(stream::iter);
    Ok(first.chain(rest).boxed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn lines_parse_into_time_and_text() {
        let (time, text) = parse("2026-12-02T08:00:00.5Z [pod-abcde] hello world").unwrap();
        assert_eq!(time.to_string(), "2026-12-02T08:00:00.5Z");
        assert_eq!(text, Bytes::from("hello world\n"));
        assert!(parse("not a line").is_none());
    }

    #[tokio::test]
    async fn a_new_run_keeps_the_last_one_as_previous_and_tail_and_since_apply() {
        let dir = tempfile::tempdir().unwrap();
        let write = |path: PathBuf, text: &str| std::fs::write(path, text).unwrap();
        let (path, _) = open_run(dir.path(), "p").await.unwrap();
        write(
            path.clone(),
            "2026-12-02T08:00:00Z [p] one\n2026-12-02T08:00:01Z [p] two\n2026-12-02T08:00:02Z [p] three\n",
        );
        let (path, _) = open_run(dir.path(), "p").await.unwrap();
        write(path.clone(), "2026-12-02T09:00:00Z [p] again\n");
        let never = Arc::new(|| false);
        let all = |path: PathBuf, options: Read| {
            let never = never.clone();
            async move {
                read(path, options, never)
                    .await
                    .unwrap()
                    .map(|l| l.unwrap().1)
                    .collect::<Vec<_>>()
                    .await
            }
        };
        assert_eq!(
            all(path.clone(), Read::default()).await,
            vec![Bytes::from("again\n")]
        );
        let previous = previous(dir.path(), "p");
        let tail = Read {
            tail: Some(2),
            ..Read::default()
        };
        assert_eq!(
            all(previous.clone(), tail).await,
            vec![Bytes::from("two\n"), Bytes::from("three\n")]
        );
        let since = Read {
            since: Some("2026-12-02T08:00:01Z".parse().unwrap()),
            ..Read::default()
        };
        assert_eq!(all(previous, since).await.len(), 2);
    }

    #[tokio::test]
    async fn following_sends_new_lines_until_the_pod_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = open_run(dir.path(), "p").await.unwrap();
        std::fs::write(&path, "2026-12-02T08:00:00Z [p] first\n").unwrap();
        let running = Arc::new(AtomicBool::new(true));
        let alive = {
            let running = running.clone();
            Arc::new(move || running.load(Ordering::SeqCst))
        };
        let follow = Read {
            follow: true,
            ..Read::default()
        };
        let mut lines = read(path.clone(), follow, alive).await.unwrap();
        assert_eq!(
            lines.next().await.unwrap().unwrap().1,
            Bytes::from("first\n")
        );
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"2026-12-02T08:00:01Z [p] second\n")
            .unwrap();
        assert_eq!(
            lines.next().await.unwrap().unwrap().1,
            Bytes::from("second\n")
        );
        running.store(false, Ordering::SeqCst);
        assert!(lines.next().await.is_none());
    }
}
