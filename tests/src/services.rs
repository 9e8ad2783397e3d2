//! The real services the suite starts on loopback: docker-registry (CNCF
//! distribution) for the images `okonomi deploy` pushes, and redis-server
//! for the counter function. Each stops when dropped.

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
    _dir: tempfile::TempDir,
    _process: Guard,
}

impl Registry {
    /// Starts a registry with its storage in a temporary directory.
    pub fn start() -> anyhow::Result<Self> {
        let binary = require("docker-registry", "docker-registry")?;
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
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
        Ok(Self {
            address: format!("127.0.0.1:{port}"),
            _dir: dir,
            _process: process,
        })
    }
}

/// A redis-server on 127.0.0.1 without persistence.
#[derive(Debug)]
pub struct Redis {
    /// The port.
    pub port: u16,
    _process: Guard,
}

impl Redis {
    /// Starts redis-server on a free port.
    pub fn start() -> anyhow::Result<Self> {
        let binary = require("redis-server", "redis-server")?;
        let port = free_port()?;
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
        Ok(Self {
            port,
            _process: process,
        })
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
