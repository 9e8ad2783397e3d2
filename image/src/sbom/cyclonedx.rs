//! CycloneDX 1.6 JSON: the image as the BOM's subject (a `container`), the
//! function crate as an `application`, every other crate a `library` with its
//! purl, hash and licence, the image's files as `file` components, and the
//! dependency graph.

use serde_json::{Value, json};

use super::{CYCLONEDX_MEDIA_TYPE, Crate, Sbom};
use crate::image::{self, Blob};

/// The CycloneDX 1.6 JSON document for `sbom`, as a content-addressed blob.
pub fn document(sbom: &Sbom) -> Blob {
    let image_ref = format!(
        "pkg:oci/{}@{}",
        sbom.image,
        sbom.image_digest.replace(':', "%3A")
    );
    let mut components = vec![component(&sbom.function, "application")];
    components.extend(sbom.crates.iter().map(|c| component(c, "library")));
    components.extend(sbom.files.iter().map(|f| {
        json!({
            "type": "file",
            "bom-ref": f.bom_ref(),
            "name": f.path,
            "hashes": [
                {"alg": "SHA-1", "content": f.sha1},
                {"alg": "SHA-256", "content": f.sha256},
            ],
        })
    }));
    let mut image_deps = vec![sbom.function.purl()];
    image_deps.extend(sbom.files.iter().map(super::File::bom_ref));
    let mut dependencies = vec![json!({"ref": image_ref, "dependsOn": image_deps})];
    dependencies.extend(
        std::iter::once(&sbom.function)
            .chain(&sbom.crates)
            .map(|c| json!({"ref": c.purl(), "dependsOn": c.depends_on})),
    );
    let doc = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial_number(&sbom.content_id()),
        "version": 1,
        "metadata": {
            "timestamp": image::rfc3339(sbom.epoch),
            "tools": {"components": [{
                "type": "application",
                "name": "okonomi",
                "version": env!("CARGO_PKG_VERSION"),
            }]},
            "component": {
                "type": "container",
                "bom-ref": image_ref,
                "name": sbom.image,
                "version": sbom.image_digest,
                "purl": image_ref,
                "hashes": [{"alg": "SHA-256", "content": sbom.image_digest.trim_start_matches("sha256:")}],
            },
        },
        "components": components,
        "dependencies": dependencies,
    });
    Blob::json(CYCLONEDX_MEDIA_TYPE, &doc)
}

fn component(c: &Crate, kind: &str) -> Value {
    let mut v = json!({
        "type": kind,
        "bom-ref": c.purl(),
        "name": c.name,
        "version": c.version,
        "purl": c.purl(),
    });
    if let Some(sum) = &c.checksum {
        v["hashes"] = json!([{"alg": "SHA-256", "content": sum}]);
    }
    if let Some(license) = &c.license {
        v["licenses"] = json!([{"expression": license}]);
    }
    if let Some(url) = &c.download {
        v["externalReferences"] = json!([{"type": "distribution", "url": url}]);
    }
    v
}

/// A URN UUID made from the content digest, shaped as a name-based version 5
/// UUID (CycloneDX's schema accepts versions 1 to 5 only): unique per content,
/// identical for the same content, as reproducibility needs.
fn serial_number(content_id: &str) -> String {
    let mut hex: Vec<char> = content_id.chars().take(32).collect();
    hex.resize(32, '0');
    hex[12] = '5';
    // The variant nibble is 10xx: one of 8, 9, a, b.
    let variant = hex[16].to_digit(16).unwrap_or(0) & 0x3 | 0x8;
    hex[16] = char::from_digit(variant, 16).unwrap_or('8');
    let s: String = hex.into_iter().collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &s[0..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..32]
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn serial_numbers_are_uuids() {
        let s = super::serial_number(&"f".repeat(64));
        assert_eq!(s, "urn:uuid:ffffffff-ffff-5fff-bfff-ffffffffffff");
    }
}
