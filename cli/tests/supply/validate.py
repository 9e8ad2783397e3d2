"""Independent checks of what okonomi attaches to an image, with public libraries:

  validate.py spdx FILE              SPDX 2.3 JSON, parsed and validated by spdx-tools
  validate.py cyclonedx FILE         CycloneDX 1.6 JSON, against the schema (cyclonedx-python-lib)
  validate.py cosign PUB PAYLOAD SIG cosign signature: base64 DER ECDSA P-256 SHA-256 over PAYLOAD
  validate.py dsse PUB ENVELOPE      DSSE envelope: signature over the PAE of its payload

Prints what it checked and exits 0, or prints why not and exits 1.
"""

import base64
import json
import sys


def spdx(path):
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    document = parse_file(path)
    errors = validate_full_spdx_document(document)
    for e in errors:
        print(f"invalid: {e.validation_message} ({e.context})")
    if errors:
        return 1
    print(f"valid SPDX {document.creation_info.spdx_version}: {len(document.packages)} packages, {len(document.files)} files")
    return 0


def cyclonedx(path):
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    with open(path, encoding="utf-8") as f:
        text = f.read()
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        print(f"invalid: {error}")
        return 1
    print(f"valid CycloneDX 1.6: {len(json.loads(text).get('components', []))} components")
    return 0


def _verify(pub_path, data, signature):
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    with open(pub_path, "rb") as f:
        key = serialization.load_pem_public_key(f.read())
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        print("invalid: not a P-256 public key")
        return 1
    try:
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        print("invalid: the signature does not verify")
        return 1
    print("valid signature")
    return 0


def cosign(pub_path, payload_path, signature_b64):
    with open(payload_path, "rb") as f:
        payload = f.read()
    return _verify(pub_path, payload, base64.b64decode(signature_b64))


def dsse(pub_path, envelope_path):
    with open(envelope_path, "rb") as f:
        envelope = json.load(f)
    payload = base64.b64decode(envelope["payload"])
    payload_type = envelope["payloadType"].encode()
    # DSSE v1 pre-authentication encoding, written out from the spec.
    pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type, len(payload), payload)
    sigs = envelope["signatures"]
    if not sigs:
        print("invalid: no signatures")
        return 1
    return _verify(pub_path, pae, base64.b64decode(sigs[0]["sig"]))


if __name__ == "__main__":
    commands = {"spdx": spdx, "cyclonedx": cyclonedx, "cosign": cosign, "dsse": dsse}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        sys.exit(2)
    sys.exit(commands[sys.argv[1]](*sys.argv[2:]))
