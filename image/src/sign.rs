//! Keys and signatures in the formats cosign, Kyverno and Sigstore's
//! policy-controller verify: ECDSA P-256 with SHA-256, signatures ASN.1 DER and
//! base64 in manifests, public keys as SPKI PEM (`PUBLIC KEY`), private keys as
//! PKCS#8 PEM encrypted with a password (`ENCRYPTED PRIVATE KEY`, PBES2).
//!
//! What gets signed: cosign's simple-signing payload for the image digest
//! ([`simple_signing_payload`]) and in-toto statements wrapped in DSSE envelopes
//! ([`dsse_envelope`]), as `cosign sign` and `cosign attest` make them.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::Generate;
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use serde_json::json;

/// The environment variable the private key's password is read from.
pub const PASSWORD_ENV: &str = "OKONOMI_KEY_PASSWORD";
/// The DSSE payload type of in-toto statements.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

const ENCRYPTED_LABEL: &str = "ENCRYPTED PRIVATE KEY";

/// What can be wrong with a key file or a password.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The password does not decrypt the key.
    #[error(
        "the password does not open the private key {path}: set {PASSWORD_ENV} to the password it was created with (okonomi keygen)"
    )]
    WrongPassword {
        /// The key file.
        path: PathBuf,
    },
    /// No password was given.
    #[error(
        "{path} is encrypted: set {PASSWORD_ENV} to its password (it is read from the environment only, never from a flag)"
    )]
    NoPassword {
        /// The key file.
        path: PathBuf,
    },
    /// The file is not a key okonomi reads.
    #[error("{path} is not {expected}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What kind of key was expected.
        expected: &'static str,
        /// What was found instead, and what to do.
        reason: String,
    },
    /// The key is not on P-256.
    #[error("{path}: {reason}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// keygen would overwrite a key.
    #[error(
        "{path} already exists: keygen never overwrites a key; remove it or pick another --output-key-prefix"
    )]
    Exists {
        /// The file that is there.
        path: PathBuf,
    },
    /// Reading or writing the key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// A private signing key (ECDSA P-256).
#[derive(Clone)]
pub struct PrivateKey {
    key: SigningKey,
}

impl std::fmt::Debug for PrivateKey {
    // Never print key material, not even in a debug dump.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(P-256, redacted)")
    }
}

impl PrivateKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> Self {
        PrivateKey {
            key: SigningKey::from(p256::NonZeroScalar::generate()),
        }
    }

    /// Reads an encrypted PKCS#8 PEM key, decrypting it with `password`.
    pub fn from_encrypted_pem(pem: &str, password: &[u8], path: &Path) -> Result<Self, KeyError> {
        let format = |reason: &str| KeyError::Format {
            path: path.to_path_buf(),
            expected: "an encrypted PKCS#8 private key (ENCRYPTED PRIVATE KEY PEM)",
            reason: reason.to_string(),
        };
        let (label, doc) = p256::pkcs8::Document::from_pem(pem)
            .map_err(|_| format("no PEM block could be read; make one with `okonomi keygen`"))?;
        match label {
            ENCRYPTED_LABEL => {}
            "PRIVATE KEY" | "EC PRIVATE KEY" => {
                return Err(format(
                    "it is not encrypted; okonomi only signs with password-protected keys (okonomi keygen)",
                ));
            }
            "ENCRYPTED SIGSTORE PRIVATE KEY" | "ENCRYPTED COSIGN PRIVATE KEY" => {
                return Err(format(
                    "it is in cosign's own encrypted format; create an okonomi key with `okonomi keygen` (cosign verifies its signatures with the .pub) or convert it to PKCS#8",
                ));
            }
            other => return Err(format(&format!("the PEM block is {other:?}"))),
        }
        let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(doc.as_bytes())
            .map_err(|_| format("the encrypted key structure is damaged"))?;
        let plain = info
            .decrypt(password)
            .map_err(|_| KeyError::WrongPassword {
                path: path.to_path_buf(),
            })?;
        // A wrong password can decrypt to garbage with valid padding: a key that
        // does not parse then is the same mistake.
        let key = SigningKey::from_pkcs8_der(plain.as_bytes()).map_err(|e| match e {
            pkcs8::Error::KeyMalformed(_) | pkcs8::Error::Asn1(_) => KeyError::WrongPassword {
                path: path.to_path_buf(),
            },
            other => KeyError::Unsupported {
                path: path.to_path_buf(),
                reason: format!(
                    "not an ECDSA P-256 key ({other}); okonomi signs with P-256 like cosign"
                ),
            },
        })?;
        Ok(PrivateKey { key })
    }

    /// Reads and decrypts the key at `path` with the password in [`PASSWORD_ENV`].
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let password = std::env::var_os(PASSWORD_ENV).ok_or_else(|| KeyError::NoPassword {
            path: path.to_path_buf(),
        })?;
        Self::from_encrypted_pem(&pem, password.as_encoded_bytes(), path)
    }

    /// The key as encrypted PKCS#8 PEM (PBES2), under `password`.
    pub fn to_encrypted_pem(
        &self,
        password: &[u8],
    ) -> Result<zeroize_string::Secret, pkcs8::Error> {
        let pem = self.key.to_pkcs8_encrypted_pem(password, LineEnding::LF)?;
        Ok(zeroize_string::Secret(pem))
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key: *self.key.verifying_key(),
        }
    }

    /// An ECDSA P-256 SHA-256 signature over `data`, ASN.1 DER (what cosign
    /// stores). RFC 6979 nonces: the same key and data give the same signature.
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        let signature: Signature = self.key.sign(data);
        signature.to_der().as_bytes().to_vec()
    }
}

