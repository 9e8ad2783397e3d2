//! Names Knative gives the objects it makes: `kmeta.ChildName`, so that a
//! child of a long-named parent (the revision `NAME-00001` of a 63-character
//! Service, its `-deployment`) is still a valid Kubernetes name.

use md5::{Digest, Md5};

/// The longest name Kubernetes gives a label-named object.
const LONGEST: usize = 63;
/// Hex characters of an MD5 sum.
const MD5_LEN: usize = 32;
/// How much of the parent is kept when the hash must fit.
const HEAD: usize = LONGEST - MD5_LEN;

fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `parent + suffix` when it fits in 63 characters; otherwise the parent
/// truncated and followed by its MD5 sum, then the suffix (or, for a
/// suffix longer than 31 characters, a hash of both), exactly as Knative's
/// `kmeta.ChildName` does, so the engine names children as a cluster does.
pub fn child_name(parent: &str, suffix: &str) -> String {
    if parent.len() <= LONGEST.saturating_sub(suffix.len()) {
        return format!("{parent}{suffix}");
    }
    if HEAD <= suffix.len() {
        let hash = md5_hex(&format!("{parent}{suffix}"));
        let parent = truncate(parent, HEAD);
        let mut name = format!("{parent}{hash}");
        if name.len() < LONGEST {
            name.push_str(truncate(suffix, LONGEST - name.len()));
        }
        return valid_end(name);
    }
    let head = truncate(parent, HEAD - suffix.len());
    format!("{head}{}{suffix}", md5_hex(parent))
}

/// The first `len` bytes of `text` (names are ASCII; a non-ASCII name is
/// cut at the nearest character boundary below).
fn truncate(text: &str, len: usize) -> &str {
    let mut end = len.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Trailing characters that are not alphanumeric removed (`makeValidName`).
fn valid_end(mut name: String) -> String {
    while name.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        name.pop();
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Knative's own cases (knative.dev/pkg kmeta/names_test.go).
    #[test]
    fn names_are_knative_s() {
        let f63 = "f".repeat(63);
        let cases = [
            (
                "asdf".to_owned(),
                "-deployment".to_owned(),
                "asdf-deployment",
            ),
            (
                f63.clone(),
                "-deployment".into(),
                "ffffffffffffffffffff105d7597f637e83cc711605ac3ea4957-deployment",
            ),
            (
                f63.clone(),
                "-deploy".into(),
                "ffffffffffffffffffffffff105d7597f637e83cc711605ac3ea4957-deploy",
            ),
            (
                f63.clone(),
                f63.clone(),
                "fffffffffffffffffffffffffffffff0502661254f13c89973cb3a83e0cbec0",
            ),
            (
                "a".into(),
                f63.clone(),
                "ab5cfd486935decbc0d305799f4ce4414ffffffffffffffffffffffffffffff",
            ),
            (
                "b".repeat(32),
                "f".repeat(32),
                "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb329c7c81b9ab3ba71aa139066aa5625d",
            ),
            (
                "aaaa".into(),
                "b---a".repeat(20),
                "aaaa7a3f7966594e3f0849720eced8212c18b---ab---ab---ab---ab---ab",
            ),
            (
                "a".repeat(17),
                "a.-.-.-.-.-.-.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
                "aaaaaaaaaaaaaaaaaa1eb10dc911444f8434af83b7225442da",
            ),
        ];
        for (parent, suffix, want) in cases {
            assert_eq!(child_name(&parent, &suffix), want, "{parent} {suffix}");
        }
    }
}
