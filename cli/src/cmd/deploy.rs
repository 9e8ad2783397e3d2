//! `okonomi deploy [PATH]`: build and push the function (or take `--image`),
//! render it into a Knative Service, server-side apply it to the kube
//! context (field manager `okonomi`), then wait as `kn` does and print the
//! URL. `--dry-run -o yaml` prints what would be applied, in a form
//! `kubectl apply -f -` and `kn service create NAME --filename` accept.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::EnvVar;
use kube::api::{Patch, PatchParams};
use okonomi_knative::manifest::{BuildProfile, FunctionManifest, FunctionSection};
use okonomi_knative::render::RenderOptions;
use okonomi_knative::validation::check_dns1035_label;
use okonomi_knative::{Service, TrafficTarget, keys};
use serde_json::Value;

use crate::cluster::{Cluster, ClusterArgs, ClusterError, FIELD_MANAGER, wait_ready};
use crate::cmd::build::TargetArgs;
use crate::global::{Format, Global};

const EXAMPLES: &str = "\
Examples:
  okonomi deploy functions/hello                       build, push, apply, wait, print the URL
  okonomi deploy --image 127.0.0.1:5000/okonomi/hello@sha256:… --name hello
  okonomi deploy functions/hello --env GREETING=Hi     a new revision
  okonomi deploy functions/hello --context gke --registry europe-docker.pkg.dev/p/r
  okonomi deploy functions/hello --dry-run -o yaml | kubectl apply -f -

The registry comes from --registry, OKONOMI_REGISTRY or [build] registry in okonomi.toml.
Without one, against okonomi's engine (or with --dry-run), the image is okonomi://PATH,
which the engine builds itself. Exit codes: 0 Ready, 1 failed (Ready=False, timeout, …).";

/// Arguments of `okonomi deploy`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The function crate (directory with Cargo.toml and okonomi.toml).
    #[arg(default_value = ".")]
    pub path: PathBuf,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Deploy this image instead of building one (as `kn service create --image`).
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Service name (default: `[function]` name in okonomi.toml, else the crate name).
    #[arg(long)]
    pub name: Option<String>,
    /// KEY=VALUE environment variable of the function's container; repeat.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// KEY=VALUE annotation on the revision template (autoscaling.knative.dev/…); repeat.
    #[arg(short = 'a', long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Autoscaler stable window, e.g. 6s (autoscaling.knative.dev/window).
    #[arg(long, value_name = "DURATION")]
    pub scale_window: Option<String>,
    /// public or cluster-local, overriding `[service]` visibility in okonomi.toml.
    #[arg(long, value_parser = ["public", "cluster-local"])]
    pub visibility: Option<String>,
    /// Print the manifests instead of applying them (use -o yaml or -o json).
    #[arg(long)]
    pub dry_run: bool,
    /// Also apply the function's Istio policy (AuthorizationPolicy, PeerAuthentication).
    #[arg(long)]
    pub istio: bool,
    /// Apply and return without waiting for Ready.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for Ready, e.g. 300s, 5m.
    #[arg(long, default_value = "300s", value_parser = crate::duration::parse)]
    pub timeout: Duration,
    /// On okonomi's engine, build with the release profile (what images get)
    /// instead of `dev`; `[build] engine-profile` in okonomi.toml sets the default.
    #[arg(long)]
    pub release: bool,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// Runs `okonomi deploy`.