/// Zeroizing wrapper for the PEM text of a private key.
pub mod zeroize_string {
    /// A PEM string wiped from memory when dropped.
    pub struct Secret(pub(crate) pkcs8::der::zeroize::Zeroizing<String>);

    impl Secret {
        /// The PEM text.
        pub fn as_str(&self) -> &str {
            self.0.as_str()
        }
    }
}

/// A public verification key (ECDSA P-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
}

impl PublicKey {
    /// Reads an SPKI PEM public key (`PUBLIC KEY`), as `cosign public-key` prints.
    pub fn from_pem(pem: &str, path: &Path) -> Result<Self, KeyError> {
        VerifyingKey::from_public_key_pem(pem)
            .map(|key| PublicKey { key })
            .map_err(|e| KeyError::Format {
                path: path.to_path_buf(),
                expected: "an ECDSA P-256 public key (PUBLIC KEY PEM)",
                reason: format!("{e}; pass the .pub file okonomi keygen wrote"),
            })
    }

    /// Reads the public key at `path`.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_pem(&pem, path)
    }

    /// SPKI PEM text.
    pub fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .unwrap_or_default()
    }

    /// Whether `signature` (ASN.1 DER) is this key's signature over `data`.
    pub fn verify(&self, data: &[u8], signature: &[u8]) -> bool {
        Signature::from_der(signature).is_ok_and(|s| self.key.verify(data, &s).is_ok())
    }

    /// `sha256:…` of the DER public key: names the key in messages without printing it.
    pub fn fingerprint(&self) -> String {
        let der = self
            .key
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default();
        crate::digest::sha256_digest(&der)
    }
}

/// Writes a new key pair as `PREFIX.key` (encrypted, mode 0600) and `PREFIX.pub`.
/// Never overwrites either file.
pub fn write_key_pair(
    prefix: &Path,
    password: &[u8],
) -> Result<(PathBuf, PathBuf, PublicKey), KeyError> {
    let private_path = prefix.with_extension("key");
    let public_path = prefix.with_extension("pub");
    for path in [&private_path, &public_path] {
        if path.exists() {
            return Err(KeyError::Exists { path: path.clone() });
        }
    }
    let key = PrivateKey::generate();
    let pem = key
        .to_encrypted_pem(password)
        .map_err(|e| KeyError::Unsupported {
            path: private_path.clone(),
            reason: format!("could not encrypt the key: {e}"),
        })?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyError::Io { path, source }
    };
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt;
        // 0600 from the start: the key is never readable by others, not even briefly.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&private_path)
            .map_err(io(&private_path))?
    };
    file.write_all(pem.as_str().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io(&private_path))?;
    let public = key.public_key();
    std::fs::write(&public_path, public.to_pem()).map_err(io(&public_path))?;
    Ok((private_path, public_path, public))
}

/// cosign's simple-signing payload for `digest` pushed as `name` (`HOST/REPO`),
/// byte for byte as `cosign sign` writes it.
pub fn simple_signing_payload(name: &str, digest: &str) -> Vec<u8> {
    let payload = json!({
        "critical": {
            "identity": {"docker-reference": name},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
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

/// A DSSE envelope of an in-toto statement signed with `key`, as `cosign attest` makes it.
pub fn dsse_envelope(key: &PrivateKey, statement: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let signature = key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, statement));
    serde_json::to_vec(&json!({
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "payload": b64.encode(statement),
        "signatures": [{"keyid": "", "sig": b64.encode(signature)}],
    }))
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_the_wrong_password_is_named() {
        let key = PrivateKey::generate();
        let public = key.public_key();
        let sig = key.sign(b"payload");
        assert!(public.verify(b"payload", &sig));
        assert!(!public.verify(b"other", &sig));
        assert_eq!(sig, key.sign(b"payload"), "RFC 6979: deterministic");
        let pem = key.to_encrypted_pem(b"right").unwrap();
        assert!(
            pem.as_str()
                .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        );
        let path = Path::new("test.key");
        let again = PrivateKey::from_encrypted_pem(pem.as_str(), b"right", path).unwrap();
        assert_eq!(again.public_key(), public);
        let err = PrivateKey::from_encrypted_pem(pem.as_str(), b"wrong", path).unwrap_err();
        assert!(matches!(err, KeyError::WrongPassword { .. }), "{err}");
        let pub_again = PublicKey::from_pem(&public.to_pem(), path).unwrap();
        assert_eq!(pub_again, public);
    }

    #[test]
    fn pae_is_dsse_v1() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn the_payload_is_cosigns() {
        let p = simple_signing_payload("r/x", "sha256:ab");
        assert_eq!(
            String::from_utf8(p).unwrap(),
            r#"{"critical":{"identity":{"docker-reference":"r/x"},"image":{"docker-manifest-digest":"sha256:ab"},"type":"cosign container image signature"},"optional":null}"#
        );
    }
}
