#!/usr/bin/env python3
"""Outside checks of a bizra release bundle, with stock tooling only.

    python3 tests/release_check/check_bundle.py BUNDLE_DIR PUBKEY_HEX

1. sbom.cdx.json validates against the CycloneDX 1.5 JSON schema
   (cyclonedx-python-lib's strict JSON validator).
2. provenance.intoto.dsse.json verifies with securesystemslib's DSSE
   implementation under the Ed25519 key PUBKEY_HEX, its payloadType is the
   in-toto one, its payload is provenance.intoto.json byte for byte, and it is
   an in-toto Statement v1 (SLSA provenance v1) whose subject "bizra" has the
   SHA-256 of bin/bizra.
3. manifest.dsse.json and sbom.dsse.json verify the same way against
   manifest.json and sbom.cdx.json.

Prints one "ok" line per check; exits 1 on the first failure (with a line
naming it), 2 on bad usage. Requirements: requirements.txt beside this file.
"""

import hashlib
import json
import re
import sys
from pathlib import Path

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

ENVELOPES = [
    ("provenance.intoto.dsse.json", "provenance.intoto.json", "application/vnd.in-toto+json"),
    ("manifest.dsse.json", "manifest.json", "application/vnd.bizra.release-manifest+json"),
    ("sbom.dsse.json", "sbom.cdx.json", "application/vnd.cyclonedx+json"),
]


class CheckFailed(Exception):
    pass


def check_sbom(bundle: Path) -> str:
    text = (bundle / "sbom.cdx.json").read_text(encoding="utf-8")
    doc = json.loads(text)
    if doc.get("specVersion") != "1.5":
        raise CheckFailed(f"sbom.cdx.json: specVersion is {doc.get('specVersion')!r}, expected '1.5'")
    error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(text)
    if error is not None:
        # error.data is the jsonschema ValidationError; its str() dumps the whole schema.
        detail = getattr(error, "data", None)
        where = "/".join(str(p) for p in getattr(detail, "absolute_path", []))
        message = getattr(detail, "message", None) or str(error).splitlines()[0]
        raise CheckFailed(f"sbom.cdx.json: not valid CycloneDX 1.5 at /{where}: {message}")
    n = len(doc.get("components", []))
    return f"sbom.cdx.json is valid CycloneDX 1.5 JSON (schema, strict), {n} components"


def check_envelope(bundle: Path, key: SSlibKey, env_name: str, file_name: str, payload_type: str) -> bytes:
    data = json.loads((bundle / env_name).read_text(encoding="utf-8"))
    envelope = Envelope.from_dict(data)
    if envelope.payload_type != payload_type:
        raise CheckFailed(f"{env_name}: payloadType {envelope.payload_type!r}, expected {payload_type!r}")
    try:
        envelope.verify([key], 1)
    except Exception as e:  # securesystemslib raises VerificationError
        raise CheckFailed(f"{env_name}: DSSE verification failed: {e}") from e
    if envelope.payload != (bundle / file_name).read_bytes():
        raise CheckFailed(f"{file_name}: differs from the payload signed in {env_name}")
    return envelope.payload


def check_provenance(bundle: Path, payload: bytes) -> str:
    st = json.loads(payload)
    if st.get("_type") != "https://in-toto.io/Statement/v1":
        raise CheckFailed(f"provenance.intoto.json: _type is {st.get('_type')!r}")
    if st.get("predicateType") != "https://slsa.dev/provenance/v1":
        raise CheckFailed(f"provenance.intoto.json: predicateType is {st.get('predicateType')!r}")
    h = hashlib.sha256()
    with open(bundle / "bin" / "bizra", "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    want = h.hexdigest()
    got = [s.get("digest", {}).get("sha256") for s in st.get("subject", []) if s.get("name") == "bizra"]
    if got != [want]:
        raise CheckFailed(f"provenance.intoto.json: subject bizra sha256 {got}, bin/bizra has {want}")
    return want


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not re.fullmatch(r"[0-9a-f]{64}", argv[2]):
        print("usage: check_bundle.py BUNDLE_DIR PUBKEY_HEX (64 lower-case hex digits)", file=sys.stderr)
        return 2
    bundle, pubkey = Path(argv[1]), argv[2]
    if not bundle.is_dir():
        print(f"error: {bundle} is not a directory", file=sys.stderr)
        return 2
    key = SSlibKey(keyid=pubkey, keytype="ed25519", scheme="ed25519", keyval={"public": pubkey})
    try:
        print("ok: " + check_sbom(bundle))
        for env_name, file_name, payload_type in ENVELOPES:
            payload = check_envelope(bundle, key, env_name, file_name, payload_type)
            line = f"{env_name} verifies (securesystemslib DSSE, ed25519 {pubkey[:16]}…) and signs {file_name}"
            if file_name == "provenance.intoto.json":
                sha = check_provenance(bundle, payload)
                line += f"; in-toto Statement v1 / SLSA provenance v1, subject bizra sha256 {sha}"
            print("ok: " + line)
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError) as e:
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