pub async fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    let mut manifest = load_manifest(&args).await?;
    if let Some(name) = &args.name {
        manifest.function.name = name.clone();
    }
    check_name(&manifest.function.name)?;
    let overrides = Overrides::parse(&args)?;

    // Connect before a long build, so a missing context or Knative shows at once.
    let cluster = if args.dry_run {
        None
    } else {
        let cluster = Cluster::connect(args.cluster.context.as_deref()).await?;
        cluster.ensure_knative().await?;
        Some(cluster)
    };
    let namespace = args
        .cluster
        .namespace
        .clone()
        .or_else(|| manifest.function.namespace.clone())
        .or_else(|| cluster.as_ref().map(|c| c.default_namespace.clone()))
        .unwrap_or_else(|| "default".into());
    if let Some(cluster) = &cluster {
        cluster.ensure_namespace(&namespace).await?;
    }

    let image = image_for(&args, &manifest, cluster.as_ref(), global).await?;
    let mut service = render_service(&manifest, &image.reference, &namespace, global)?;
    service.metadata.namespace = Some(namespace.clone());
    overrides.apply(&mut service);
    if let Some(build) = &image.engine_build {
        build.annotate(&mut service);
    }
    let mut objects = vec![serde_json::to_value(&service)?];
    if args.istio {
        objects.extend(istio_policy(&manifest, &namespace));
        if let Some(note) = okonomi_knative::istio::advisory_callers_note(&manifest) {
            global.warn(note);
        }
    }

    let Some(cluster) = cluster else {
        print_manifests(global, &objects)?;
        return Ok(ExitCode::SUCCESS);
    };
    let name = manifest.function.name.clone();
    let applied = apply_service(&cluster, &namespace, &service).await?;
    global.status(
        "Applied",
        format!(
            "service {namespace}/{name} (generation {})",
            applied.metadata.generation.unwrap_or(0)
        ),
    );
    if args.istio {
        for object in &objects[1..] {
            apply_dynamic(&cluster, &namespace, object).await?;
        }
    }
    if args.no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    global.status(
        "Waiting",
        format!(
            "for {name} to become Ready (up to {}s)",
            args.timeout.as_secs()
        ),
    );
    let ready = wait_ready(
        &cluster,
        &namespace,
        &name,
        applied.metadata.generation,
        args.timeout,
    )
    .await?;
    let status = ready.status.clone().unwrap_or_default();
    let url = status.url.clone().unwrap_or_default();
    global.status(
        "Ready",
        format!(
            "{name} revision {}",
            status.latest_ready_revision_name.as_deref().unwrap_or("?")
        ),
    );
    if !sends_all_to_latest(&ready.spec.traffic) {
        global.warn(format!(
            "{name} has a pinned traffic split; the new revision may get no traffic (see `okonomi traffic {name}`)"
        ));
    }
    crate::output::print(global, &ready, |_| url.clone())?;
    Ok(ExitCode::SUCCESS)
}

async fn load_manifest(args: &Args) -> anyhow::Result<FunctionManifest> {
    let path = args.path.clone();
    if !path.exists() {
        bail!(
            "{} does not exist: pass the directory of a function crate (e.g. functions/hello), or create one with `okonomi new NAME`",
            path.display()
        );
    }
    let has_manifest = path
        .join(okonomi_knative::manifest::MANIFEST_FILE)
        .is_file()
        || path.is_file();
    if !has_manifest {
        if args.image.is_some() {
            let Some(name) = args.name.clone() else {
                bail!(
                    "{} has no okonomi.toml, so --image needs --name to name the service",
                    path.display()
                );
            };
            return Ok(FunctionManifest {
                function: FunctionSection {
                    name,
                    ..Default::default()
                },
                ..Default::default()
            });
        }
        bail!(
            "{} has no okonomi.toml: deploy a function crate (e.g. functions/hello), create one with `okonomi new`, or pass --image REF --name NAME",
            path.display()
        );
    }
    let manifest = tokio::task::spawn_blocking(move || FunctionManifest::load(&path)).await??;
    Ok(manifest)
}

