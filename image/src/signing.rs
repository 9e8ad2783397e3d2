//! Signing keys and signatures in the formats cosign, Kyverno and Sigstore's
//! policy-controller read:
//!
//! - keys: ECDSA P-256; the private key as PKCS#8 PEM encrypted with a
//!   password (PBES2: scrypt + AES-256-CBC), the public key as a PEM
//!   SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`), the form
//!   `cosign verify --key` takes;
//! - image signatures: ECDSA over SHA-256 of cosign's *simple signing*
//!   payload, ASN.1 DER, base64 in the `dev.cosignproject.cosign/signature`
//!   layer annotation;
//! - attestations: in-toto statements in a DSSE envelope signed over DSSE's
//!   pre-authentication encoding, as `cosign attest` writes them.
//!
//! ECDSA signatures here are deterministic (RFC 6979): the same key and the
//! same payload give the same signature bytes, so a signed rebuild is
//! byte-for-byte the same artifact too.

use std::path::{Path, PathBuf};

use base64::Engine;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::Generate;
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use serde_json::json;

use crate::error::{Error, Result};

/// The environment variable holding the private key's password.
pub const PASSWORD_ENV: &str = "OKONOMI_SIGNING_PASSWORD";

/// The layer annotation cosign keeps the base64 signature in.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// Media type of cosign's simple signing payload (the `.sig` manifest's layer).
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// The `type` cosign writes and checks in a simple signing payload.
pub const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";

/// Media type of a DSSE envelope (the `.att` manifest's layers).
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";

/// DSSE's payload type for in-toto statements.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A private signing key, decrypted.
#[derive(Clone)]
pub struct PrivateKey {
    key: SigningKey,
    /// The file it came from, for messages.
    pub path: PathBuf,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key itself.
        f.debug_struct("PrivateKey")
            .field("path", &self.path)
            .finish()
    }
}

/// A public verification key.
#[derive(Debug, Clone)]
pub struct PublicKey {
    key: VerifyingKey,
    /// The file it came from, for messages.
    pub path: PathBuf,
}

/// A fresh key pair: the encrypted private PEM and the public PEM.
#[derive(Clone)]
pub struct KeyPair {
    /// `-----BEGIN ENCRYPTED PRIVATE KEY-----` (PKCS#8, PBES2).
    pub private_pem: String,
    /// `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo).
    pub public_pem: String,
}

/// Generates an ECDSA P-256 key pair with the private key encrypted under `password`.
pub fn generate(password: &[u8]) -> Result<KeyPair> {
    let key = SigningKey::try_generate().map_err(|e| Error::Key {
        path: PathBuf::new(),
        message: format!("no randomness from the operating system: {e}"),
    })?;
    let key_error = |message: String| Error::Key {
        path: PathBuf::new(),
        message,
    };
    let private_pem = key
        .to_pkcs8_encrypted_pem(password, LineEnding::LF)
        .map_err(|e| key_error(format!("encrypting the private key: {e}")))?
        .to_string();
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| key_error(format!("encoding the public key: {e}")))?;
    Ok(KeyPair {
        private_pem,
        public_pem,
    })
}

impl PrivateKey {
    /// Reads and decrypts the PKCS#8 PEM key at `path` with `password`.
    pub fn read(path: &Path, password: &[u8]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_pem(&text, password, path)
    }

