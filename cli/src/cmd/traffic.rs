//! `okonomi traffic NAME`: split traffic between revisions and tag them, with
//! `kn service update`'s flags as the model: `--traffic REV=PERCENT`
//! (`@latest` for the latest ready revision, or a tag), `--tag REV=TAG`,
//! `--untag TAG`. The new split goes in as a merge patch of `spec.traffic`
//! (lists are replaced whole), so okonomi's server-side applies of the
//! template never fight over it.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use kube::api::{Patch, PatchParams};
use okonomi_knative::TrafficTarget;

use crate::cluster::{Cluster, ClusterArgs, FIELD_MANAGER, wait_ready};
use crate::global::Global;

const EXAMPLES: &str = "\
Examples:
  okonomi traffic hello --traffic hello-00001=50 --traffic @latest=50
  okonomi traffic hello --tag hello-00001=v1            # http://v1-hello.default.DOMAIN
  okonomi traffic hello --traffic v1=100                 # a tag names its revision
  okonomi traffic hello --untag v1
  okonomi traffic hello                                  # show the split";

/// Where traffic goes: the latest ready revision, or a named one (or a tag).
const LATEST: &str = "@latest";

/// Arguments of `okonomi traffic`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The service name.
    pub name: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// REVISION=PERCENT (REVISION may be @latest or a tag); repeat; the percents sum to 100.
    #[arg(long = "traffic", value_name = "REVISION=PERCENT")]
    pub traffic: Vec<String>,
    /// REVISION=TAG: give a revision (or @latest) its own URL; repeat.
    #[arg(long = "tag", value_name = "REVISION=TAG")]
    pub tags: Vec<String>,
    /// TAG: remove a tag (and its target when it carries no traffic); repeat.
    #[arg(long = "untag", value_name = "TAG")]
    pub untag: Vec<String>,
    /// How long to wait for the new split to be Ready.
    #[arg(long, default_value = "300s", value_parser = crate::duration::parse)]
    pub timeout: Duration,
}

