//! The binaries of `okonomi://` revisions, kept in the state dir
//! (content-addressed) with a record per revision naming its binary: after
//! a restart a revision runs the very binary it ran before, without waiting
//! for cargo, while a new revision of the same crate gets a fresh build.

use std::future::Future;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::build::{Built, SCHEME, crate_dir, launch};
use crate::error::{Error, Result};

/// The revision a binary is kept for. The uid tells a revision from an
/// earlier one of the same name (a service deleted and created again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionId {
    /// The revision's namespace.
    pub namespace: String,
    /// The revision's name.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
}

/// Which kept binary a revision runs, as written to its record file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionBinary {
    /// The image reference it was built from (`okonomi://functions/hello`).
    pub reference: String,
    /// The revision's `metadata.uid`.
    pub uid: String,
    /// The kept binary's name in the store (`sha256-HEX`).
    pub binary: String,
    /// When it was built.
    pub built: jiff::Timestamp,
}

/// What the store knows about a revision.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// The revision's binary is kept: run it.
    Kept {
        /// The kept binary.
        program: PathBuf,
        /// The revision's record.
        record: RevisionBinary,
    },
    /// The revision was built before, but its binary cannot be run again
    /// (deleted, or the record is unreadable): build again.
    Rebuild {
        /// Why, for the log.
        why: String,
    },
    /// Never built (or a record of an earlier revision of that name).
    Unknown,
}

/// Binaries of `okonomi://` revisions, kept under the state dir:
/// `binaries/sha256-HEX` (content-addressed, so revisions of unchanged
/// source share one file) and `binaries/revisions/NAMESPACE_REVISION.json`
/// records ([`RevisionBinary`]; neither name can hold `_`).
///
/// Nothing is removed when a revision is deleted: a record is a few bytes
/// (and a revision created again under that name has another uid, so it
/// does not reuse it), and a binary may be shared by other revisions. A
/// temp file from a copy interrupted by a crash may be left behind as
/// `.incoming-*`.
#[derive(Debug, Clone)]
pub struct BinaryStore {
    dir: PathBuf,
}

