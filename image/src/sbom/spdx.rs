//! SPDX 2.3 JSON: the image as the described package, which contains its files
//! and the function crate; each crate a package with its purl, checksum and
//! declared licence, and DEPENDS_ON relationships along cargo's graph.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Crate, SPDX_MEDIA_TYPE, Sbom};
use crate::image::{self, Blob};

/// The SPDX 2.3 JSON document for `sbom`, as a content-addressed blob.
pub fn document(sbom: &Sbom) -> Blob {
    let mut ids = Ids::default();
    let image_id = "SPDXRef-Image".to_string();
    let function_id = ids.package(&sbom.function);
    let file_ids: Vec<String> = sbom
        .files
        .iter()
        .map(|f| ids.unique(&format!("SPDXRef-File-{}", sanitize(&f.path))))
        .collect();
    let mut packages = vec![json!({
        "SPDXID": image_id,
        "name": sbom.image,
        "versionInfo": sbom.image_digest,
        "downloadLocation": "NOASSERTION",
        // The image's files are listed: SPDX then wants the verification code.
        "filesAnalyzed": true,
        "packageVerificationCode": {"packageVerificationCodeValue": verification_code(sbom)},
        "hasFiles": file_ids,
        "licenseInfoFromFiles": ["NOASSERTION"],
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [{"algorithm": "SHA256", "checksumValue": sbom.image_digest.trim_start_matches("sha256:")}],
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": format!("pkg:oci/{}@{}", sbom.image, sbom.image_digest.replace(':', "%3A")),
        }],
    })];
    packages.push(package(&function_id, &sbom.function, "APPLICATION"));
    let crate_ids: Vec<String> = sbom.crates.iter().map(|c| ids.package(c)).collect();
    for (id, c) in crate_ids.iter().zip(&sbom.crates) {
        packages.push(package(id, c, "LIBRARY"));
    }
    let files: Vec<(String, Value)> = sbom
        .files
        .iter()
        .zip(&file_ids)
        .map(|(f, id)| {
            let id = id.clone();
            let value = json!({
                "SPDXID": id,
                "fileName": format!(".{}", f.path),
                "checksums": [
                    {"algorithm": "SHA1", "checksumValue": f.sha1},
                    {"algorithm": "SHA256", "checksumValue": f.sha256},
                ],
                "licenseConcluded": "NOASSERTION",
                "copyrightText": "NOASSERTION",
            });
            (id, value)
        })
        .collect();
    let by_purl: BTreeMap<String, &String> = std::iter::once((sbom.function.purl(), &function_id))
        .chain(sbom.crates.iter().map(Crate::purl).zip(&crate_ids))
        .collect();
    let relate = |a: &str, kind: &str, b: &str| json!({"spdxElementId": a, "relationshipType": kind, "relatedSpdxElement": b});
    let mut relationships = vec![
        relate("SPDXRef-DOCUMENT", "DESCRIBES", &image_id),
        relate(&image_id, "CONTAINS", &function_id),
    ];
    for (id, file) in files.iter().map(|(id, _)| id).zip(&sbom.files) {
        relationships.push(relate(&image_id, "CONTAINS", id));
        if file.path.starts_with(&format!("{}/", image::APP_DIR)) {
            relationships.push(relate(id, "GENERATED_FROM", &function_id));
        }
    }
    for c in std::iter::once(&sbom.function).chain(&sbom.crates) {
        let from = by_purl[&c.purl()];
        for dep in &c.depends_on {
            if let Some(to) = by_purl.get(dep) {
                relationships.push(relate(from, "DEPENDS_ON", to));
            }
        }
    }
    let doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}@{}", sbom.image, sbom.image_digest),
        "documentNamespace": format!("https://okonomi.dev/spdx/{}/{}", sbom.image, sbom.content_id()),
        "creationInfo": {
            "created": image::rfc3339(sbom.epoch),
            "creators": [format!("Tool: okonomi-{}", env!("CARGO_PKG_VERSION"))],
        },
        "documentDescribes": [image_id],
        "packages": packages,
        "files": files.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "relationships": relationships,
    });
    Blob::json(SPDX_MEDIA_TYPE, &doc)
}

/// SPDX 2.3's package verification code: SHA-1 of the sorted SHA-1s of its files.
fn verification_code(sbom: &Sbom) -> String {
    use sha2::Digest;
    let mut sums: Vec<&str> = sbom.files.iter().map(|f| f.sha1.as_str()).collect();
    sums.sort_unstable();
    hex::encode(sha1::Sha1::digest(sums.concat().as_bytes()))
}

fn package(id: &str, c: &Crate, purpose: &str) -> Value {
    let mut p = json!({
        "SPDXID": id,
        "name": c.name,
        "versionInfo": c.version,
        "downloadLocation": c.download.as_deref().unwrap_or("NOASSERTION"),
        "filesAnalyzed": false,
        "primaryPackagePurpose": purpose,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": c.license.as_deref().unwrap_or("NOASSERTION"),
        "copyrightText": "NOASSERTION",
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": c.purl(),
        }],
    });
    if let Some(sum) = &c.checksum {
        p["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": sum}]);
    }
    p
}

/// SPDX identifiers: letters, digits, `.` and `-` only, unique in the document.
#[derive(Default)]
struct Ids {
    used: BTreeMap<String, usize>,
}

impl Ids {
    fn package(&mut self, c: &Crate) -> String {
        self.unique(&format!(
            "SPDXRef-Package-cargo-{}-{}",
            sanitize(&c.name),
            sanitize(&c.version)
        ))
    }

    fn unique(&mut self, base: &str) -> String {
        let n = self.used.entry(base.to_string()).or_insert(0);
        *n += 1;
        if *n == 1 {
            base.to_string()
        } else {
            format!("{base}-{n}")
        }
    }
}

fn sanitize(text: &str) -> String {
    text.trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}
