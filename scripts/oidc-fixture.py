#!/usr/bin/env python3
"""An OIDC identity provider's signing material for the secured test broker, standard library and
openssl only: an RSA key, the JWKS the broker verifies tokens with (a file: Kafka reads
`file://` JWKS URLs at start-up), and one signed access token (RS256) for the test's token
endpoint to hand out. Fixtures, valid for 2 days.

    oidc-fixture.py DIR SUBJECT AUDIENCE ISSUER
writes DIR/oidc.key, DIR/jwks.json, DIR/oidc-token.jwt;
    oidc-fixture.py sign DIR SUBJECT AUDIENCE ISSUER SECONDS
prints a new token valid for SECONDS, signed with DIR/oidc.key (short-lived tokens, to see
refreshes).
"""
import base64
import json
import subprocess
import sys
import time

SIGN = sys.argv[1] == "sign"
args = sys.argv[2:] if SIGN else sys.argv[1:]
d, sub, aud, iss = args[:4]
ttl = int(args[4]) if SIGN else 2 * 86400
KID = "tracejoin-test-idp-1"


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


key = f"{d}/oidc.key"


def token() -> str:
    now = int(time.time())
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": KID}).encode())
    claims = b64url(json.dumps({"sub": sub, "aud": aud, "iss": iss, "iat": now - 60,
                                "exp": now + ttl, "scope": "kafka"}).encode())
    signing_input = f"{header}.{claims}".encode()
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input,
                         check=True, capture_output=True).stdout
    return f"{header}.{claims}.{b64url(sig)}"


if SIGN:
    print(token())
    sys.exit(0)
subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", key], check=True, capture_output=True)
modulus = subprocess.run(["openssl", "rsa", "-in", key, "-noout", "-modulus"], check=True,
                         capture_output=True, text=True).stdout.strip().split("=", 1)[1]
n = int(modulus, 16).to_bytes((len(modulus) + 1) // 2, "big")
jwks = {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": KID, "n": b64url(n),
                  "e": b64url((65537).to_bytes(3, "big"))}]}
with open(f"{d}/jwks.json", "w") as f:
    json.dump(jwks, f)
with open(f"{d}/oidc-token.jwt", "w") as f:
    f.write(token())