impl BinaryStore {
    /// The store of a state dir.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("binaries"),
        }
    }

    /// The file of a kept binary.
    pub fn binary_path(&self, binary: &str) -> PathBuf {
        self.dir.join(binary)
    }

    /// The record file of a revision.
    pub fn record_path(&self, namespace: &str, revision: &str) -> PathBuf {
        self.dir
            .join("revisions")
            .join(format!("{namespace}_{revision}.json"))
    }

    /// What `revision` runs: its kept binary if it has one, else what
    /// `build` makes (kept by it, see [`build_and_keep`](super::build::build_and_keep)), recorded for the
    /// revision so that the next start runs the same binary.
    pub async fn resolve<E, F>(
        &self,
        revision: &RevisionId,
        path: &str,
        source_root: &Path,
        build: F,
    ) -> Result<Built, E>
    where
        F: Future<Output = Result<Built, E>>,
        E: From<Error>,
    {
        let reference = format!("{SCHEME}{path}");
        match self.lookup(revision, &reference).await {
            Lookup::Kept { program, record } => {
                return Ok(Built {
                    launch: launch(crate_dir(path, source_root), program),
                    binary: record.binary,
                });
            }
            Lookup::Rebuild { why } => {
                tracing::warn!(
                    namespace = %revision.namespace,
                    revision = %revision.name,
                    %reference,
                    %why,
                    "building the revision again: it may now run newer source than it was created with"
                );
            }
            Lookup::Unknown => {}
        }
        let built = build.await?;
        self.remember(
            revision,
            &RevisionBinary {
                reference,
                uid: revision.uid.clone(),
                binary: built.binary.clone(),
                built: jiff::Timestamp::now(),
            },
        )
        .await?;
        Ok(built)
    }

    /// Looks up the binary kept for `revision`, built from `reference`.
    pub async fn lookup(&self, revision: &RevisionId, reference: &str) -> Lookup {
        if !is_name(&revision.namespace) || !is_name(&revision.name) {
            return Lookup::Unknown;
        }
        let path = self.record_path(&revision.namespace, &revision.name);
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Unknown,
            Err(e) => {
                return Lookup::Rebuild {
                    why: format!("cannot read the record {}: {e}", path.display()),
                };
            }
        };
        let record = match serde_json::from_slice::<RevisionBinary>(&bytes) {
            Ok(record) => record,
            Err(e) => {
                return Lookup::Rebuild {
                    why: format!("the record {} is not valid: {e}", path.display()),
                };
            }
        };
        if record.uid != revision.uid || record.reference != reference {
            return Lookup::Unknown;
        }
        if !is_binary_name(&record.binary) {
            return Lookup::Rebuild {
                why: format!(
                    "the record {} names {:?}, not a kept binary",
                    path.display(),
                    record.binary
                ),
            };
        }
        let program = self.binary_path(&record.binary);
        match tokio::fs::metadata(&program).await {
            Ok(meta) if meta.is_file() => Lookup::Kept { program, record },
            Ok(_) => Lookup::Rebuild {
                why: format!("{} is not a file", program.display()),
            },
            Err(e) => Lookup::Rebuild {
                why: format!("the kept binary {} is gone: {e}", program.display()),
            },
        }
    }

    /// Copies the binary cargo built for the crate `path` into the store
    /// (unless the same bytes are kept already) and returns its name.
    pub async fn keep(&self, path: &str, executable: &Path) -> Result<String> {
        let dir = self.dir.clone();
        let executable = executable.to_path_buf();
        tokio::task::spawn_blocking(move || keep_blocking(&dir, &executable))
            .await
            .map_err(|e| format!("the copy task failed: {e}"))
            .and_then(|kept| kept)
            .map_err(|message| Error::Build {
                path: path.to_string(),
                message,
            })
    }

    /// Writes a revision's record (atomically: a crash leaves the old
    /// record or the new one).
    pub async fn remember(&self, revision: &RevisionId, record: &RevisionBinary) -> Result<()> {
        let path = self.record_path(&revision.namespace, &revision.name);
        let reference = record.reference.clone();
        let build_error = |message: String| Error::Build {
            path: reference.clone(),
            message,
        };
        if !is_name(&revision.namespace) || !is_name(&revision.name) {
            return Err(build_error(format!(
                "cannot keep the binary of revision {}/{}: not a Kubernetes name",
                revision.namespace, revision.name
            )));
        }
        let json = serde_json::to_vec_pretty(record)
            .map_err(|e| build_error(format!("encoding the revision record: {e}")))?;
        let target = path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&target, &json))
            .await
            .map_err(|e| build_error(format!("the record task failed: {e}")))?
            .map_err(|e| {
                build_error(format!(
                    "cannot write the revision record {}: {e}; check that the state dir is writable and has space",
                    path.display()
                ))
            })
    }
}

