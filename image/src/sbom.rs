//! Software bills of materials for a built image, in SPDX 2.3 JSON and
//! CycloneDX 1.6 JSON.
//!
//! What is listed is what went into the image, not the whole lock file:
//! - the crates linked into the binary, as `cargo tree -e normal --target T`
//!   resolves them for each platform with the features asked for (the same
//!   feature resolution as the `cargo build` that made the binary). Build
//!   dependencies, dev-dependencies and proc-macros (with what only they use)
//!   run on the build host and are not linked, so they are left out;
//! - the base layer's files (passwd, group, nsswitch.conf, the CA bundle).
//!
//! Each crate has its package URL (`pkg:cargo/NAME@VERSION`), the checksum
//! Cargo.lock records for it, and the licence its manifest declares.
//!
//! Both documents are written by hand with serde_json: there is no
//! maintained Rust crate that writes SPDX 2.3, and the CycloneDX crates pull
//! in far more than these two small documents need. They are pure functions
//! of the image: no wall-clock time (the creation time is the image's
//! epoch), no random ids (namespaces and serial numbers derive from the
//! image digest), everything sorted.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;

use serde_json::json;
use tokio::process::Command;

use crate::cargo::FunctionCrate;
use crate::digest::sha256_digest;
use crate::error::{Error, Result};
use crate::platform::Platform;

/// Media type (and OCI artifact type) of an SPDX JSON document.
pub const SPDX_MEDIA_TYPE: &str = "application/spdx+json";
/// Media type (and OCI artifact type) of a CycloneDX JSON document.
pub const CYCLONEDX_MEDIA_TYPE: &str = "application/vnd.cyclonedx+json";
/// The in-toto predicate type of an SPDX document (what `cosign attest --type spdxjson` writes).
pub const SPDX_PREDICATE_TYPE: &str = "https://spdx.dev/Document";
/// The in-toto predicate type of a CycloneDX document (`cosign attest --type cyclonedx`).
pub const CYCLONEDX_PREDICATE_TYPE: &str = "https://cyclonedx.org/bom";

/// Where a crate came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum CrateSource {
    /// crates.io (or another registry), with Cargo.lock's checksum.
    Registry {
        /// `sha256` hex from Cargo.lock, if recorded.
        checksum: Option<String>,
    },
    /// A path dependency (the function itself, the okonomi runtime in a workspace).
    Path,
    /// A git dependency, with its URL as cargo prints it.
    Git {
        /// `URL#COMMIT`.
        url: String,
    },
}

/// One crate linked into the binary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Crate {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Its source and checksum.
    pub source: CrateSource,
    /// The licence expression from its manifest (SPDX syntax), if any.
    pub license: Option<String>,
}

impl Crate {
    /// `pkg:cargo/NAME@VERSION`.
    pub fn purl(&self) -> String {
        format!("pkg:cargo/{}@{}", self.name, self.version)
    }
}

/// The crates of a binary and who depends on whom.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// The function crate (the root of the graph).
    pub root: Option<(String, String)>,
    /// Every crate, by `(name, version)`.
    pub crates: BTreeMap<(String, String), Crate>,
    /// `(dependent, dependency)` edges.
    pub edges: BTreeSet<((String, String), (String, String))>,
    /// The rustc targets the binary was resolved for.
    pub targets: BTreeSet<String>,
    /// The directories of path dependencies (the crate, a workspace's runtime):
    /// the local sources provenance checks for uncommitted changes.
    pub local_dirs: BTreeSet<std::path::PathBuf>,
}

/// A regular file of the base layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseFile {
    /// Path in the image, without the leading slash.
    pub path: String,
    /// `sha256` hex of its contents.
    pub sha256: String,
}

