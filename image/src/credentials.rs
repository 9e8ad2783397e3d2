//! Registry credentials the way docker finds them: `~/.docker/config.json`
//! (`$DOCKER_CONFIG`), its `credHelpers` per registry, its `credsStore`, then `auths`.

use std::path::PathBuf;
use std::process::Stdio;

use base64::Engine;
use oci_client::secrets::RegistryAuth;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::error::{Error, Result};

/// Credentials for one registry, with where they came from (for error messages).
#[derive(Clone)]
pub struct Credential {
    /// What to send.
    pub auth: RegistryAuth,
    /// Where it came from, e.g. `basic auth for "ci" from /root/.docker/config.json (auths)`.
    pub source: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret itself.
        f.debug_struct("Credential")
            .field("source", &self.source)
            .finish()
    }
}

impl Credential {
    /// No credentials.
    pub fn anonymous(why: &str) -> Self {
        Credential {
            auth: RegistryAuth::Anonymous,
            source: format!("none (anonymous: {why})"),
        }
    }
}

/// The docker config file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
}

/// Finds credentials for `host` (e.g. `ghcr.io` or `127.0.0.1:5000`).
pub async fn lookup(host: &str) -> Result<Credential> {
    let Some(path) = docker_config_path() else {
        return Ok(Credential::anonymous("no HOME or DOCKER_CONFIG"));
    };
    let text = match tokio::fs::read_to_string(&path).await {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Credential::anonymous(&format!(
                "{} does not exist",
                path.display()
            )));
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    let config: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::Credentials {
            registry: host.into(),
            message: format!("{} is not valid JSON: {e}", path.display()),
        })?;
    if let Some(helper) = config["credHelpers"]
        .as_object()
        .and_then(|helpers| helpers.iter().find(|(k, _)| same_registry(k, host)))
        .and_then(|(_, v)| v.as_str())
    {
        return helper_get(helper, host, &format!("{} (credHelpers)", path.display())).await;
    }
    if let Some(entry) = config["auths"]
        .as_object()
        .and_then(|auths| auths.iter().find(|(k, _)| same_registry(k, host)))
        .map(|(_, v)| v)
    {
        let from = format!("{} (auths)", path.display());
        if let Some(token) = entry["registrytoken"].as_str() {
            return Ok(Credential {
                auth: RegistryAuth::Bearer(token.into()),
                source: format!("registry token from {from}"),
            });
        }
        let (user, pass) = match entry["auth"].as_str() {
            Some(encoded) => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| Error::Credentials {
                        registry: host.into(),
                        message: format!(
                            "the auth of {host} in {from} is not base64 of user:password"
                        ),
                    })?;
                let (u, p) = decoded.split_once(':').unwrap_or((decoded.as_str(), ""));
                (u.to_string(), p.to_string())
            }
            None => (
                entry["username"].as_str().unwrap_or_default().to_string(),
                entry["password"].as_str().unwrap_or_default().to_string(),
            ),
        };
        if !user.is_empty() {
            return Ok(Credential {
                source: format!("basic auth for user {user:?} from {from}"),
                auth: RegistryAuth::Basic(user, pass),
            });
        }
    }
    if let Some(store) = config["credsStore"].as_str() {
        return helper_get(store, host, &format!("{} (credsStore)", path.display())).await;
    }
    Ok(Credential::anonymous(&format!(
        "no entry for {host} in {}",
        path.display()
    )))
}

/// Runs `docker-credential-NAME get` with the registry on stdin.
async fn helper_get(name: &str, host: &str, from: &str) -> Result<Credential> {
    let program = format!("docker-credential-{name}");
    let fail = |message: String| Error::Credentials {
        registry: host.into(),
        message,
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(format!(
                "{from} names the helper {program}, which could not run: {e}"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(host.as_bytes())
            .await
            .map_err(|e| fail(format!("{program}: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| fail(format!("{program}: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // Helpers answer "credentials not found" for registries they do not know.
        if stdout.contains("not found")
            || String::from_utf8_lossy(&out.stderr).contains("not found")
        {
            return Ok(Credential::anonymous(&format!(
                "{program} has no credentials for {host}"
            )));
        }
        return Err(fail(format!(
            "{program} get failed ({}): {}{}",
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let answer: serde_json::Value = serde_json::from_str(&stdout)
        .map_err(|e| fail(format!("{program} get printed invalid JSON: {e}")))?;
    let user = answer["Username"].as_str().unwrap_or_default().to_string();
    let secret = answer["Secret"].as_str().unwrap_or_default().to_string();
    Ok(Credential {
        source: format!("{program} (user {user:?}) from {from}"),
        auth: RegistryAuth::Basic(user, secret),
    })
}

/// Whether a docker config key (`https://host/v1/`, `host`) names `host`.
fn same_registry(key: &str, host: &str) -> bool {
    let key = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let key = key.split('/').next().unwrap_or(key);
    key == host || (host == "index.docker.io" && key == "docker.io")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys_match_hosts() {
        assert!(same_registry("https://ghcr.io", "ghcr.io"));
        assert!(same_registry(
            "https://index.docker.io/v1/",
            "index.docker.io"
        ));
        assert!(same_registry("127.0.0.1:5000", "127.0.0.1:5000"));
        assert!(!same_registry("127.0.0.1:5001", "127.0.0.1:5000"));
    }
}