/// `sha256-` and 64 lowercase hex digits: a name [`keep_blocking`] gives,
/// never a path out of the store.
fn is_binary_name(name: &str) -> bool {
    name.strip_prefix("sha256-").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A Kubernetes object name (DNS subdomain characters): safe in a file
/// name, and free of the `_` that separates namespace and revision.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// Hashes `executable` and copies it into `dir` as `sha256-HEX` (mode
/// 0755) unless that file exists. The copy is hashed as it is written and
/// named by what was copied, so a binary cargo replaces meanwhile cannot
/// be kept under the wrong name.
fn keep_blocking(dir: &Path, executable: &Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;

    let read_error = |e: std::io::Error| {
        format!(
            "cannot read the built binary {}: {e}; build the crate again",
            executable.display()
        )
    };
    let write_error = |e: std::io::Error| {
        format!(
            "cannot keep the built binary in {}: {e}; check that the state dir is writable and has space",
            dir.display()
        )
    };
    let mut source = std::fs::File::open(executable).map_err(read_error)?;
    let name = binary_name(copy_hashed(&mut source, &mut std::io::sink()).map_err(read_error)?);
    let target = dir.join(&name);
    if target.is_file() {
        return Ok(name);
    }
    std::fs::create_dir_all(dir).map_err(write_error)?;
    let mut temp = tempfile::Builder::new()
        .prefix(".incoming-")
        .tempfile_in(dir)
        .map_err(write_error)?;
    source.rewind().map_err(read_error)?;
    let copied = binary_name(copy_hashed(&mut source, temp.as_file_mut()).map_err(|e| {
        format!(
            "cannot copy {} into {}: {e}; check that the state dir is writable and has space",
            executable.display(),
            dir.display()
        )
    })?);
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(write_error)?;
    let target = dir.join(&copied);
    // Dropping the file closes it: an executable still open for writing
    // cannot be run (ETXTBSY).
    drop(temp.persist(&target).map_err(|e| write_error(e.error))?);
    Ok(copied)
}

/// Copies `from` into `to`, returning the SHA-256 of the bytes.
fn copy_hashed(from: &mut impl Read, to: &mut impl Write) -> std::io::Result<Vec<u8>> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buffer[..n]);
        to.write_all(&buffer[..n])?;
    }
    Ok(hasher.finalize().to_vec())
}

fn binary_name(digest: Vec<u8>) -> String {
    format!("sha256-{}", hex::encode(digest))
}

