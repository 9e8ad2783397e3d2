//! The kubelet's image manager: what a Pod's image reference resolves to
//! (an `okonomi://` crate built and kept, an image unpacked for the
//! process runtime, or pulled into podman's store), resolved once for
//! every revision of the same image.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OnceCell, Semaphore};

use super::{KubeletSettings, Launch, RuntimeKind, binaries, build, container, image};

/// What an image reference resolves to, before a revision's command/args.
#[derive(Debug, Clone)]
pub enum Artifact {
    /// An `okonomi://` crate, built and its binary kept.
    Built(build::Built),
    /// An image unpacked for the process runtime.
    Unpacked(image::UnpackedImage),
    /// An image pulled into podman's store.
    Pulled(String),
}

/// A resolution: the artifact, or a condition reason and a message.
pub type Fetched = Result<Artifact, (&'static str, String)>;

/// A failed resolution: a condition reason and a message.
struct Failure(&'static str, String);

impl From<crate::error::Error> for Failure {
    fn from(error: crate::error::Error) -> Self {
        Self("BuildFailed", error.to_string())
    }
}

/// A resolution started at some instant, finished or in progress.
type CacheEntry = (Instant, Arc<OnceCell<Fetched>>);

/// Resolutions shared by revisions with the same image, so a thousand
/// services of one image build or pull it once.
#[derive(Debug)]
pub struct ArtifactCache {
    entries: Mutex<HashMap<CacheKey, CacheEntry>>,
    /// Bounds concurrent builds and pulls.
    permits: Semaphore,
}

/// How long a local build with no digest is reused: `okonomi://` sources
/// change between deploys, image digests never do.
const BUILD_REUSE: Duration = Duration::from_secs(30);

/// An image reference, the runtime it is fetched for, and for an
/// `okonomi://` crate the build asked for.
type CacheKey = (String, RuntimeKind, Option<LocalBuild>);

/// How a revision asks for its `okonomi://` crate to be built: from its
/// template's `okonomi.dev/build-profile` and `okonomi.dev/build-digest`
/// annotations (set by `okonomi deploy`), else the engine's default profile.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LocalBuild {
    /// The cargo profile (`dev`, `release`).
    pub profile: String,
    /// The digest of the binary `okonomi deploy` built. Revisions with the
    /// same digest share one build whenever they start; a new digest is a
    /// new build, however soon after the last one.
    pub digest: Option<String>,
}

impl Default for ArtifactCache {
    fn default() -> Self {
        Self::new()
    }
}

impl ArtifactCache {
    /// Nothing resolved yet.
    pub fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            permits: Semaphore::new(4),
        }
    }

    /// What `revision` runs. An `okonomi://` revision built before runs
    /// its kept binary, with no cargo run (a revision is immutable, the
    /// checkout is not); a new one shares the build of its image.
    pub async fn fetch(
        &self,
        image_ref: &str,
        runtime: RuntimeKind,
        local_build: &LocalBuild,
        revision: &binaries::RevisionId,
        settings: &KubeletSettings,
    ) -> Fetched {
        let Some(path) = image_ref.strip_prefix(build::SCHEME) else {
            return self.shared(image_ref, runtime, None, settings).await;
        };
        let store = binaries::BinaryStore::new(&settings.state_dir);
        let shared = async {
            match self
                .shared(image_ref, runtime, Some(local_build), settings)
                .await
            {
                Ok(Artifact::Built(built)) => Ok(built),
                Ok(_) => Err(Failure(
                    "BuildFailed",
                    format!("{image_ref} did not resolve to a build"),
                )),
                Err((reason, message)) => Err(Failure(reason, message)),
            }
        };
        store
            .resolve(revision, path, &settings.source_root, shared)
            .await
            .map(Artifact::Built)
            .map_err(|Failure(reason, message)| (reason, message))
    }

    /// Resolves an image reference once for every revision of it.
    async fn shared(
        &self,
        image_ref: &str,
        runtime: RuntimeKind,
        local_build: Option<&LocalBuild>,
        settings: &KubeletSettings,
    ) -> Fetched {
        // A build with a digest is that build whenever it is asked for again;
        // only one without one goes stale.
        let local = local_build.is_some_and(|b| b.digest.is_none());
        let key = (
            image_ref.to_string(),
            if local_build.is_some() {
                RuntimeKind::Process
            } else {
                runtime
            },
            local_build.cloned(),
        );
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let fresh = |created: &Instant, cell: &Arc<OnceCell<Fetched>>| {
                let failed = cell.get().is_some_and(|r| r.is_err());
                !failed && (!local || created.elapsed() < BUILD_REUSE || !cell.initialized())
            };
            match entries.get(&key) {
                Some((created, cell)) if fresh(created, cell) => cell.clone(),
                _ => {
                    let cell = Arc::new(OnceCell::new());
                    entries.insert(key, (Instant::now(), cell.clone()));
                    cell
                }
            }
        };
        let profile = local_build.map_or(settings.build_profile.as_str(), |b| b.profile.as_str());
        cell.get_or_init(|| async {
            let _permit = self.permits.acquire().await;
            fetch(image_ref, runtime, profile, settings).await
        })
        .await
        .clone()
    }
}