impl BaseFile {
    /// The base layer's files from what [`crate::image::base_files`] lays down.
    pub fn list(files: &[(&str, Vec<u8>)]) -> Vec<BaseFile> {
        files
            .iter()
            .map(|(path, data)| BaseFile {
                path: (*path).to_string(),
                sha256: hex_of(&sha256_digest(data)),
            })
            .collect()
    }
}

/// What both documents describe.
#[derive(Debug, Clone)]
pub struct SbomInput<'a> {
    /// The image name (repository's last component).
    pub name: &'a str,
    /// `sha256:…` of the image's top-level manifest or index.
    pub digest: &'a str,
    /// The image's epoch: the documents' creation time.
    pub epoch: u64,
    /// The crates.
    pub inventory: &'a Inventory,
    /// The base layer's files.
    pub base: &'a [BaseFile],
}

/// The two SBOMs of one image, as the bytes that are pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sboms {
    /// SPDX 2.3 JSON.
    pub spdx: Vec<u8>,
    /// CycloneDX 1.6 JSON.
    pub cyclonedx: Vec<u8>,
}

impl Sboms {
    /// Writes both documents.
    pub fn new(input: &SbomInput<'_>) -> Self {
        Sboms {
            spdx: spdx(input),
            cyclonedx: cyclonedx(input),
        }
    }
}

fn hex_of(digest: &str) -> String {
    digest.trim_start_matches("sha256:").to_string()
}

/// `pkg:oci/NAME@sha256%3A…`: the image's package URL.
pub fn image_purl(name: &str, digest: &str) -> String {
    format!("pkg:oci/{name}@{}", digest.replace(':', "%3A"))
}