/// Writes `bytes` to `path` through a temp file in the same dir and a
/// rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::Builder::new()
        .prefix(".incoming-")
        .tempfile_in(dir)?;
    temp.write_all(bytes)?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revision(name: &str, uid: &str) -> RevisionId {
        RevisionId {
            namespace: "default".into(),
            name: name.into(),
            uid: uid.into(),
        }
    }

    const HELLO: &str = "okonomi://functions/hello";

    /// A "built binary" outside the store, as cargo leaves one.
    fn built_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// A store in a fresh state dir that keeps one binary of `bytes`
    /// (built as cargo would, outside the store); its name.
    async fn store_keeping(bytes: &[u8]) -> (tempfile::TempDir, BinaryStore, String) {
        let state = tempfile::tempdir().unwrap();
        let store = BinaryStore::new(state.path());
        let built = built_file(state.path(), "hello", bytes);
        let binary = store.keep("functions/hello", &built).await.unwrap();
        (state, store, binary)
    }

    fn record(binary: &str, uid: &str) -> RevisionBinary {
        RevisionBinary {
            reference: HELLO.into(),
            uid: uid.into(),
            binary: binary.into(),
            built: jiff::Timestamp::now(),
        }
    }

    #[tokio::test]
    async fn a_binary_is_kept_by_its_digest_and_the_same_bytes_are_copied_once() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};

        let state = tempfile::tempdir().unwrap();
        let target = tempfile::tempdir().unwrap();
        let store = BinaryStore::new(state.path());
        let bytes = b"#!/bin/sh\necho one\n";
        let first = built_file(target.path(), "hello", bytes);

        let name = store.keep("functions/hello", &first).await.unwrap();
        assert_eq!(
            name,
            format!("sha256-{}", hex::encode(Sha256::digest(bytes)))
        );
        let kept = store.binary_path(&name);
        assert_eq!(kept, state.path().join("binaries").join(&name));
        assert_eq!(std::fs::read(&kept).unwrap(), bytes);
        let meta = std::fs::metadata(&kept).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);

        // The same bytes from another build: the kept file stays as it was
        // (a copy would have renamed a new inode over it).
        let second = built_file(target.path(), "hello-again", bytes);
        assert_eq!(store.keep("functions/hello", &second).await.unwrap(), name);
        assert_eq!(std::fs::metadata(&kept).unwrap().ino(), meta.ino());

        // Other bytes are another binary; the first one stays.
        let other = built_file(target.path(), "hello-two", b"#!/bin/sh\necho two\n");
        let other_name = store.keep("functions/hello", &other).await.unwrap();
        assert_ne!(other_name, name);
        assert!(kept.is_file());
        let mut files: Vec<String> = std::fs::read_dir(state.path().join("binaries"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut want = vec![name, other_name];
        want.sort();
        assert_eq!(files, want, "no temp file is left behind");
    }

    #[tokio::test]
    async fn keeping_a_missing_binary_names_it() {
        let state = tempfile::tempdir().unwrap();
        let store = BinaryStore::new(state.path());
        let err = store
            .keep("functions/hello", &state.path().join("no-such-binary"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("building functions/hello"), "{err}");
        assert!(err.contains("no-such-binary"), "{err}");
    }

    #[tokio::test]
    async fn a_revision_record_round_trips() {
        let (state, store, binary) = store_keeping(b"one").await;
        let r1 = revision("hello-00001", "uid-1");
        assert_eq!(store.lookup(&r1, HELLO).await, Lookup::Unknown);

        let written = record(&binary, "uid-1");
        store.remember(&r1, &written).await.unwrap();
        let path = store.record_path("default", "hello-00001");
        assert_eq!(
            path,
            state
                .path()
                .join("binaries/revisions/default_hello-00001.json")
        );
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["reference"], HELLO);
        assert_eq!(json["binary"], binary.as_str());
        assert!(
            json["built"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .is_ok(),
            "{json}"
        );
        assert_eq!(
            store.lookup(&r1, HELLO).await,
            Lookup::Kept {
                program: store.binary_path(&binary),
                record: written,
            }
        );
        // Another revision has no record of its own.
        assert_eq!(
            store.lookup(&revision("hello-00002", "uid-2"), HELLO).await,
            Lookup::Unknown
        );
    }

    #[tokio::test]
    async fn a_record_whose_binary_vanished_means_rebuild() {
        let (_state, store, binary) = store_keeping(b"one").await;
        let r1 = revision("hello-00001", "uid-1");
        store
            .remember(&r1, &record(&binary, "uid-1"))
            .await
            .unwrap();
        std::fs::remove_file(store.binary_path(&binary)).unwrap();
        match store.lookup(&r1, HELLO).await {
            Lookup::Rebuild { why } => assert!(why.contains(&binary), "{why}"),
            other => panic!("want a rebuild, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn records_that_cannot_name_a_kept_binary_mean_rebuild() {
        let state = tempfile::tempdir().unwrap();
        let store = BinaryStore::new(state.path());
        let r1 = revision("hello-00001", "uid-1");
        // A record pointing out of the store is never followed.
        store
            .remember(&r1, &record("../../bin/sh", "uid-1"))
            .await
            .unwrap();
        assert!(
            matches!(store.lookup(&r1, HELLO).await, Lookup::Rebuild { .. }),
            "a binary name outside the store was accepted"
        );
        std::fs::write(store.record_path("default", "hello-00001"), b"{not json").unwrap();
        match store.lookup(&r1, HELLO).await {
            Lookup::Rebuild { why } => assert!(why.contains("not valid"), "{why}"),
            other => panic!("want a rebuild, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_record_of_an_earlier_revision_of_that_name_is_not_reused() {
        let (_state, store, binary) = store_keeping(b"one").await;
        let old = revision("hello-00001", "uid-old");
        store
            .remember(&old, &record(&binary, "uid-old"))
            .await
            .unwrap();
        // The service was deleted and created again: same name, new uid.
        let new = revision("hello-00001", "uid-new");
        assert_eq!(store.lookup(&new, HELLO).await, Lookup::Unknown);
        // Same revision, another reference: not the record of this image.
        assert_eq!(
            store.lookup(&old, "okonomi://functions/echo").await,
            Lookup::Unknown
        );
        assert!(matches!(
            store.lookup(&old, HELLO).await,
            Lookup::Kept { .. }
        ));
    }
}
