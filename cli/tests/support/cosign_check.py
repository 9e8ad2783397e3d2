#!/usr/bin/env python3
"""An independent check of what `okonomi build --sign` pushed, written from
Sigstore's and OCI's documents rather than from okonomi's code: it reads the
registry over the plain distribution API (urllib), verifies cosign's simple
signing signature and the DSSE attestations with `cryptography`, and saves
the SBOMs it finds through the referrers (API or tag schema) into OUTDIR for
the public validators.

usage: cosign_check.py REGISTRY_URL REPOSITORY DIGEST PUBLIC_KEY OUTDIR

Prints a JSON summary on stdout; exits 1 with the reason on stderr when any
check fails.
"""

import base64
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
SIG_ANNOTATION = "dev.cosignproject.cosign/signature"


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def get(url, accept=None):
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type", "")


def blob(base, repository, digest):
    status, body, _ = get(f"{base}/v2/{repository}/blobs/{digest}")
    if status != 200:
        fail(f"blob {digest}: HTTP {status}")
    if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
        fail(f"blob {digest}: content does not match its digest")
    return body


def manifest(base, repository, reference, accept=MANIFEST):
    status, body, _ = get(f"{base}/v2/{repository}/manifests/{reference}", accept)
    if status != 200:
        return None, None
    return json.loads(body), "sha256:" + hashlib.sha256(body).hexdigest()


def pae(payload_type, payload):
    # DSSE v1 pre-authentication encoding.
    return b"DSSEv1 %d %s %d %s" % (
        len(payload_type), payload_type.encode(), len(payload), payload)


def main():
    base, repository, digest, key_path, outdir = sys.argv[1:6]
    host = base.split("://", 1)[1]
    with open(key_path, "rb") as f:
        key = serialization.load_pem_public_key(f.read())
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        fail("the public key is not ECDSA P-256")
    hex_digest = digest.split(":", 1)[1]
    summary = {"digest": digest}

    # cosign's signature: tag sha256-HEX.sig, one simple signing layer.
    sig_manifest, sig_digest = manifest(base, repository, f"sha256-{hex_digest}.sig")
    if sig_manifest is None:
        fail(f"no tag sha256-{hex_digest}.sig")
    layers = sig_manifest.get("layers", [])
    if len(layers) != 1 or layers[0]["mediaType"] != SIMPLE_SIGNING:
        fail(f"the .sig manifest's layers are not one simple signing payload: {layers}")
    payload = blob(base, repository, layers[0]["digest"])
    signature = base64.b64decode(layers[0]["annotations"][SIG_ANNOTATION])
    try:
        key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        fail("the simple signing signature does not verify with the key")
    claims = json.loads(payload)
    critical = claims["critical"]
    if critical["type"] != "cosign container image signature":
        fail(f"wrong payload type {critical['type']!r}")
    if critical["image"]["docker-manifest-digest"] != digest:
        fail(f"the payload signs {critical['image']['docker-manifest-digest']}, not {digest}")
    if critical["identity"]["docker-reference"] != f"{host}/{repository}":
        fail(f"the payload's identity is {critical['identity']['docker-reference']}")
    summary["signature"] = {"manifest": sig_digest, "identity": critical["identity"]["docker-reference"]}

    # Attestations: tag sha256-HEX.att, DSSE envelopes over in-toto statements.
    att_manifest, _ = manifest(base, repository, f"sha256-{hex_digest}.att")
    if att_manifest is None:
        fail(f"no tag sha256-{hex_digest}.att")
    predicates = []
    for layer in att_manifest["layers"]:
        if layer["mediaType"] != DSSE:
            fail(f"attestation layer of type {layer['mediaType']}")
        envelope = json.loads(blob(base, repository, layer["digest"]))
        body = base64.b64decode(envelope["payload"])
        message = pae(envelope["payloadType"], body)
        ok = False
        for s in envelope["signatures"]:
            try:
                key.verify(base64.b64decode(s["sig"]), message, ec.ECDSA(hashes.SHA256()))
                ok = True
            except InvalidSignature:
                pass
        if not ok:
            fail(f"the {layer['annotations'].get('predicateType')} envelope does not verify")
        statement = json.loads(body)
        if statement["_type"] != "https://in-toto.io/Statement/v1":
            fail(f"statement type {statement['_type']}")
        if statement["subject"][0]["digest"]["sha256"] != hex_digest:
            fail(f"the {statement['predicateType']} statement is about another image")
        predicates.append(statement["predicateType"])
        if statement["predicateType"] == "https://slsa.dev/provenance/v1":
            summary["provenance"] = statement["predicate"]
    summary["predicates"] = sorted(predicates)

    # Referrers: the API if the registry has it, else the tag schema's index.
    status, body, content_type = get(f"{base}/v2/{repository}/referrers/{digest}", INDEX)
    if status == 200 and content_type.startswith(INDEX):
        index, summary["referrers_via"] = json.loads(body), "api"
    else:
        index, _ = manifest(base, repository, f"sha256-{hex_digest}", INDEX)
        summary["referrers_via"] = "tag schema"
        if index is None:
            fail(f"no referrers API (HTTP {status}) and no tag sha256-{hex_digest}")
    referrers = []
    for entry in index["manifests"]:
        m, _ = manifest(base, repository, entry["digest"])
        if m is None:
            fail(f"referrer {entry['digest']} is listed but not in the registry")
        if m.get("subject", {}).get("digest") != digest:
            fail(f"referrer {entry['digest']} has another subject")
        referrers.append({"artifactType": m.get("artifactType"), "digest": entry["digest"]})
        names = {"application/spdx+json": "sbom.spdx.json",
                 "application/vnd.cyclonedx+json": "sbom.cdx.json",
                 "application/vnd.in-toto+json": "provenance.json"}
        if m.get("artifactType") in names:
            data = blob(base, repository, m["layers"][0]["digest"])
            with open(os.path.join(outdir, names[m["artifactType"]]), "wb") as f:
                f.write(data)
    summary["referrers"] = referrers
    print(json.dumps(summary, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
