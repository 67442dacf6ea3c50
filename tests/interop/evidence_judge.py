"""An independent judge of connapp's change evidence.

The in-toto project's own Statement v1 binding (in-toto-attestation) parses
and validates the statement; securesystemslib's DSSE implementation checks
the envelope's signature with the public key. Nothing here was written for
connapp beyond reading the files.

Usage: evidence_judge.py EVIDENCE [PUBKEY_HEX_FILE]
Prints one JSON object; exits 0 only when the statement is valid and, given
a key, the signature verifies.
"""

import base64
import json
import sys

from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement


def main() -> int:
    evidence = json.load(open(sys.argv[1], encoding="utf-8"))
    report = {"signed": "payloadType" in evidence}
    if report["signed"]:
        from securesystemslib.dsse import Envelope
        from securesystemslib.signer import SSlibKey

        # from_dict consumes the dict it is given: hand it a copy.
        env = Envelope.from_dict(json.loads(json.dumps(evidence)))
        report["payload_type"] = env.payload_type
        if len(sys.argv) > 2:
            public = open(sys.argv[2], encoding="utf-8").read().strip()
            keyid = evidence["signatures"][0].get("keyid", "")
            key = SSlibKey(keyid, "ed25519", "ed25519", {"public": public})
            try:
                env.verify([key], 1)
                report["signature"] = "ok"
            except Exception as e:  # the judge reports, the test decides
                report["signature"] = f"refused: {e}"
        statement_json = base64.b64decode(evidence["payload"]).decode("utf-8", "replace")
    else:
        statement_json = json.dumps(evidence)
    try:
        pb = json_format.Parse(statement_json, statement_pb2.Statement())
        Statement.copy_from_pb(pb).validate()
        report["statement"] = "valid"
        report["subjects"] = {s.name: dict(s.digest) for s in pb.subject}
        report["predicate_type"] = pb.predicate_type
    except (ValueError, json_format.ParseError) as e:
        report["statement"] = f"invalid: {e}"
    print(json.dumps(report))
    ok = report["statement"] == "valid" and report.get("signature", "ok") == "ok"
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
