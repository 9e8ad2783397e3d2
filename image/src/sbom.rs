//! Software bills of materials for a built image: every crate that went into the
//! binary (the dependency set cargo resolved for the target platform and the
//! features enabled, normal dependencies only, as `cargo tree -e normal --target T`
//! shows it), with its Cargo.lock checksum and its licence, plus the files of the
//! base layer. Written as SPDX 2.3 JSON ([`spdx`]) and CycloneDX 1.6 JSON
//! ([`cyclonedx`]); both are pure functions of the [`Sbom`], so the same sources
//! give the same bytes.

pub mod cyclonedx;
pub mod spdx;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::process::Stdio;

use cargo_metadata::{DependencyKind, Metadata, PackageId};
use sha2::Digest;
use tokio::process::Command;

use crate::cargo::FunctionCrate;
use crate::error::{Error, Result};
use crate::platform::Platform;

/// Media type of an SPDX JSON document (the IANA registration).
pub const SPDX_MEDIA_TYPE: &str = "application/spdx+json";
/// Media type of a CycloneDX JSON document (the IANA registration).
pub const CYCLONEDX_MEDIA_TYPE: &str = "application/vnd.cyclonedx+json";

/// Where crates.io's crates come from in Cargo.lock and cargo metadata.
const CRATES_IO: &str = "registry+https://github.com/rust-lang/crates.io-index";

/// One crate in the binary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Crate {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// SHA-256 (hex) of the `.crate` file, from Cargo.lock; none for path crates.
    pub checksum: Option<String>,
    /// The licence as an SPDX expression (cargo's old `A/B` form becomes `A OR B`);
    /// none when the manifest declares none (or only a licence file).
    pub license: Option<String>,
    /// Where it was downloaded from: crates.io's download URL, a git URL, or none
    /// for path crates.
    pub download: Option<String>,
    /// Purls of the crates it depends on (normal dependencies), sorted.
    pub depends_on: Vec<String>,
}

impl Crate {
    /// Its package URL, `pkg:cargo/NAME@VERSION`.
    pub fn purl(&self) -> String {
        format!("pkg:cargo/{}@{}", self.name, self.version)
    }
}

/// One file of the image (the base layer's and the binary).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct File {
    /// Absolute path inside the image, e.g. `/etc/passwd`.
    pub path: String,
    /// SHA-1 (hex); SPDX 2.3 requires it for every file.
    pub sha1: String,
    /// SHA-256 (hex).
    pub sha256: String,
    /// The platform whose image holds it, when an index has several (the binary).
    pub platform: Option<String>,
}

impl File {
    /// Digests `data` as the file at `path`.
    pub fn new(path: &str, data: &[u8]) -> Self {
        File {
            path: path.to_string(),
            sha1: hex::encode(sha1::Sha1::digest(data)),
            sha256: hex::encode(sha2::Sha256::digest(data)),
            platform: None,
        }
    }

    /// A reference unique in the document: `file:PATH`, with `?platform=…` in an index.
    pub fn bom_ref(&self) -> String {
        match &self.platform {
            Some(p) => format!("file:{}?platform={p}", self.path),
            None => format!("file:{}", self.path),
        }
    }
}

/// What an image is made of: the input of both SBOM formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sbom {
    /// The image name (the repository's last component).
    pub image: String,
    /// `sha256:…` of the image's top-level manifest or index.
    pub image_digest: String,
    /// The function crate itself (its `depends_on` are its direct dependencies).
    pub function: Crate,
    /// Every other crate in the binary, sorted by name and version.
    pub crates: Vec<Crate>,
    /// Files of the image, sorted by path: the binary (`/app/NAME`) and the base layer's.
    pub files: Vec<File>,
    /// Seconds since the epoch: the documents' creation time (SOURCE_DATE_EPOCH).
    pub epoch: u64,
}

impl Sbom {
    /// The binary's file entry (`/app/NAME`), if recorded.
    pub fn binary(&self) -> Option<&File> {
        self.files.iter().find(|f| f.path.starts_with("/app/"))
    }

