//! Runs the engine in the foreground, for benchmarks and manual tries
//! (`okonomi up` is the user-facing way).
//!
//! ```text
//! cargo run -p okonomi-engine --example engine -- \
//!     [--state DIR] [--http ADDR] [--api ADDR] [--autoscaler FILE] [--config DIR] [--runtime process|container] \
//!     [--profile release|dev] [--deploy NAME=IMAGE[,port=h2c][,ANNOTATION=VALUE...]]...
//! ```
//!
//! Prints `http ADDR`, `api URL` and, as instances become ready,
//! `instance REVISION ADDR`; stops every instance on Ctrl-C or SIGTERM.

use std::collections::BTreeSet;

// The allocator okonomi's binaries use; glibc's malloc showed up at ~10% of
// the data plane's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::time::Duration;

use okonomi_apiserver::ResourceType;
use okonomi_engine::{Engine, EngineConfig, RuntimeKind};
use serde_json::json;

fn usage(message: &str) -> ! {
    eprintln!(
        "{message}\nusage: engine [--state DIR] [--http ADDR] [--api ADDR] [--autoscaler FILE] [--config DIR] [--runtime process|container] [--profile PROFILE] [--deploy NAME=IMAGE[,KEY=VALUE...]]..."
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut config = EngineConfig::default();
    let mut deploys = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--state" => config.state_dir = value().into(),
            "--http" => {
                config.http_addr = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--http: not an address"))
            }
            "--api" => {
                config.api_addr = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--api: not an address"))
            }
            "--autoscaler" => config.autoscaler_config = Some(value().into()),
            "--config" => config.knative_config_dir = Some(value().into()),
            "--runtime" => {
                config.runtime = RuntimeKind::parse(&value())
                    .unwrap_or_else(|| usage("--runtime: process or container"))
            }
            "--profile" => config.build_profile = value(),
            "--deploy" => deploys.push(value()),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let engine = match Engine::start(config).await {
        Ok(engine) => engine,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(1);
        }
    };
    println!("http {}", engine.http_addr());
    println!("api {} token {}", engine.api().url, engine.api().token);
    let mut revisions = Vec::new();
    for deploy in deploys {
        let mut parts = deploy.split(',');
        let Some((name, image)) = parts.next().and_then(|p| p.split_once('=')) else {
            usage("--deploy NAME=IMAGE[,KEY=VALUE...]")
        };
        // `port=h2c` names the container port (Knative's protocol choice);
        // every other KEY=VALUE is a template annotation.
        let mut port_name = None;
        let annotations: serde_json::Map<String, serde_json::Value> = parts
            .filter_map(|p| p.split_once('='))
            .filter(|(k, v)| {
                if *k == "port" {
                    port_name = Some(v.to_string());
                }
                *k != "port"
            })
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let mut container = json!({"image": image});
        if let Some(port_name) = port_name {
            container["ports"] = json!([{"name": port_name, "containerPort": 8080}]);
        }
        let service = json!({
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"template": {
                "metadata": {"annotations": annotations},
                "spec": {"containers": [container]}
            }}
        });
        let created = engine
            .store()
            .create(&ResourceType::knative_service(), service)
            .await;
        if let Err(error) = created {
            eprintln!("error: deploying {name}: {error}");
        }
        revisions.push(format!("{name}-00001"));
    }
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    };
    let report = async {
        let mut seen = BTreeSet::new();
        loop {
            for revision in &revisions {
                for instance in engine.instances("default", revision) {
                    if seen.insert((revision.clone(), instance.addr)) {
                        println!("instance {revision} {}", instance.addr);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::select! {
        _ = shutdown => {}
        _ = report => {}
    }
    engine.shutdown().await;
}
