//! Finding the real tools the tests drive; a missing one fails the test with
//! the Debian package that provides it (tests never skip silently).

use std::path::PathBuf;

/// Where `program` is on `$PATH`, or an error naming `debian_package`.
pub fn require(program: &str, debian_package: &str) -> anyhow::Result<PathBuf> {
    find(program).ok_or_else(|| {
        anyhow::anyhow!(
            "{program} is not installed; this test needs it: apt-get install {debian_package} (or run scripts/setup)"
        )
    })
}

/// Where `program` is on `$PATH`.
pub fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The workspace root (where functions/ lives).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}