/// Resolves the crates linked into the function's binary for each platform
/// (`cargo tree`, run where `cargo build` runs, with the same features).
pub async fn inventory(
    function: &FunctionCrate,
    platforms: &[Platform],
    features: &[String],
) -> Result<Inventory> {
    let lock_path = function.workspace_root.join("Cargo.lock");
    let lock = match tokio::fs::read_to_string(&lock_path).await {
        Ok(text) => lock_checksums(&text).map_err(|message| Error::Inventory {
            what: "reading Cargo.lock".into(),
            path: lock_path.clone(),
            message,
        })?,
        // cargo build wrote it; without one, no checksums can be given.
        Err(_) => BTreeMap::new(),
    };
    let mut inventory = Inventory::default();
    for platform in platforms {
        let target = platform.rust_target();
        let mut cmd = Command::new("cargo");
        cmd.args([
            "tree", "-e", "normal", "--prefix", "depth", "--target", target,
        ])
        .args(["-f", "{p}|{l}"]);
        if !features.is_empty() {
            cmd.arg("--features").arg(features.join(","));
        }
        if function.in_workspace() {
            cmd.arg("-p")
                .arg(&function.package)
                .current_dir(&function.workspace_root);
        } else {
            cmd.current_dir(&function.dir);
        }
        let output = cmd
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|source| Error::Spawn {
                program: "cargo tree".into(),
                source,
            })?;
        if !output.status.success() {
            return Err(Error::Inventory {
                what: format!("cargo tree for {target}"),
                path: function.manifest_path.clone(),
                message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        parse_tree(
            &String::from_utf8_lossy(&output.stdout),
            &lock,
            &mut inventory,
        );
        inventory.targets.insert(target.to_string());
    }
    Ok(inventory)
}

/// `(name, version) -> checksum` from a Cargo.lock.
pub fn lock_checksums(
    text: &str,
) -> std::result::Result<BTreeMap<(String, String), String>, String> {
    let lock: toml::Value = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for package in lock
        .get("package")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
    {
        let field = |k: &str| package.get(k).and_then(toml::Value::as_str);
        if let (Some(name), Some(version), Some(checksum)) =
            (field("name"), field("version"), field("checksum"))
        {
            out.insert(
                (name.to_string(), version.to_string()),
                checksum.to_string(),
            );
        }
    }
    Ok(out)
}

/// Adds the crates and edges of one `cargo tree --prefix depth -f '{p}|{l}'`
/// listing to `inventory`, leaving out proc-macros and what only they pull in.
pub fn parse_tree(
    text: &str,
    lock: &BTreeMap<(String, String), String>,
    inventory: &mut Inventory,
) {
    // The path from the root to the current line: (depth, key, excluded).
    let mut stack: Vec<(usize, (String, String), bool)> = Vec::new();
    for line in text.lines() {
        let digits = line.chars().take_while(char::is_ascii_digit).count();
        let Ok(depth) = line[..digits].parse::<usize>() else {
            continue;
        };
        let rest = line[digits..].trim_end();
        let rest = rest.strip_suffix(" (*)").unwrap_or(rest);
        let (package, license) = rest.split_once('|').unwrap_or((rest, ""));
        let mut words = package.split(' ');
        let (Some(name), Some(version)) = (words.next(), words.next()) else {
            continue;
        };
        let version = version.trim_start_matches('v').to_string();
        let notes: Vec<&str> = words.collect();
        let proc_macro = notes.contains(&"(proc-macro)");
        let location = notes
            .iter()
            .find(|n| **n != "(proc-macro)")
            .map(|n| n.trim_start_matches('(').trim_end_matches(')').to_string());
        while stack.last().is_some_and(|(d, _, _)| *d >= depth) {
            stack.pop();
        }
        let parent = stack.last().cloned();
        let excluded = proc_macro || parent.as_ref().is_some_and(|p| p.2);
        let key = (name.to_string(), version.clone());
        stack.push((depth, key.clone(), excluded));
        if excluded {
            continue;
        }
        let source = match &location {
            None => CrateSource::Registry {
                checksum: lock.get(&key).cloned(),
            },
            Some(l) if l.starts_with('/') => {
                inventory.local_dirs.insert(std::path::PathBuf::from(l));
                CrateSource::Path
            }
            Some(l) if l.contains("://") && !l.starts_with("registry+") => {
                CrateSource::Git { url: l.clone() }
            }
            Some(_) => CrateSource::Registry {
                checksum: lock.get(&key).cloned(),
            },
        };
        let license = normalize_license(license);
        inventory.crates.entry(key.clone()).or_insert(Crate {
            name: name.to_string(),
            version,
            source,
            license,
        });
        match parent {
            Some((_, parent, _)) => {
                inventory.edges.insert((parent, key));
            }
            None => {
                inventory.root.get_or_insert(key);
            }
        }
    }
}

/// Cargo's old `MIT/Apache-2.0` form as an SPDX expression; `None` when empty.
fn normalize_license(text: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let parts: Vec<&str> = text.split('/').map(str::trim).collect();
    Some(if parts.len() > 1 {
        parts.join(" OR ")
    } else {
        text.to_string()
    })
}

/// A licence expression the SPDX tools accept: ids, `AND`/`OR`/`WITH`, parentheses.
fn spdx_license(license: &Option<String>) -> String {
    match license {
        Some(l)
            if l.chars()
                .all(|c| c.is_ascii_alphanumeric() || " .-+()".contains(c)) =>
        {
            l.clone()
        }
        _ => "NOASSERTION".to_string(),
    }
}

/// An SPDX id from free text: `[A-Za-z0-9.-]` only.
fn spdx_id(prefix: &str, index: usize, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("SPDXRef-{prefix}-{index}-{clean}")
}

fn okonomi_tool() -> String {
    format!("okonomi-{}", env!("CARGO_PKG_VERSION"))
}

/// The SPDX 2.3 JSON document.
pub fn spdx(input: &SbomInput<'_>) -> Vec<u8> {
    let created = crate::image::rfc3339(input.epoch);
    let image_id = "SPDXRef-Image".to_string();
    let mut packages = vec![json!({
        "SPDXID": image_id,
        "name": input.name,
        "versionInfo": input.digest,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [{"algorithm": "SHA256", "checksumValue": hex_of(input.digest)}],
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": image_purl(input.name, input.digest),
        }],
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": image_id,
    })];
    let ids: BTreeMap<&(String, String), String> = input
        .inventory
        .crates
        .keys()
        .enumerate()
        .map(|(i, key)| (key, spdx_id("Crate", i, &key.0)))
        .collect();
    for (key, krate) in &input.inventory.crates {
        let id = &ids[key];
        let is_root = input.inventory.root.as_ref() == Some(key);
        let mut package = json!({
            "SPDXID": id,
            "name": krate.name,
            "versionInfo": krate.version,
            "downloadLocation": match &krate.source {
                CrateSource::Registry { .. } => format!(
                    "https://crates.io/api/v1/crates/{}/{}/download", krate.name, krate.version),
                CrateSource::Git { url } => format!("git+{url}"),
                CrateSource::Path => "NOASSERTION".to_string(),
            },
            "filesAnalyzed": false,
            "primaryPackagePurpose": if is_root { "APPLICATION" } else { "LIBRARY" },
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": spdx_license(&krate.license),
            "copyrightText": "NOASSERTION",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": krate.purl(),
            }],
        });
        if let CrateSource::Registry {
            checksum: Some(checksum),
        } = &krate.source
        {
            package["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": checksum}]);
        }
        packages.push(package);
        if is_root {
            relationships.push(json!({
                "spdxElementId": image_id,
                "relationshipType": "CONTAINS",
                "relatedSpdxElement": id,
            }));
        }
    }
    for (from, to) in &input.inventory.edges {
        if let (Some(from), Some(to)) = (ids.get(from), ids.get(to)) {
            relationships.push(json!({
                "spdxElementId": from,
                "relationshipType": "DEPENDS_ON",
                "relatedSpdxElement": to,
            }));
        }
    }
    for (i, file) in input.base.iter().enumerate() {
        let id = spdx_id("Base", i, &file.path);
        packages.push(json!({
            "SPDXID": id,
            "name": format!("/{}", file.path),
            "versionInfo": format!("sha256:{}", file.sha256),
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "FILE",
            "checksums": [{"algorithm": "SHA256", "checksumValue": file.sha256}],
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "comment": base_comment(&file.path),
        }));
        relationships.push(json!({
            "spdxElementId": image_id,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    let document = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}@{}", input.name, input.digest),
        // Unique per image, and the same for every build of the same image.
        "documentNamespace": format!(
            "https://okonomi.dev/spdx/{}/{}", input.name, input.digest.replace(':', "-")),
        "creationInfo": {
            "created": created,
            "creators": [format!("Tool: {}", okonomi_tool())],
            "comment": format!(
                "Crates linked into the binary for {}; base layer files of the okonomi image.",
                input.inventory.targets.iter().cloned().collect::<Vec<_>>().join(", ")),
        },
        "packages": packages,
        "relationships": relationships,
    });
    serde_json::to_vec_pretty(&document).unwrap_or_default()
}