/// Runs `okonomi traffic`.
pub async fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    let traffic = args
        .traffic
        .iter()
        .map(|t| parse_percent(t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let tags = args
        .tags
        .iter()
        .map(|t| parse_pair(t, "--tag", "REVISION=TAG"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cluster = Cluster::connect(args.cluster.context.as_deref()).await?;
    cluster.ensure_knative().await?;
    let namespace = args
        .cluster
        .namespace
        .clone()
        .unwrap_or_else(|| cluster.default_namespace.clone());
    let name = args.name.as_str();
    let object = Some(("service", name, namespace.as_str()));
    let api = cluster.services(&namespace);
    if !(traffic.is_empty() && tags.is_empty() && args.untag.is_empty()) {
        let service = api
            .get(name)
            .await
            .map_err(|e| cluster.error(e, &format!("reading service {name:?}"), object))?;
        let planned = plan(&service.spec.traffic, &traffic, &tags, &args.untag)?;
        let patch = serde_json::json!({ "spec": { "traffic": planned } });
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        let updated = api
            .patch(name, &params, &Patch::Merge(&patch))
            .await
            .map_err(|e| cluster.error(e, &format!("updating the traffic of {name:?}"), object))?;
        global.status("Updated", format!("traffic of {namespace}/{name}"));
        wait_ready(
            &cluster,
            &namespace,
            name,
            updated.metadata.generation,
            args.timeout,
        )
        .await?;
    }
    let description = crate::cmd::describe::describe(&cluster, &namespace, name).await?;
    crate::output::print(global, &description.traffic, |traffic| {
        let mut rows = vec![vec![
            "PERCENT".to_string(),
            "REVISION".into(),
            "TAG".into(),
            "URL".into(),
        ]];
        for t in traffic {
            rows.push(vec![
                format!("{}%", t.percent.unwrap_or(0)),
                t.revision_name.clone().unwrap_or_else(|| LATEST.into()),
                t.tag.clone().unwrap_or_default(),
                t.url.clone().unwrap_or_default(),
            ]);
        }
        crate::cmd::list::align(&rows)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `REV=PERCENT` → (REV, percent).
fn parse_percent(text: &str) -> anyhow::Result<(String, i64)> {
    let (target, percent) = parse_pair(text, "--traffic", "REVISION=PERCENT")?;
    let percent: i64 = percent.trim_end_matches('%').parse().with_context(|| {
        format!("--traffic {text:?}: {percent:?} is not a whole number of percent")
    })?;
    if !(0..=100).contains(&percent) {
        bail!("--traffic {text:?}: the percent must be between 0 and 100");
    }
    Ok((target, percent))
}

fn parse_pair(text: &str, flag: &str, shape: &str) -> anyhow::Result<(String, String)> {
    match text.split_once('=') {
        Some((left, right)) if !left.is_empty() && !right.is_empty() => {
            Ok((left.to_owned(), right.to_owned()))
        }
        _ => bail!("{flag} {text:?} is not {shape}"),
    }
}

/// The new `spec.traffic` from the current one and the flags (pure).
pub fn plan(
    current: &[TrafficTarget],
    traffic: &[(String, i64)],
    tags: &[(String, String)],
    untag: &[String],
) -> anyhow::Result<Vec<TrafficTarget>> {
    let mut targets: Vec<TrafficTarget> = if current.is_empty() {
        vec![TrafficTarget::latest(100)]
    } else {
        current.to_vec()
    };
    if !traffic.is_empty() {
        let mut split: Vec<TrafficTarget> = Vec::new();
        for (reference, percent) in traffic {
            let mut target = match targets.iter().find(|t| t.tag.as_deref() == Some(reference)) {
                Some(tagged) => tagged.clone(),
                None => to_target(reference),
            };
            target.percent = Some(*percent);
            target.url = None;
            if split.iter().any(|t| same_target(t, &target)) {
                bail!("--traffic names {reference:?} twice");
            }
            split.push(target);
        }
        // Tags survive a new split with 0% (as kn keeps them).
        for tagged in targets.iter().filter(|t| t.tag.is_some()) {
            if !split.iter().any(|t| t.tag == tagged.tag) {
                let mut kept = tagged.clone();
                kept.percent = Some(0);
                split.push(kept);
            }
        }
        let sum: i64 = split.iter().filter_map(|t| t.percent).sum();
        if sum != 100 {
            bail!("the --traffic percents add up to {sum}, not 100");
        }
        targets = split;
    }
    for tag in untag {
        let Some(index) = targets.iter().position(|t| t.tag.as_deref() == Some(tag)) else {
            bail!("no traffic target is tagged {tag:?}");
        };
        if targets[index].percent.unwrap_or(0) == 0 {
            targets.remove(index);
        } else {
            targets[index].tag = None;
        }
    }
    for (reference, tag) in tags {
        if targets
            .iter()
            .any(|t| t.tag.as_deref() == Some(tag.as_str()))
        {
            bail!("tag {tag:?} is already in use; remove it first with --untag {tag}");
        }
        let wanted = to_target(reference);
        match targets
            .iter_mut()
            .find(|t| t.tag.is_none() && same_target(t, &wanted))
        {
            Some(target) => target.tag = Some(tag.clone()),
            None => {
                let mut target = wanted;
                target.tag = Some(tag.clone());
                target.percent = Some(0);
                targets.push(target);
            }
        }
    }
    for target in &mut targets {
        target.url = None;
    }
    Ok(targets)
}

fn to_target(reference: &str) -> TrafficTarget {
    if reference == LATEST {
        TrafficTarget {
            latest_revision: Some(true),
            ..Default::default()
        }
    } else {
        TrafficTarget {
            revision_name: Some(reference.to_owned()),
            latest_revision: Some(false),
            ..Default::default()
        }
    }
}

fn same_target(a: &TrafficTarget, b: &TrafficTarget) -> bool {
    let latest = |t: &TrafficTarget| t.latest_revision == Some(true);
    if latest(a) || latest(b) {
        latest(a) && latest(b)
    } else {
        a.revision_name == b.revision_name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(name: &str, percent: i64) -> TrafficTarget {
        TrafficTarget {
            revision_name: Some(name.into()),
            latest_revision: Some(false),
            percent: Some(percent),
            ..Default::default()
        }
    }

    #[test]
    fn split_between_a_revision_and_latest() {
        let planned = plan(
            &[],
            &[("hello-00001".into(), 50), ("@latest".into(), 50)],
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(
            planned,
            vec![rev("hello-00001", 50), TrafficTarget::latest(50)]
        );
    }

    #[test]
    fn percents_must_sum_to_100() {
        let error = plan(&[], &[("hello-00001".into(), 50)], &[], &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the --traffic percents add up to 50, not 100"
        );
    }

    #[test]
    fn tagging_an_untagged_target_reuses_it_and_a_new_one_gets_zero() {
        let current = vec![rev("hello-00001", 50), TrafficTarget::latest(50)];
        let planned = plan(
            &current,
            &[],
            &[
                ("hello-00001".into(), "v1".into()),
                ("hello-00002".into(), "v2".into()),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(planned[0].tag.as_deref(), Some("v1"));
        assert_eq!(planned[0].percent, Some(50));
        assert_eq!(planned[2].revision_name.as_deref(), Some("hello-00002"));
        assert_eq!(planned[2].percent, Some(0));
    }

    #[test]
    fn a_tag_names_its_revision_in_traffic_and_survives_a_new_split() {
        let mut v1 = rev("hello-00001", 0);
        v1.tag = Some("v1".into());
        let current = vec![TrafficTarget::latest(100), v1.clone()];
        let planned = plan(&current, &[("v1".into(), 100)], &[], &[]).unwrap();
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].revision_name.as_deref(), Some("hello-00001"));
        assert_eq!(planned[0].percent, Some(100));
        let planned = plan(&current, &[("@latest".into(), 100)], &[], &[]).unwrap();
        assert_eq!(planned, vec![TrafficTarget::latest(100), v1]);
    }

    #[test]
    fn untag_drops_a_zero_target_and_keeps_a_busy_one() {
        let mut v1 = rev("hello-00001", 0);
        v1.tag = Some("v1".into());
        let mut latest = TrafficTarget::latest(100);
        latest.tag = Some("current".into());
        let planned = plan(&[latest, v1], &[], &[], &["v1".into(), "current".into()]).unwrap();
        assert_eq!(planned, vec![TrafficTarget::latest(100)]);
        let error = plan(&[], &[], &[], &["nope".into()]).unwrap_err();
        assert_eq!(error.to_string(), "no traffic target is tagged \"nope\"");
    }

    #[test]
    fn duplicate_tags_are_refused() {
        let mut v1 = rev("hello-00001", 100);
        v1.tag = Some("v1".into());
        let error = plan(&[v1], &[], &[("@latest".into(), "v1".into())], &[]).unwrap_err();
        assert!(error.to_string().contains("tag \"v1\" is already in use"));
    }

    #[test]
    fn flags_are_parsed_with_clear_errors() {
        assert_eq!(
            parse_percent("@latest=50%").unwrap(),
            ("@latest".into(), 50)
        );
        assert!(
            parse_percent("a=150")
                .unwrap_err()
                .to_string()
                .contains("between 0 and 100")
        );
        assert!(
            parse_percent("a")
                .unwrap_err()
                .to_string()
                .contains("is not REVISION=PERCENT")
        );
    }
}