    /// Decrypts a PEM private key (`path` only names it in errors).
    pub fn from_pem(text: &str, password: &[u8], path: &Path) -> Result<Self> {
        let key = if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            SigningKey::from_pkcs8_encrypted_pem(text, password).map_err(|e| {
                // PBES2 cannot tell a wrong password from a damaged file: the
                // padding check after decryption fails for both. The password
                // is by far the likelier cause.
                Error::KeyPassword {
                    path: path.to_path_buf(),
                    env: PASSWORD_ENV,
                    message: e.to_string(),
                }
            })?
        } else if text.contains("-----BEGIN PRIVATE KEY-----") {
            SigningKey::from_pkcs8_pem(text).map_err(|e| Error::Key {
                path: path.to_path_buf(),
                message: format!("not an ECDSA P-256 PKCS#8 key: {e}"),
            })?
        } else if text.contains("SIGSTORE PRIVATE KEY") || text.contains("COSIGN PRIVATE KEY") {
            return Err(Error::Key {
                path: path.to_path_buf(),
                message: "this is a key in cosign's own encrypted format, which okonomi does not read: make one with `okonomi keygen` (cosign verifies its signatures with the .pub file)".into(),
            });
        } else {
            return Err(Error::Key {
                path: path.to_path_buf(),
                message: "no PEM private key in it (expected -----BEGIN ENCRYPTED PRIVATE KEY-----, as `okonomi keygen` writes)".into(),
            });
        };
        Ok(PrivateKey {
            key,
            path: path.to_path_buf(),
        })
    }

    /// Signs `message` (ECDSA P-256 over its SHA-256), DER-encoded.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: Signature = self.key.sign(message);
        signature.to_der().as_bytes().to_vec()
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            key: *self.key.verifying_key(),
            path: self.path.with_extension("pub"),
        }
    }
}

impl PublicKey {
    /// Reads a PEM public key (`-----BEGIN PUBLIC KEY-----`).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let key = VerifyingKey::from_public_key_pem(&text).map_err(|e| Error::Key {
            path: path.to_path_buf(),
            message: format!(
                "not an ECDSA P-256 public key in PEM (-----BEGIN PUBLIC KEY-----): {e}"
            ),
        })?;
        Ok(PublicKey {
            key,
            path: path.to_path_buf(),
        })
    }

    /// Whether `signature` (DER, or the 64-byte fixed form) signs `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let parsed = Signature::from_der(signature).or_else(|_| Signature::from_slice(signature));
        parsed.is_ok_and(|s| self.key.verify(message, &s).is_ok())
    }
}

/// cosign's simple signing payload for `digest` pushed as `repository`
/// (`HOST/PATH`, no tag or digest). Field order and spelling as cosign
/// writes it; `optional` is null as in `cosign sign` without `-a`.
pub fn simple_signing_payload(repository: &str, digest: &str) -> Vec<u8> {
    let payload = json!({
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": SIMPLE_SIGNING_TYPE,
        },
        "optional": null,
    });
    serde_json::to_vec(&payload).unwrap_or_default()
}

/// DSSE's pre-authentication encoding: what a DSSE signature signs.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope around an in-toto statement, signed with `key`, as JSON bytes.
pub fn dsse_envelope(statement: &[u8], key: &PrivateKey) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let signature = key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, statement));
    let envelope = json!({
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "payload": b64.encode(statement),
        "signatures": [{"keyid": "", "sig": b64.encode(signature)}],
    });
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// What a DSSE envelope holds once its signature checked out.
#[derive(Debug, Clone)]
pub struct OpenedEnvelope {
    /// The statement bytes (the decoded payload).
    pub statement: Vec<u8>,
}

/// Opens a DSSE envelope: checks one of its signatures with `key` over the PAE.
/// `None` when no signature verifies or the envelope is malformed.
pub fn open_envelope(envelope: &[u8], key: &PublicKey) -> Option<OpenedEnvelope> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let value: serde_json::Value = serde_json::from_slice(envelope).ok()?;
    let payload_type = value["payloadType"].as_str()?;
    let payload = b64.decode(value["payload"].as_str()?).ok()?;
    let message = pae(payload_type, &payload);
    let signed = value["signatures"].as_array()?.iter().any(|s| {
        s["sig"]
            .as_str()
            .and_then(|sig| b64.decode(sig).ok())
            .is_some_and(|sig| key.verify(&message, &sig))
    });
    signed.then_some(OpenedEnvelope { statement: payload })
}

