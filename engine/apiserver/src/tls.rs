//! The API server's identity: a CA, a server certificate for 127.0.0.1, localhost
//! and ::1 signed by it, and a bearer token, generated on first start and kept in
//! the state directory; and an HTTPS server for an axum router.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

use crate::error::{Error, Result};

const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const SERVER_CERT: &str = "apiserver.crt";
const SERVER_KEY: &str = "apiserver.key";
const TOKEN: &str = "token";

/// The CA, server certificate and token of an API server.
#[derive(Clone)]
pub struct Credentials {
    /// PEM of the CA certificate clients trust (kubeconfig `certificate-authority-data`).
    pub ca_pem: String,
    /// PEM of the server certificate.
    pub cert_pem: String,
    /// PEM of the server's private key.
    pub key_pem: String,
    /// The bearer token clients must send.
    pub token: String,
    /// The directory the files live in.
    pub dir: PathBuf,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.display().to_string();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

fn tls_err(what: &str) -> impl FnOnce(rcgen::Error) -> Error {
    let what = what.to_string();
    move |e| Error::Tls(format!("{what}: {e}"))
}

/// Write `contents` to `path` atomically (temporary file + rename), readable only by
/// the owner when `private`.
pub(crate) fn write_atomically(path: &Path, contents: &[u8], private: bool) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err("creating directory", dir))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(if private { 0o600 } else { 0o644 });
        }
        let mut file = options.open(&tmp).map_err(io_err("creating", &tmp))?;
        file.write_all(contents).map_err(io_err("writing", &tmp))?;
        file.sync_all().map_err(io_err("syncing", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io_err("renaming into place", path))?;
    Ok(())
}

fn validity(params: &mut CertificateParams, years: i16) {
    let today = jiff::Zoned::now().date();
    let start = today.yesterday().unwrap_or(today);
    let end_year = start.year().saturating_add(years);
    params.not_before = rcgen::date_time_ymd(
        i32::from(start.year()),
        start.month() as u8,
        start.day() as u8,
    );
    params.not_after = rcgen::date_time_ymd(i32::from(end_year), start.month() as u8, 1);
}

impl Credentials {
    /// Load the credentials from `dir`, generating whatever is missing (a new CA
    /// means a new server certificate too). Blocking file I/O: call it before
    /// serving or from `spawn_blocking`.
    pub fn load_or_create(dir: &Path) -> Result<Credentials> {
        std::fs::create_dir_all(dir).map_err(io_err("creating directory", dir))?;
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
        let token = match read(TOKEN).map(|t| t.trim().to_string()) {
            Some(t) if !t.is_empty() => t,
            _ => {
                use rand::Rng;
                let bytes: [u8; 32] = rand::rng().random();
                let token = hex_string(&bytes);
                write_atomically(&dir.join(TOKEN), token.as_bytes(), true)?;
                token
            }
        };
        if let (Some(ca_pem), Some(cert_pem), Some(key_pem)) =
            (read(CA_CERT), read(SERVER_CERT), read(SERVER_KEY))
        {
            let credentials = Credentials {
                ca_pem,
                cert_pem,
                key_pem,
                token: token.clone(),
                dir: dir.to_path_buf(),
            };
            if credentials.server_config().is_ok() {
                return Ok(credentials);
            }
            tracing::warn!(dir = %dir.display(), "stored certificates are unusable; generating new ones");
        }
        let ca_key = KeyPair::generate().map_err(tls_err("generating the CA key"))?;
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(tls_err("CA parameters"))?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "okonomi engine CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut ca_params, 10);
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(tls_err("signing the CA"))?;
        let ca_key_pem = ca_key.serialize_pem();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().map_err(tls_err("generating the server key"))?;
        let mut params = CertificateParams::new(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])
        .map_err(tls_err("server certificate parameters"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "okonomi-apiserver");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, 5);
        let cert = params
            .signed_by(&server_key, &issuer)
            .map_err(tls_err("signing the server certificate"))?;

        let credentials = Credentials {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: server_key.serialize_pem(),
            token,
            dir: dir.to_path_buf(),
        };
        write_atomically(&dir.join(CA_KEY), ca_key_pem.as_bytes(), true)?;
        write_atomically(&dir.join(SERVER_KEY), credentials.key_pem.as_bytes(), true)?;
        write_atomically(
            &dir.join(SERVER_CERT),
            credentials.cert_pem.as_bytes(),
            false,
        )?;
        write_atomically(&dir.join(CA_CERT), credentials.ca_pem.as_bytes(), false)?;
        Ok(credentials)
    }

    /// Path of the CA certificate file.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join(CA_CERT)
    }

    /// A rustls server configuration (HTTP/2 and HTTP/1.1 by ALPN).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let certs = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Tls(format!("server certificate PEM: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| Error::Tls(format!("server key PEM: {e}")))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| Error::Tls(format!("server certificate: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The answer to plain HTTP on the TLS port, byte for byte Go's.
const PLAIN_HTTP_ANSWER: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Whether the connection's first byte is a TLS handshake record (0x16).
/// A client that sends nothing within the handshake timeout is left to the
/// handshake, which times it out.
async fn starts_with_tls(tcp: &mut tokio::net::TcpStream) -> bool {
    let mut first = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(10), tcp.peek(&mut first)).await {
        Ok(Ok(1)) => first[0] == 0x16,
        _ => true,
    }
}

/// Serve `router` over HTTPS on `listener` until `shutdown` completes; open
/// connections (watches included) are closed then.
pub async fn serve_tls(
    listener: TcpListener,
    router: axum::Router,
    config: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Running out of file descriptors and the like: pause, do not spin.
                    tracing::warn!(error = %e, "accepting an API connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        connections.spawn(async move {
            let mut tcp = tcp;
            if !starts_with_tls(&mut tcp).await {
                // What Go's TLS server (and so kube-apiserver) answers plain
                // HTTP with, instead of a TLS alert a person cannot read.
                use tokio::io::AsyncWriteExt as _;
                let _ = tcp.write_all(PLAIN_HTTP_ANSWER).await;
                let _ = tcp.shutdown().await;
                return;
            }
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "API connection ended with an error");
            }
        });
    }
    connections.shutdown().await;
    Ok(())
}
