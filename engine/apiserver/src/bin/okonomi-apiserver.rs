//! `okonomi-apiserver`: the API server on its own (no controllers), for debugging
//! clients and for tests that kill it with SIGKILL and restart it.
//!
//! Usage: `okonomi-apiserver --state-dir DIR [--listen ADDR] [--kubeconfig PATH]`.
//! Prints the server URL on the first line of stdout once it is listening.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use okonomi_apiserver::http::Api;
use okonomi_apiserver::kubeconfig::{self, KubeconfigEntry};
use okonomi_apiserver::tls::{Credentials, serve_tls};
use okonomi_apiserver::{ResourceType, Store};

struct Args {
    state_dir: PathBuf,
    listen: SocketAddr,
    kubeconfig: Option<PathBuf>,
}

const USAGE: &str =
    "usage: okonomi-apiserver --state-dir DIR [--listen 127.0.0.1:6443] [--kubeconfig PATH]";

fn parse_args() -> anyhow::Result<Args> {
    let mut state_dir = None;
    let mut listen: SocketAddr = ([127, 0, 0, 1], 0).into();
    let mut kubeconfig = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .with_context(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--state-dir" => state_dir = Some(PathBuf::from(value("--state-dir")?)),
            "--listen" => {
                let v = value("--listen")?;
                listen = v.parse().with_context(|| {
                    format!("--listen {v:?} is not an address like 127.0.0.1:6443")
                })?;
            }
            "--kubeconfig" => kubeconfig = Some(PathBuf::from(value("--kubeconfig")?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let state_dir = state_dir.with_context(|| format!("--state-dir is required\n{USAGE}"))?;
    Ok(Args {
        state_dir,
        listen,
        kubeconfig,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("creating the state directory {}", args.state_dir.display()))?;
    let store = Store::open(&args.state_dir.join("state.db")).await?;
    let credentials = Credentials::load_or_create(&args.state_dir.join("pki"))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {} (is the port in use?)", args.listen))?;
    let addr = listener.local_addr()?;
    let url = format!("https://{addr}");
    if let Some(path) = &args.kubeconfig {
        kubeconfig::merge(
            path,
            &KubeconfigEntry {
                name: "okonomi".into(),
                server: url.clone(),
                ca_pem: credentials.ca_pem.clone(),
                token: credentials.token.clone(),
                namespace: None,
                set_current: true,
            },
        )?;
    }
    let router = Api::new(store, ResourceType::all_builtin())
        .with_token(credentials.token.clone())
        .router();
    let config = credentials.server_config()?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{url}")?;
        stdout.flush()?;
    }
    serve_tls(listener, router, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
