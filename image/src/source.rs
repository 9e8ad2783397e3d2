//! Facts about the sources that go into labels and timestamps: the epoch
//! (`SOURCE_DATE_EPOCH`, else the last commit touching the crate, else 0) and the revision.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

/// Where the image's timestamps and revision come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceInfo {
    /// Seconds since the Unix epoch for every mtime and `created`.
    pub epoch: u64,
    /// The git commit of the crate's last change, if in git.
    pub revision: Option<String>,
    /// The source repository URL, if known.
    pub source: Option<String>,
}

/// Reads `SOURCE_DATE_EPOCH` and git facts for the crate at `dir`.
///
/// The commit is the last one that touched the crate's directory, not HEAD:
/// unrelated commits elsewhere in a repository then do not change the digest.
pub async fn source_info(dir: &Path, repository: Option<&str>) -> SourceInfo {
    let env_epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok());
    let last_commit = git(dir, &["log", "-1", "--format=%H %ct", "--", "."]).await;
    let (revision, commit_time) = match last_commit.as_deref().and_then(|s| s.split_once(' ')) {
        Some((rev, time)) => (Some(rev.to_string()), time.trim().parse::<u64>().ok()),
        None => (None, None),
    };
    let source = match repository {
        Some(r) => Some(r.to_string()),
        None => git(dir, &["config", "--get", "remote.origin.url"]).await,
    };
    SourceInfo {
        epoch: env_epoch.or(commit_time).unwrap_or(0),
        revision,
        source,
    }
}

async fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}