fn base_comment(path: &str) -> &'static str {
    if path.ends_with("ca-certificates.crt") {
        "CA certificate bundle copied from the build host into the okonomi base layer"
    } else {
        "written by okonomi into its base layer"
    }
}

/// A UUID-shaped serial number derived from the image digest (version 5 and
/// the RFC 4122 variant bits set, as CycloneDX's schema pattern asks).
fn serial_number(digest: &str) -> String {
    let h = hex_of(&sha256_digest(format!("okonomi sbom {digest}").as_bytes()));
    let b = h.as_bytes();
    let s = |r: std::ops::Range<usize>| String::from_utf8_lossy(&b[r]).into_owned();
    let variant = match b[16] {
        b'0'..=b'3' => '8',
        b'4'..=b'7' => '9',
        b'8' | b'9' | b'a' | b'b' => 'a',
        _ => 'b',
    };
    format!(
        "urn:uuid:{}-{}-5{}-{}{}-{}",
        s(0..8),
        s(8..12),
        s(13..16),
        variant,
        s(17..20),
        s(20..32)
    )
}

/// The CycloneDX 1.6 JSON document.
pub fn cyclonedx(input: &SbomInput<'_>) -> Vec<u8> {
    let image_ref = image_purl(input.name, input.digest);
    let mut components = Vec::new();
    let mut dependencies = Vec::new();
    let mut image_depends = Vec::new();
    for (key, krate) in &input.inventory.crates {
        let mut component = json!({
            "type": if input.inventory.root.as_ref() == Some(key) { "application" } else { "library" },
            "bom-ref": krate.purl(),
            "name": krate.name,
            "version": krate.version,
            "purl": krate.purl(),
        });
        if let Some(license) = &krate.license {
            component["licenses"] = json!([{"expression": license}]);
        }
        if let CrateSource::Registry {
            checksum: Some(checksum),
        } = &krate.source
        {
            component["hashes"] = json!([{"alg": "SHA-256", "content": checksum}]);
        }
        components.push(component);
        let depends: Vec<String> = input
            .inventory
            .edges
            .iter()
            .filter(|(from, _)| from == key)
            .filter_map(|(_, to)| input.inventory.crates.get(to).map(Crate::purl))
            .collect();
        dependencies.push(json!({"ref": krate.purl(), "dependsOn": depends}));
        if input.inventory.root.as_ref() == Some(key) {
            image_depends.push(krate.purl());
        }
    }
    for file in input.base {
        let bom_ref = format!("file:/{}", file.path);
        components.push(json!({
            "type": "file",
            "bom-ref": bom_ref,
            "name": format!("/{}", file.path),
            "hashes": [{"alg": "SHA-256", "content": file.sha256}],
            "description": base_comment(&file.path),
        }));
        image_depends.push(bom_ref);
    }
    dependencies.insert(0, json!({"ref": image_ref, "dependsOn": image_depends}));
    let document = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial_number(input.digest),
        "version": 1,
        "metadata": {
            "timestamp": crate::image::rfc3339(input.epoch),
            "tools": {"components": [{
                "type": "application",
                "name": "okonomi",
                "version": env!("CARGO_PKG_VERSION"),
            }]},
            "component": {
                "type": "container",
                "bom-ref": image_ref,
                "name": input.name,
                "version": input.digest,
                "purl": image_ref,
                "hashes": [{"alg": "SHA-256", "content": hex_of(input.digest)}],
            },
        },
        "components": components,
        "dependencies": dependencies,
    });
    serde_json::to_vec_pretty(&document).unwrap_or_default()
}

