//! The real services the tests start on loopback: docker-registry (CNCF
//! distribution), open or behind htpasswd users, for the images okonomi
//! pushes, and redis-server for the counter function. Each stops when
//! dropped. The suite here, the CLI's tests and the counter's tests all
//! start them through this module.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{Guard, wait_for_port};
use crate::tools::{free_port, require};

/// A docker-registry on 127.0.0.1.
#[derive(Debug)]
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// The port it listens on.
    pub port: u16,
    dir: tempfile::TempDir,
    auth: String,
    process: Guard,
}

impl Registry {
    /// Starts an open registry with its storage in a temporary directory.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with_users(&[])
    }

    /// Starts a registry that asks for HTTP basic auth, accepting exactly
    /// `users` (`(name, password)` pairs, stored bcrypt-hashed by htpasswd);
    /// with no users it is open.
    pub fn start_with_users(users: &[(&str, &str)]) -> anyhow::Result<Self> {
        let binary = require("docker-registry", "docker-registry")?;
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let auth = if users.is_empty() {
            String::new()
        } else {
            let htpasswd = dir.path().join("htpasswd");
            write_htpasswd(&htpasswd, users)?;
            format!(
                "auth:\n  htpasswd:\n    realm: okonomi-test\n    path: {}\n",
                htpasswd.display()
            )
        };
        let process = spawn_registry(&binary, dir.path(), port, &auth, false)?;
        Ok(Self {
            address: format!("127.0.0.1:{port}"),
            port,
            dir,
            auth,
            process,
        })
    }

    /// Restarts the registry on the same port and storage in distribution's
    /// read-only maintenance mode: what it has stays readable, and every
    /// write (blob upload, manifest put) is refused.
    pub fn restart_read_only(&mut self) -> anyhow::Result<()> {
        let binary = require("docker-registry", "docker-registry")?;
        self.process.stop(Duration::from_secs(10));
        self.process = spawn_registry(&binary, self.dir.path(), self.port, &self.auth, true)?;
        Ok(())
    }

    /// `127.0.0.1:PORT/okonomi`: the `--registry` prefix okonomi pushes under.
    pub fn prefix(&self) -> String {
        format!("{}/okonomi", self.address)
    }
}

fn spawn_registry(
    binary: &std::path::Path,
    dir: &std::path::Path,
    port: u16,
    auth: &str,
    read_only: bool,
) -> anyhow::Result<Guard> {
    let maintenance = if read_only {
        "  maintenance:\n    readonly:\n      enabled: true\n"
    } else {
        ""
    };
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n{maintenance}http:\n  addr: 127.0.0.1:{port}\n{auth}",
            dir.join("data").display()
        ),
    )?;
    let process = Guard::spawn(
        "docker-registry",
        Command::new(binary)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    wait_for_port(port, Duration::from_secs(20), "docker-registry")?;
    Ok(process)
}

/// Writes an htpasswd file with bcrypt entries (the only hash docker-registry accepts).
fn write_htpasswd(path: &std::path::Path, users: &[(&str, &str)]) -> anyhow::Result<()> {
    let htpasswd = require("htpasswd", "apache2-utils")?;
    for (index, (user, password)) in users.iter().enumerate() {
        // -c creates the file for the first user; the others are added to it.
        let flags = if index == 0 { "-Bbc" } else { "-Bb" };
        let output = Command::new(&htpasswd)
            .arg(flags)
            .arg(path)
            .args([user, password])
            .output()?;
        if !output.status.success() {
            anyhow::bail!(
                "htpasswd {flags} {} {user} failed: {}",
                path.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    Ok(())
}

/// A redis-server on 127.0.0.1 without persistence.
#[derive(Debug)]
pub struct Redis {
    /// The port.
    pub port: u16,
    process: Guard,
}

impl Redis {
    /// Starts redis-server on a free port.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_on(free_port()?)
    }

    /// Starts redis-server on `port` (e.g. one a client was already told about).
    pub fn start_on(port: u16) -> anyhow::Result<Self> {
        Ok(Self {
            port,
            process: spawn_redis(port)?,
        })
    }

    /// Stops the server (SIGTERM, then SIGKILL) and waits until it has exited,
    /// so clients see it gone.
    pub fn stop(&mut self) {
        self.process.stop(Duration::from_secs(10));
    }

    /// Starts a fresh, empty server on the same port (after [`Redis::stop`];
    /// a still-running server is stopped first).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.process = spawn_redis(self.port)?;
        Ok(())
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `GET key` through redis-cli (from redis-tools, which redis-server pulls in).
    pub fn get(&self, key: &str) -> anyhow::Result<String> {
        let cli: PathBuf = require("redis-cli", "redis-tools")?;
        let output = Command::new(cli)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "GET", key])
            .output()?;
        if !output.status.success() {
            anyhow::bail!(
                "redis-cli GET {key} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }
}

fn spawn_redis(port: u16) -> anyhow::Result<Guard> {
    let binary = require("redis-server", "redis-server")?;
    let process = Guard::spawn(
        "redis-server",
        Command::new(binary)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    wait_for_port(port, Duration::from_secs(20), "redis-server")?;
    Ok(process)
}
