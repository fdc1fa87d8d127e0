#!/usr/bin/env python3
"""An OIDC identity provider's signing material for the secured test broker, standard library and
openssl only: an RSA key, the JWKS the broker verifies tokens with (a file: Kafka reads
`file://` JWKS URLs at start-up), and one signed access token (RS256) for the test's token
endpoint to hand out. Fixtures, valid for 2 days.

    oidc-fixture.py DIR SUBJECT AUDIENCE ISSUER
writes DIR/oidc.key, DIR/jwks.json, DIR/oidc-token.jwt.
"""
import base64
import json
import subprocess
import sys
import time

d, sub, aud, iss = sys.argv[1:5]


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


key = f"{d}/oidc.key"
subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", key], check=True, capture_output=True)
modulus = subprocess.run(["openssl", "rsa", "-in", key, "-noout", "-modulus"], check=True,
                         capture_output=True, text=True).stdout.strip().split("=", 1)[1]
n = int(modulus, 16).to_bytes((len(modulus) + 1) // 2, "big")
kid = "tracejoin-test-idp-1"
jwks = {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": b64url(n),
                  "e": b64url((65537).to_bytes(3, "big"))}]}
with open(f"{d}/jwks.json", "w") as f:
    json.dump(jwks, f)
now = int(time.time())
header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid}).encode())
claims = b64url(json.dumps({"sub": sub, "aud": aud, "iss": iss, "iat": now - 60,
                            "exp": now + 2 * 86400, "scope": "kafka"}).encode())
signing_input = f"{header}.{claims}".encode()
sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input,
                     check=True, capture_output=True).stdout
with open(f"{d}/oidc-token.jwt", "w") as f:
    f.write(f"{header}.{claims}.{b64url(sig)}")