/// The image digest an SBOM says it describes, if it is one of ours.
pub fn described_digest(document: &serde_json::Value) -> Option<String> {
    if document["spdxVersion"].is_string() {
        let image = document["packages"]
            .as_array()?
            .iter()
            .find(|p| p["primaryPackagePurpose"] == "CONTAINER")?;
        return image["versionInfo"].as_str().map(str::to_string);
    }
    if document["bomFormat"] == "CycloneDX" {
        return document["metadata"]["component"]["version"]
            .as_str()
            .map(str::to_string);
    }
    None
}

/// The number of packages (SPDX) or components (CycloneDX) in an SBOM.
pub fn package_count(document: &serde_json::Value) -> usize {
    document["packages"]
        .as_array()
        .or_else(|| document["components"].as_array())
        .map_or(0, Vec::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TREE: &str = "\
0hello v0.1.0 (/ws/functions/hello)|Apache-2.0
1libc v0.2.191|MIT OR Apache-2.0
1okonomi v0.1.0 (/ws/runtime)|Apache-2.0
2bytes v1.12.2|MIT
2tracing v0.1.44|MIT
3tracing-attributes v0.1.31 (proc-macro)|MIT
4proc-macro2 v1.0.107|MIT OR Apache-2.0
3log v0.4.35|MIT/Apache-2.0
2bytes v1.12.2|MIT (*)
";

    fn inventory() -> Inventory {
        let mut lock = BTreeMap::new();
        lock.insert(("bytes".to_string(), "1.12.2".to_string()), "ab".repeat(32));
        let mut inventory = Inventory::default();
        parse_tree(TREE, &lock, &mut inventory);
        inventory.targets.insert("x86_64-unknown-linux-musl".into());
        inventory
    }

    #[test]
    fn proc_macros_and_their_dependencies_are_not_in_the_binary() {
        let inv = inventory();
        let names: Vec<&str> = inv.crates.keys().map(|k| k.0.as_str()).collect();
        assert_eq!(
            names,
            ["bytes", "hello", "libc", "log", "okonomi", "tracing"]
        );
        assert_eq!(inv.root, Some(("hello".into(), "0.1.0".into())));
        let bytes = &inv.crates[&("bytes".into(), "1.12.2".into())];
        assert_eq!(bytes.purl(), "pkg:cargo/bytes@1.12.2");
        assert_eq!(
            bytes.source,
            CrateSource::Registry {
                checksum: Some("ab".repeat(32))
            }
        );
        assert_eq!(
            inv.crates[&("okonomi".into(), "0.1.0".into())].source,
            CrateSource::Path
        );
        assert_eq!(
            inv.crates[&("log".into(), "0.4.35".into())]
                .license
                .as_deref(),
            Some("MIT OR Apache-2.0")
        );
        assert!(inv.edges.contains(&(
            ("tracing".into(), "0.1.44".into()),
            ("log".into(), "0.4.35".into())
        )));
        assert!(inv.edges.contains(&(
            ("okonomi".into(), "0.1.0".into()),
            ("bytes".into(), "1.12.2".into())
        )));
    }

    #[test]
    fn documents_are_reproducible_and_name_the_image() {
        let inv = inventory();
        let base = BaseFile::list(&crate::image::base_files(b"CERT"));
        let input = SbomInput {
            name: "hello",
            digest: "sha256:0123",
            epoch: 7,
            inventory: &inv,
            base: &base,
        };
        let sboms = Sboms::new(&input);
        assert_eq!(sboms, Sboms::new(&input));
        let spdx: serde_json::Value = serde_json::from_slice(&sboms.spdx).unwrap();
        assert_eq!(spdx["creationInfo"]["created"], "1970-01-01T00:00:07Z");
        assert_eq!(described_digest(&spdx).as_deref(), Some("sha256:0123"));
        // image + 6 crates + 4 base files
        assert_eq!(package_count(&spdx), 11);
        let cdx: serde_json::Value = serde_json::from_slice(&sboms.cyclonedx).unwrap();
        assert_eq!(described_digest(&cdx).as_deref(), Some("sha256:0123"));
        let serial = cdx["serialNumber"].as_str().unwrap();
        assert_eq!(serial.len(), "urn:uuid:".len() + 36, "{serial}");
        assert_eq!(&serial[23..24], "5", "{serial}");
        let other = SbomInput {
            digest: "sha256:4567",
            ..input
        };
        assert_ne!(Sboms::new(&other).spdx, sboms.spdx);
    }

    #[test]
    fn lock_checksums_are_read_by_name_and_version() {
        let lock = lock_checksums(
            "version = 4\n[[package]]\nname = \"a\"\nversion = \"1.0.0\"\nsource = \"registry+x\"\nchecksum = \"ff\"\n[[package]]\nname = \"b\"\nversion = \"0.1.0\"\n",
        )
        .unwrap();
        assert_eq!(
            lock.get(&("a".into(), "1.0.0".into())).map(String::as_str),
            Some("ff")
        );
        assert_eq!(lock.len(), 1);
    }
}