    /// A digest of the content, for identifiers that must differ between
    /// documents and stay the same for the same content (SPDX namespace, CycloneDX serial).
    fn content_id(&self) -> String {
        let mut h = sha2::Sha256::new();
        h.update(self.image_digest.as_bytes());
        for c in std::iter::once(&self.function).chain(&self.crates) {
            h.update(c.purl().as_bytes());
            h.update(c.checksum.as_deref().unwrap_or("-").as_bytes());
        }
        for f in &self.files {
            h.update(f.path.as_bytes());
            h.update(f.sha256.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

/// cargo's resolve graph for one target platform, with Cargo.lock's checksums.
#[derive(Debug, Clone)]
pub struct Resolved {
    metadata: Metadata,
    checksums: Checksums,
    manifest_path: std::path::PathBuf,
}

impl Resolved {
    /// The crates compiled into `root`'s binary: reachable from it over normal
    /// dependencies in the resolve graph, and among the packages the build really
    /// compiled (`compiled`, package ids from cargo's messages). The graph alone
    /// would also list crates that other workspace members' features pull in.
    /// The function crate comes first, then the others sorted.
    pub fn crates(&self, root: &str, compiled: &BTreeSet<String>) -> Result<(Crate, Vec<Crate>)> {
        dependency_set(&self.metadata, root, &self.checksums, compiled).map_err(|e| {
            Error::Metadata {
                path: self.manifest_path.clone(),
                message: e.to_string(),
            }
        })
    }
}

/// Reads cargo's resolve graph of `function` for `platform` with `features`.
pub async fn resolve(
    function: &FunctionCrate,
    platform: Platform,
    features: &[String],
) -> Result<Resolved> {
    let mut cmd = Command::new("cargo");
    cmd.args(["metadata", "--format-version", "1"])
        .arg("--filter-platform")
        .arg(platform.rust_target())
        .arg("--manifest-path")
        .arg(&function.manifest_path);
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| Error::Spawn {
            program: "cargo metadata".into(),
            source,
        })?;
    let metadata_error = |message: String| Error::Metadata {
        path: function.manifest_path.clone(),
        message,
    };
    if !output.status.success() {
        return Err(metadata_error(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ));
    }
    let metadata: Metadata =
        serde_json::from_slice(&output.stdout).map_err(|e| metadata_error(e.to_string()))?;
    let lock_path = metadata.workspace_root.as_std_path().join("Cargo.lock");
    let lock = tokio::fs::read_to_string(&lock_path)
        .await
        .map_err(|e| Error::io(&lock_path, e))?;
    let checksums = lock_checksums(&lock, &lock_path)?;
    Ok(Resolved {
        metadata,
        checksums,
        manifest_path: function.manifest_path.clone(),
    })
}

/// Checksums from Cargo.lock by `(name, version, source)`.
type Checksums = BTreeMap<(String, String, String), String>;

fn lock_checksums(text: &str, path: &Path) -> Result<Checksums> {
    #[derive(serde::Deserialize)]
    struct Lock {
        #[serde(default)]
        package: Vec<Locked>,
    }
    #[derive(serde::Deserialize)]
    struct Locked {
        name: String,
        version: String,
        source: Option<String>,
        checksum: Option<String>,
    }
    let lock: Lock = toml::from_str(text).map_err(|e| Error::Metadata {
        path: path.to_path_buf(),
        message: format!("Cargo.lock is not valid TOML: {e}"),
    })?;
    Ok(lock
        .package
        .into_iter()
        .filter_map(|p| Some(((p.name, p.version, p.source?), p.checksum?)))
        .collect())
}

/// Why the dependency walk could not finish (cargo printed something unexpected).
#[derive(Debug, thiserror::Error)]
enum WalkError {
    #[error("package {0} is not in cargo metadata's package list")]
    NoPackage(String),
    #[error("cargo metadata has no resolve graph (was --no-deps given?)")]
    NoResolve,
}

/// Walks the resolve graph from the package named `root` over normal dependencies.
fn dependency_set(
    metadata: &Metadata,
    root: &str,
    checksums: &Checksums,
    compiled: &BTreeSet<String>,
) -> std::result::Result<(Crate, Vec<Crate>), WalkError> {
    let resolve = metadata.resolve.as_ref().ok_or(WalkError::NoResolve)?;
    let packages: BTreeMap<&PackageId, &cargo_metadata::Package> =
        metadata.packages.iter().map(|p| (&p.id, p)).collect();
    let root_id = metadata
        .workspace_members
        .iter()
        .find(|id| packages.get(id).is_some_and(|p| p.name.as_str() == root))
        .ok_or_else(|| WalkError::NoPackage(root.to_string()))?;
    let nodes: BTreeMap<&PackageId, &cargo_metadata::Node> =
        resolve.nodes.iter().map(|n| (&n.id, n)).collect();
    // Normal dependencies only: build scripts' and dev dependencies do not end up
    // in the binary. --filter-platform already dropped other targets' edges.
    let normal_deps = |id: &PackageId| -> Vec<&PackageId> {
        nodes
            .get(id)
            .map(|n| {
                n.deps
                    .iter()
                    .filter(|d| {
                        d.dep_kinds.iter().any(|k| k.kind == DependencyKind::Normal)
                            && compiled.contains(&d.pkg.repr)
                    })
                    .map(|d| &d.pkg)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut seen = BTreeSet::from([root_id]);
    let mut queue = VecDeque::from([root_id]);
    while let Some(id) = queue.pop_front() {
        for dep in normal_deps(id) {
            if seen.insert(dep) {
                queue.push_back(dep);
            }
        }
    }
    let make = |id: &PackageId| -> std::result::Result<Crate, WalkError> {
        let p = packages
            .get(id)
            .ok_or_else(|| WalkError::NoPackage(id.repr.clone()))?;
        let source = p.source.as_ref().map(|s| s.repr.clone());
        let checksum = source
            .as_ref()
            .and_then(|s| checksums.get(&(p.name.to_string(), p.version.to_string(), s.clone())))
            .cloned();
        let download = match source.as_deref() {
            Some(CRATES_IO) => Some(format!(
                "https://crates.io/api/v1/crates/{}/{}/download",
                p.name, p.version
            )),
            Some(s) => s
                .strip_prefix("git+")
                .map(|url| format!("git+{}", url.split('#').next().unwrap_or(url))),
            None => None,
        };
        let mut depends_on: Vec<String> = normal_deps(id)
            .into_iter()
            .filter_map(|d| packages.get(d))
            .map(|d| format!("pkg:cargo/{}@{}", d.name, d.version))
            .collect();
        depends_on.sort();
        depends_on.dedup();
        Ok(Crate {
            name: p.name.to_string(),
            version: p.version.to_string(),
            checksum,
            license: p.license.as_deref().map(spdx_expression),
            download,
            depends_on,
        })
    };
    let function = make(root_id)?;
    let mut crates = seen
        .into_iter()
        .filter(|id| *id != root_id)
        .map(make)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    crates.sort();
    crates.dedup_by(|a, b| a.name == b.name && a.version == b.version);
    Ok((function, crates))
}

/// Cargo's licence field as an SPDX expression: the deprecated `MIT/Apache-2.0`
/// form means `MIT OR Apache-2.0`.
pub fn spdx_expression(license: &str) -> String {
    license
        .split('/')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// Merges the crates of several platforms (an index): the union, sorted.
pub fn merge(mut sets: Vec<(Crate, Vec<Crate>)>) -> Option<(Crate, Vec<Crate>)> {
    let (mut function, mut crates) = sets.pop()?;
    for (f, c) in sets {
        function.depends_on.extend(f.depends_on);
        crates.extend(c);
    }
    function.depends_on.sort();
    function.depends_on.dedup();
    crates.sort();
    crates.dedup_by(|a, b| {
        let same = a.name == b.name && a.version == b.version;
        if same {
            // Keep every platform's edges of the same crate.
            b.depends_on.append(&mut a.depends_on);
            b.depends_on.sort();
            b.depends_on.dedup();
        }
        same
    });
    Some((function, crates))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_licence_syntax_becomes_an_spdx_expression() {
        assert_eq!(spdx_expression("MIT/Apache-2.0"), "MIT OR Apache-2.0");
        assert_eq!(spdx_expression("MIT OR Apache-2.0"), "MIT OR Apache-2.0");
        assert_eq!(
            spdx_expression("Apache-2.0 WITH LLVM-exception"),
            "Apache-2.0 WITH LLVM-exception"
        );
    }

    #[test]
    fn lock_checksums_are_keyed_by_name_version_and_source() {
        let lock = format!(
            "version = 4\n[[package]]\nname = \"a\"\nversion = \"1.0.0\"\nsource = \"{CRATES_IO}\"\nchecksum = \"ab\"\n[[package]]\nname = \"local\"\nversion = \"0.1.0\"\n"
        );
        let sums = lock_checksums(&lock, Path::new("Cargo.lock")).unwrap();
        assert_eq!(sums.len(), 1);
        assert_eq!(sums[&("a".into(), "1.0.0".into(), CRATES_IO.into())], "ab");
        let err = lock_checksums("[[package]", Path::new("Cargo.lock"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("Cargo.lock is not valid TOML"), "{err}");
    }
}
