//! What a killed engine leaves running, and stopping it on the next start.
//!
//! Instances get SIGTERM when the engine dies (`PR_SET_PDEATHSIG`), but one
//! that ignores SIGTERM, a process it forked, or a podman container whose
//! `podman run` client was killed would outlive it, holding ports and
//! memory. So every running instance has a record under the state dir
//! (`run/instances/`): its process group and start time, and its container
//! name. A clean stop removes the record; [`reap`] on the next start kills
//! whatever the remaining records still name.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::container;

/// One running instance, as written to its record file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The instance's process, also its process group (instances start in
    /// a group of their own).
    pub pid: u32,
    /// Field 22 of `/proc/PID/stat`: with the pid, names the process even
    /// after the pid is reused.
    pub start_time: u64,
    /// The podman container, for the container runtime.
    #[serde(default)]
    pub container: Option<String>,
}

impl Record {
    /// The record of a process that runs now; `None` when it is already
    /// gone.
    pub fn of(pid: u32, container: Option<String>) -> Option<Self> {
        Some(Self {
            pid,
            start_time: start_time(pid)?,
            container,
        })
    }
}

/// The directory of instance records under a state dir.
pub fn records_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("run").join("instances")
}

/// The record file of one instance (`NAMESPACE.REVISION.ID.json`: none of
/// the three has a dot).
pub fn record_path(dir: &Path, namespace: &str, revision: &str, instance: &str) -> PathBuf {
    dir.join(format!("{namespace}.{revision}.{instance}.json"))
}

/// Writes a record (a failure is logged: it only weakens the clean-up
/// after a crash).
pub async fn write(path: &Path, record: &Record) {
    let result = async {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let json = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        tokio::fs::write(path, json).await
    }
    .await;
    if let Err(error) = result {
        tracing::warn!(path = %path.display(), %error, "cannot write the instance record");
    }
}

/// Removes a record once its instance is gone.
pub async fn remove(path: &Path) {
    match tokio::fs::remove_file(path).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot remove the instance record")
        }
    }
}

/// The start time of a live process, from `/proc/PID/stat`.
fn start_time(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: the
    // fields after it start behind the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Whether the record's process group may be signalled: its leader is the
/// recorded process, or the leader is gone (a pid stays unused while a
/// process group of that number exists, so what is left of the group is
/// still the instance's).
fn group_is_ours(record: &Record) -> bool {
    if !Path::new(&format!("/proc/{}", record.pid)).exists() {
        return true;
    }
    start_time(record.pid).is_none_or(|t| t == record.start_time)
}

/// Kills what the records under `dir` still name (process groups by
/// SIGKILL, containers by `podman rm --force`) and removes the records.
/// Returns how many instances were still running.
pub async fn reap(dir: &Path) -> usize {
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(_) => return 0,
    };
    let mut reaped = 0;
    while let Ok(Some(entry)) = entries.next_entry().await {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let record = tokio::fs::read(&path)
            .await
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Record>(&bytes).ok());
        if let Some(record) = record {
            if kill_group(&record) {
                reaped += 1;
                tracing::warn!(pid = record.pid, record = %path.display(), "killed an instance left running by an engine that did not stop cleanly");
            }
            if let Some(name) = &record.container {
                container::remove(name).await;
            }
        }
        remove(&path).await;
    }
    reaped
}

/// SIGKILLs the record's process group; true when something was there.
fn kill_group(record: &Record) -> bool {
    let Ok(group) = libc::pid_t::try_from(record.pid) else {
        return false;
    };
    if group <= 1 || !group_is_ours(record) {
        return false;
    }
    // SAFETY: kill(2) has no memory-safety preconditions; a negative pid
    // names the process group the instance was started in.
    unsafe { libc::kill(-group, libc::SIGKILL) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    #[test]
    fn records_round_trip() {
        let record = Record::of(std::process::id(), Some("okonomi-x".into())).unwrap();
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), record);
    }

    /// A process in a group of its own, as the supervisor starts instances.
    fn spawn_in_own_group(script: &str) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap()
    }

    /// Live (not zombie) members of process group `group`.
    fn group_members(group: u32) -> Vec<u32> {
        let mut members = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let rest = &text[text.rfind(')').unwrap() + 1..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields[0] != "Z" && fields[2].parse::<u32>().ok() == Some(group) {
                members.push(pid);
            }
        }
        members
    }

    #[tokio::test]
    async fn reap_kills_a_recorded_process_group_that_ignores_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        // A shell that ignores SIGTERM, with a child of its own: what a
        // stubborn instance looks like to the engine.
        let mut leader = spawn_in_own_group("trap '' TERM; sleep 300 & wait");
        let group = leader.id();
        let deadline = Instant::now() + Duration::from_secs(30);
        while group_members(group).len() < 2 {
            assert!(
                Instant::now() < deadline,
                "the shell did not start its child"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let record = Record::of(group, None).unwrap();
        let path = record_path(dir.path(), "default", "hello-00001", "1-abcdef");
        write(&path, &record).await;
        assert!(path.is_file());

        assert_eq!(reap(dir.path()).await, 1);
        while leader.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the recorded shell survived");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The whole group goes, the shell's child too.
        while !group_members(group).is_empty() {
            assert!(
                Instant::now() < deadline,
                "processes of the group survived: {:?}",
                group_members(group)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!path.exists(), "the record is removed");
        // Nothing left: the next start reaps nothing.
        assert_eq!(reap(dir.path()).await, 0);
    }

    #[tokio::test]
    async fn a_record_whose_pid_was_reused_kills_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut other = spawn_in_own_group("sleep 300");
        // The record names the pid with another start time: the instance
        // died and an unrelated process got its pid since.
        let mut record = Record::of(other.id(), None).unwrap();
        record.start_time += 1;
        let path = record_path(dir.path(), "default", "hello-00001", "2-abcdef");
        write(&path, &record).await;
        assert_eq!(reap(dir.path()).await, 0);
        assert!(!path.exists());
        assert!(
            other.try_wait().unwrap().is_none(),
            "an unrelated process was killed"
        );
        other.kill().unwrap();
        other.wait().unwrap();
    }
}
