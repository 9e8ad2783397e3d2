//! Content digests in the `sha256:<hex>` form the OCI specs use.

use sha2::{Digest, Sha256};

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(data: &[u8]) -> String {
    // sha2 0.11 digests do not implement LowerHex: encode explicitly.
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}