/// Writes a new key pair to `PREFIX.key` (mode 0600) and `PREFIX.pub`,
/// refusing to overwrite either unless `force`.
pub fn write_key_pair(prefix: &Path, pair: &KeyPair, force: bool) -> Result<(PathBuf, PathBuf)> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let private = prefix.with_extension("key");
    let public = prefix.with_extension("pub");
    if !force {
        for path in [&private, &public] {
            if path.exists() {
                return Err(Error::io(
                    path,
                    std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "already exists (pass --force to replace it)",
                    ),
                ));
            }
        }
    }
    // Remove first: an existing file keeps its mode through a truncating open,
    // and the private key must never sit in a world-readable file.
    if force {
        let _ = std::fs::remove_file(&private);
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&private)
        .map_err(|e| Error::io(&private, e))?;
    file.write_all(pair.private_pem.as_bytes())
        .map_err(|e| Error::io(&private, e))?;
    std::fs::write(&public, &pair.public_pem).map_err(|e| Error::io(&public, e))?;
    Ok((private, public))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (KeyPair, PrivateKey) {
        let pair = generate(b"secret").unwrap();
        let key = PrivateKey::from_pem(&pair.private_pem, b"secret", Path::new("k.key")).unwrap();
        (pair, key)
    }

    #[test]
    fn a_signature_verifies_with_the_public_key_only() {
        let (pair, key) = pair();
        assert!(
            pair.private_pem
                .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        );
        assert!(pair.public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k.pub"), &pair.public_pem).unwrap();
        let public = PublicKey::read(&dir.path().join("k.pub")).unwrap();
        let payload = simple_signing_payload("r/hello", "sha256:00");
        let signature = key.sign(&payload);
        assert!(public.verify(&payload, &signature));
        assert!(!public.verify(b"other", &signature));
        // RFC 6979: the same key and payload sign to the same bytes.
        assert_eq!(signature, key.sign(&payload));
        let other = generate(b"x").unwrap();
        std::fs::write(dir.path().join("o.pub"), &other.public_pem).unwrap();
        let other = PublicKey::read(&dir.path().join("o.pub")).unwrap();
        assert!(!other.verify(&payload, &signature));
    }

    #[test]
    fn a_wrong_password_is_named_as_such() {
        let (pair, _) = pair();
        let error = PrivateKey::from_pem(&pair.private_pem, b"wrong", Path::new("k.key"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("wrong password"), "{error}");
        assert!(error.contains(PASSWORD_ENV), "{error}");
        assert!(error.contains("k.key"), "{error}");
    }

    #[test]
    fn the_simple_signing_payload_is_cosigns() {
        let payload = simple_signing_payload("127.0.0.1:5000/okonomi/hello", "sha256:ab");
        assert_eq!(
            String::from_utf8(payload).unwrap(),
            r#"{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/okonomi/hello"},"image":{"docker-manifest-digest":"sha256:ab"},"type":"cosign container image signature"},"optional":null}"#
        );
    }

    #[test]
    fn dsse_envelopes_open_with_the_right_key_only() {
        let (pair, key) = pair();
        assert_eq!(
            pae("application/vnd.in-toto+json", b"{}"),
            b"DSSEv1 28 application/vnd.in-toto+json 2 {}".to_vec()
        );
        let envelope = dsse_envelope(br#"{"_type":"x"}"#, &key);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k.pub"), &pair.public_pem).unwrap();
        let public = PublicKey::read(&dir.path().join("k.pub")).unwrap();
        let opened = open_envelope(&envelope, &public).unwrap();
        assert_eq!(opened.statement, br#"{"_type":"x"}"#);
        let mut tampered: serde_json::Value = serde_json::from_slice(&envelope).unwrap();
        tampered["payload"] = json!(base64::engine::general_purpose::STANDARD.encode("{}"));
        assert!(open_envelope(&serde_json::to_vec(&tampered).unwrap(), &public).is_none());
    }

    #[test]
    fn the_private_key_file_is_0600_and_not_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let (pair, _) = pair();
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("okonomi");
        let (private, public) = write_key_pair(&prefix, &pair, false).unwrap();
        let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(public.ends_with("okonomi.pub"));
        let again = write_key_pair(&prefix, &pair, false)
            .unwrap_err()
            .to_string();
        assert!(again.contains("--force"), "{again}");
        write_key_pair(&prefix, &pair, true).unwrap();
    }
}