fn check_name(name: &str) -> Result<(), ClusterError> {
    if name.is_empty() {
        return Err(ClusterError::InvalidName {
            name: name.to_owned(),
            reason: "it is empty".into(),
        });
    }
    check_dns1035_label(name).map_err(|reason| ClusterError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// What the Service's container runs.
struct DeployImage {
    /// The container's `image`.
    reference: String,
    /// For an `okonomi://` image on the engine: the build that stands for it.
    engine_build: Option<EngineBuild>,
}

impl DeployImage {
    fn reference(reference: String) -> Self {
        Self {
            reference,
            engine_build: None,
        }
    }
}

/// The build `okonomi deploy` made of an `okonomi://` crate before handing it
/// to the engine. Its digest on the revision template is what makes a changed
/// source a new Revision (and an unchanged one none), as a new image digest
/// does on Knative; the engine builds the same crate with the same profile,
/// which cargo finds already fresh.
struct EngineBuild {
    digest: String,
    profile: BuildProfile,
}

impl EngineBuild {
    fn annotate(&self, service: &mut Service) {
        let annotations = service
            .spec
            .template
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        annotations.insert(keys::BUILD_DIGEST_ANNOTATION.into(), self.digest.clone());
        annotations.insert(
            keys::BUILD_PROFILE_ANNOTATION.into(),
            self.profile.as_str().into(),
        );
    }
}

/// The image to deploy: `--image`, else a build pushed to the registry,
/// else (engine or dry run) `okonomi://ABSOLUTE_PATH` for the engine to build.
async fn image_for(
    args: &Args,
    manifest: &FunctionManifest,
    cluster: Option<&Cluster>,
    global: &Global,
) -> anyhow::Result<DeployImage> {
    if let Some(image) = &args.image {
        return Ok(DeployImage::reference(image.clone()));
    }
    let from_manifest = manifest.registry(manifest.profile.as_ref());
    if args.target.registry.is_some() || from_manifest.is_some() {
        let registry = crate::cmd::build::registry(&args.target, from_manifest.as_deref())?;
        let built = crate::cmd::build::build(&args.path, &args.target, global).await?;
        let published = crate::cmd::build::publish(&built, &registry, &args.target, global).await?;
        return Ok(DeployImage::reference(published.reference));
    }
    let engine = match cluster {
        Some(cluster) => cluster.is_engine().await?,
        None => true,
    };
    if !engine {
        bail!(
            "no registry to push {} to, and the cluster of context {:?} must pull it from one: \
pass --registry, set OKONOMI_REGISTRY, or set [build] registry in okonomi.toml",
            manifest.function.name,
            cluster.map(|c| c.context.as_str()).unwrap_or_default()
        );
    }
    let absolute = std::fs::canonicalize(&args.path)
        .with_context(|| format!("resolving {}", args.path.display()))?;
    let image = format!("okonomi://{}", absolute.display());
    if cluster.is_none() {
        // A dry run renders; it builds nothing.
        global.status(
            "Using",
            format!("{image} (no registry; the engine builds it)"),
        );
        return Ok(DeployImage::reference(image));
    }
    let profile = if args.release {
        BuildProfile::Release
    } else {
        manifest.build.engine_profile.unwrap_or_default()
    };
    let engine_build = build_for_engine(&absolute, profile, global).await?;
    global.status(
        "Using",
        format!(
            "{image} (no registry; the engine runs the {profile} build {})",
            short_digest(&engine_build.digest)
        ),
    );
    Ok(DeployImage {
        reference: image,
        engine_build: Some(engine_build),
    })
}

/// Builds the crate for the host with `profile`, as the engine will, and
/// takes the binary's digest. A compile error shows here, in the terminal,
/// and nothing is applied: the revision serving now keeps serving.
async fn build_for_engine(
    dir: &std::path::Path,
    profile: BuildProfile,
    global: &Global,
) -> anyhow::Result<EngineBuild> {
    let function = okonomi_image::cargo::inspect(dir).await?;
    global.status(
        "Compiling",
        format!("{} ({profile} profile)", function.package),
    );
    let started = std::time::Instant::now();
    let executable = okonomi_image::cargo::compile_native(
        &function,
        profile == BuildProfile::Release,
        okonomi_image::CargoOutput::Inherit,
    )
    .await
    .with_context(|| format!("building {} for the engine", dir.display()))?;
    let digest = tokio::task::spawn_blocking({
        let executable = executable.clone();
        move || okonomi_image::digest::sha256_file(&executable)
    })
    .await??;
    global.status(
        "Built",
        format!(
            "{} in {:.1}s",
            executable.display(),
            started.elapsed().as_secs_f64()
        ),
    );
    Ok(EngineBuild { digest, profile })
}

/// `sha256:0123456789ab`: enough of a digest to tell builds apart in a line.
fn short_digest(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

/// okonomi.toml + image → Knative Service (okonomi-knative's renderer,
/// which also validates it), with a note when the cluster needs feature flags.
fn render_service(
    manifest: &FunctionManifest,
    image: &str,
    namespace: &str,
    global: &Global,
) -> anyhow::Result<Service> {
    let profile = manifest.profile.as_ref();
    let options = RenderOptions {
        namespace: Some(namespace),
        profile,
        version: None,
    };
    let rendered = okonomi_knative::render::render_service(manifest, image, &options)
        .with_context(|| {
            format!(
                "rendering {} into a Knative Service",
                manifest.function.name
            )
        })?;
    if let Some(note) = rendered.feature_note() {
        global.warn(note);
    }
    Ok(rendered.service)
}

/// The per-function Istio objects (PeerAuthentication, AuthorizationPolicy)
/// rendered from okonomi.toml's `[istio]`.
fn istio_policy(manifest: &FunctionManifest, namespace: &str) -> Vec<Value> {
    okonomi_knative::istio::function_policy_objects(manifest, namespace)
}

/// Command-line changes on top of the rendered Service.
struct Overrides {
    env: Vec<(String, String)>,
    annotations: Vec<(String, String)>,
    visibility: Option<String>,
}

impl Overrides {
    fn parse(args: &Args) -> anyhow::Result<Self> {
        let pair = |text: &String, flag: &str| -> anyhow::Result<(String, String)> {
            match text.split_once('=') {
                Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
                _ => bail!("{flag} {text:?} is not KEY=VALUE"),
            }
        };
        let env = args
            .env
            .iter()
            .map(|e| pair(e, "--env"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for (key, _) in &env {
            if keys::RESERVED_ENV_VARS.contains(&key.as_str()) {
                bail!("--env {key}: Knative sets {key} itself; pick another name");
            }
        }
        let mut annotations = args
            .annotations
            .iter()
            .map(|a| pair(a, "--annotation"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if let Some(window) = &args.scale_window {
            okonomi_knative::validation::parse_duration(window)
                .map_err(|e| anyhow::anyhow!("--scale-window {window:?}: {e}"))?;
            annotations.push((keys::WINDOW_ANNOTATION.to_owned(), window.clone()));
        }
        Ok(Self {
            env,
            annotations,
            visibility: args.visibility.clone(),
        })
    }

    fn apply(&self, service: &mut Service) {
        if let Some(visibility) = &self.visibility {
            let labels = service.metadata.labels.get_or_insert_with(Default::default);
            if visibility == keys::VISIBILITY_CLUSTER_LOCAL {
                labels.insert(keys::VISIBILITY_LABEL.to_owned(), visibility.clone());
            } else {
                labels.remove(keys::VISIBILITY_LABEL);
            }
        }
        let template = &mut service.spec.template;
        if !self.annotations.is_empty() {
            let map = template
                .metadata
                .annotations
                .get_or_insert_with(Default::default);
            for (key, value) in &self.annotations {
                map.insert(key.clone(), value.clone());
            }
        }
        if self.env.is_empty() {
            return;
        }
        let containers = &mut template.spec.pod_spec.containers;
        let index = containers
            .iter()
            .position(|c| c.ports.as_ref().is_some_and(|p| !p.is_empty()))
            .unwrap_or(0);
        if let Some(container) = containers.get_mut(index) {
            let vars = container.env.get_or_insert_with(Vec::new);
            for (key, value) in &self.env {
                vars.retain(|v| &v.name != key);
                vars.push(EnvVar {
                    name: key.clone(),
                    value: Some(value.clone()),
                    ..Default::default()
                });
            }
        }
    }
}

/// Server-side apply with field manager `okonomi`, forcing ownership of the
/// fields it renders (okonomi.toml is the source of truth for them).
pub async fn apply_service(
    cluster: &Cluster,
    namespace: &str,
    service: &Service,
) -> Result<Service, ClusterError> {
    let name = service.name().to_owned();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    cluster
        .services(namespace)
        .patch(&name, &params, &Patch::Apply(service))
        .await
        .map_err(|e| {
            cluster.error(
                e,
                &format!("applying service {name:?}"),
                Some(("service", &name, namespace)),
            )
        })
}

/// Server-side apply of any object (the Istio policy), found by discovery.
async fn apply_dynamic(cluster: &Cluster, namespace: &str, object: &Value) -> anyhow::Result<()> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
    let (resource, _) = kube::discovery::pinned_kind(&cluster.client, &gvk).await.with_context(|| {
        format!("the cluster of context {:?} does not serve {api_version} {kind}: is Istio installed? (see docs/clouds/)", cluster.context)
    })?;
    let api: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(cluster.client.clone(), namespace, &resource);
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|e| cluster.error(e, &format!("applying {kind} {name:?}"), None))?;
    Ok(())
}

fn sends_all_to_latest(traffic: &[TrafficTarget]) -> bool {
    traffic.is_empty()
        || traffic
            .iter()
            .all(|t| t.latest_revision == Some(true) || t.percent.unwrap_or(0) == 0)
}

/// Prints the manifests: YAML documents (text and yaml) or JSON (one object,
/// or a v1 List of several).
fn print_manifests(global: &Global, objects: &[Value]) -> anyhow::Result<()> {
    match global.output {
        Format::Json => {
            let value = if objects.len() == 1 {
                objects[0].clone()
            } else {
                serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": objects })
            };
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        Format::Yaml | Format::Text => {
            print!("{}", okonomi_knative::render::to_yaml_documents(objects)?)
        }
    }
    Ok(())
}