/// Builds, unpacks or pulls an image reference; errors carry a condition
/// reason.
async fn fetch(
    image_ref: &str,
    runtime: RuntimeKind,
    profile: &str,
    settings: &KubeletSettings,
) -> Fetched {
    if let Some(path) = image_ref.strip_prefix(build::SCHEME) {
        let store = binaries::BinaryStore::new(&settings.state_dir);
        return build::build_and_keep(path, &settings.source_root, profile, &store)
            .await
            .map(Artifact::Built)
            .map_err(|e| ("BuildFailed", e.to_string()));
    }
    if image_ref.is_empty() {
        return Err(("NoImage", "the container has no image".into()));
    }
    match runtime {
        RuntimeKind::Process => {
            let cache = settings.state_dir.join("images");
            image::pull_and_unpack(image_ref, &cache)
                .await
                .map(Artifact::Unpacked)
                .map_err(|e| ("ImagePullFailed", e.to_string()))
        }
        RuntimeKind::Container => container::pull(image_ref)
            .await
            .map(|()| Artifact::Pulled(image_ref.to_string()))
            .map_err(|e| ("ImagePullFailed", e.to_string())),
    }
}

/// The `imageID` a Pod running `artifact` of `image_ref` reports: the
/// reference by digest (`REPO@sha256:…`), or for an `okonomi://` build the
/// kept binary's digest.
pub fn image_id(image_ref: &str, artifact: &Artifact) -> String {
    let repository = image_ref
        .split_once('@')
        .map_or(image_ref, |(repository, _)| repository);
    match artifact {
        Artifact::Built(built) => format!(
            "{image_ref}@{}",
            built.binary.replacen("sha256-", "sha256:", 1)
        ),
        Artifact::Unpacked(unpacked) => format!("{repository}@{}", unpacked.digest),
        Artifact::Pulled(image) if image.contains("@sha256:") => image.clone(),
        Artifact::Pulled(image) => image.clone(),
    }
}

/// How one revision runs an artifact, with its container's command and args.
pub fn launch_for(
    artifact: Artifact,
    container: &k8s_openapi::api::core::v1::Container,
) -> Result<Launch, (&'static str, String)> {
    let command = container.command.clone().unwrap_or_default();
    let args = container.args.clone().unwrap_or_default();
    match artifact {
        Artifact::Built(built) => Ok(built_launch(built.launch, command, args)),
        Artifact::Unpacked(unpacked) => image::launch(&unpacked, &command, &args)
            .map_err(|e| ("ImageNotRunnable", e.to_string())),
        Artifact::Pulled(image) => Ok(Launch::Container {
            image,
            command,
            args,
        }),
    }
}

/// An `okonomi://` build run with the container's command and args: the
/// built binary is the image's entrypoint, so a command replaces it (found
/// on PATH unless it is a path, relative to the crate) and args replace its
/// (empty) arguments.
fn built_launch(launch: Launch, command: Vec<String>, args: Vec<String>) -> Launch {
    match launch {
        Launch::Process {
            program,
            arg0,
            cwd,
            env,
            args: _,
        } => {
            let mut argv = command.into_iter();
            match argv.next() {
                Some(first) => {
                    let program = if first.contains('/') {
                        cwd.join(first)
                    } else {
                        PathBuf::from(first)
                    };
                    Launch::Process {
                        program,
                        arg0: None,
                        args: argv.chain(args).collect(),
                        cwd,
                        env,
                    }
                }
                None => Launch::Process {
                    program,
                    arg0,
                    args,
                    cwd,
                    env,
                },
            }
        }
        other => other,
    }
}
