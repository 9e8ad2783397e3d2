//! Content digests in the `sha256:<hex>` form the OCI specs use.

use sha2::{Digest, Sha256};

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(data: &[u8]) -> String {
    // sha2 0.11 digests do not implement LowerHex: encode explicitly.
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// `sha256:<hex>` of a file's bytes, read in chunks: a debug binary of a
/// function is tens of megabytes, which need not sit in memory at once.
/// Blocking: call it off the async runtime (`spawn_blocking`).
pub fn sha256_file(path: &std::path::Path) -> crate::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| crate::Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| crate::Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod file_tests {
    use super::{sha256_digest, sha256_file};

    #[test]
    fn a_file_digest_is_the_digest_of_its_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bin");
        // Longer than one read chunk, so the chunked loop is exercised.
        let bytes: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(sha256_file(&path).expect("digest"), sha256_digest(&bytes));
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let error =
            sha256_file(std::path::Path::new("/nonexistent/okonomi-bin")).expect_err("missing");
        assert!(
            error.to_string().contains("/nonexistent/okonomi-bin"),
            "{error}"
        );
    }
}
