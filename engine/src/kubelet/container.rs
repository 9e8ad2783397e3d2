//! The container runtime: the image under `podman --runtime runc`, as uid
//! 65532 with a read-only root and a writable /tmp, on the host network
//! (netavark is not available here) at the port the engine chose.

use std::process::Stdio;

use tokio::process::Command;

use super::env::Environment;
use super::volumes::Mount;
use crate::error::{Error, Result};

fn tls_flag(image: &str) -> &'static str {
    let registry = image.split('/').next().unwrap_or_default();
    let host = registry.rsplit_once(':').map_or(registry, |(h, _)| h);
    if host == "127.0.0.1" || host == "localhost" {
        "--tls-verify=false"
    } else {
        "--tls-verify=true"
    }
}

/// Pulls the image into podman's store ahead of the first instance, so cold
/// starts do not include the download.
pub async fn pull(image: &str) -> Result<()> {
    let output = Command::new("podman")
        .args(["pull", "--quiet", tls_flag(image), image])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| Error::Image {
            reference: image.to_string(),
            message: format!("running podman (install the Debian package `podman`): {e}"),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Image {
            reference: image.to_string(),
            message: format!(
                "podman pull failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })
    }
}

/// The podman command line running one instance. `entrypoint` and `args`
/// are the container's `command` and `args`, with Kubernetes' meaning: a
/// command replaces the image's Entrypoint and drops its Cmd (podman does
/// the same when `--entrypoint` is given), args replace the Cmd.
pub fn command(
    name: &str,
    image: &str,
    entrypoint: &[String],
    args: &[String],
    env: &Environment,
    mounts: &[Mount],
) -> Command {
    let mut command = Command::new("podman");
    command.args([
        "--runtime",
        "runc",
        "run",
        "--rm",
        "--replace",
        "--name",
        name,
        "--network",
        "host",
        "--user",
        "65532",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--pull",
        "never",
    ]);
    // podman's default rlimits (1048576) may exceed what this process may
    // grant; pass the engine's own, which are always allowed.
    // nproc cannot be set to the engine's own here (runc is refused), only
    // lowered: 4096 processes is plenty for one function instance.
    for (name, resource, cap) in [
        ("nofile", libc::RLIMIT_NOFILE, u64::MAX),
        ("nproc", libc::RLIMIT_NPROC, 4096),
    ] {
        let (soft, hard) = rlimit(resource).unwrap_or((cap.min(1024), cap.min(1024)));
        let (soft, hard) = (soft.min(cap), hard.min(cap));
        command.arg("--ulimit").arg(format!("{name}={soft}:{hard}"));
    }
    // `--env NAME` takes the value from podman's own environment, so no
    // value (a Secret's, say) is on a command line `ps` shows.
    for name in env.names() {
        command.arg("--env").arg(name);
    }
    command.envs(env.0.iter().cloned());
    for mount in mounts {
        let mode = if mount.read_only { "ro" } else { "rw" };
        command.arg("--volume").arg(format!(
            "{}:{}:{mode}",
            mount.source.display(),
            mount.target
        ));
    }
    if !entrypoint.is_empty() {
        // The JSON array form keeps each argument whole (spaces included).
        let json = serde_json::to_string(entrypoint).unwrap_or_default();
        command.arg("--entrypoint").arg(json);
    }
    command.arg(image);
    command.args(args);
    command
}

fn rlimit(resource: libc::__rlimit_resource_t) -> Option<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; no other
    // preconditions.
    let ok = unsafe { libc::getrlimit(resource, &mut limit) } == 0;
    let finite = |v: libc::rlim_t| (v != libc::RLIM_INFINITY).then_some(v);
    if ok {
        Some((finite(limit.rlim_cur)?, finite(limit.rlim_max)?))
    } else {
        None
    }
}

/// Removes a container left behind (say, by a killed engine).
pub async fn remove(name: &str) {
    let _ = Command::new("podman")
        .args(["rm", "--force", "--ignore", name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(command: &Command) -> Vec<String> {
        command
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn command_replaces_the_entrypoint_and_args_follow_the_image() {
        let strings = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let run = command(
            "okonomi-x",
            "127.0.0.1:5000/a@sha256:1",
            &strings(&["/app/argv", "two words"]),
            &strings(&["--flag"]),
            &Environment::default(),
            &[],
        );
        let args = argv(&run);
        let at = args.iter().position(|a| a == "--entrypoint").unwrap();
        assert_eq!(args[at + 1], r#"["/app/argv","two words"]"#);
        let image = args
            .iter()
            .position(|a| a == "127.0.0.1:5000/a@sha256:1")
            .unwrap();
        assert!(at < image, "options go before the image: {args:?}");
        assert_eq!(args[image + 1..], ["--flag"]);

        // Without a command the image's Entrypoint stays.
        let run = command(
            "okonomi-x",
            "img",
            &[],
            &strings(&["--flag"]),
            &Environment::default(),
            &[],
        );
        let args = argv(&run);
        assert!(!args.contains(&"--entrypoint".to_string()), "{args:?}");
        assert_eq!(args.last().map(String::as_str), Some("--flag"));
    }
}
