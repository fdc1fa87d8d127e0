#!/usr/bin/env bash
# Test certificates made with openssl, for the TLS tests of the Loki output (VictoriaLogs over
# TLS) and of /metrics. Valid for 2 days: fixtures, never for production.
#   scripts/certs.sh DIR    writes into DIR:
#     ca.crt ca.key                      the test CA
#     server.crt server.key              a server certificate of the CA for 127.0.0.1 and localhost
#     client.crt client.key              a client certificate of the CA (CN tracejoin-client)
#     rogue-ca.crt rogue-ca.key          another CA, trusted by nobody
#     rogue-client.crt rogue-client.key  a client certificate of the rogue CA, same CN
#     rogue-server.crt rogue-server.key  a server certificate of the rogue CA for 127.0.0.1
#   Keys are unencrypted PKCS#8, mode 600. Prints nothing on success.
set -euo pipefail
dir="${1:?usage: $0 DIR}"
mkdir -p "$dir"
days=2
for ca in ca rogue-ca; do
  openssl req -x509 -newkey rsa:2048 -nodes -days $days -subj "/CN=tracejoin-test-$ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout "$dir/$ca.key" -out "$dir/$ca.crt" 2>/dev/null
done
# leaf NAME CA CN EXTENSIONS: a key and a certificate signed by CA.
leaf() {
  local name="$1" ca="$2" cn="$3" ext="$4"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/$name.key" 2>/dev/null
  openssl req -new -key "$dir/$name.key" -subj "/CN=$cn" -out "$dir/$name.csr"
  printf '%s\n' "$ext" > "$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/$ca.crt" -CAkey "$dir/$ca.key" -CAcreateserial \
      -days $days -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$dir/$name.ext"
}
server_ext="basicConstraints=CA:FALSE
subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth"
client_ext="basicConstraints=CA:FALSE
extendedKeyUsage=clientAuth"
leaf server ca 127.0.0.1 "$server_ext"
leaf client ca tracejoin-client "$client_ext"
leaf rogue-client rogue-ca tracejoin-client "$client_ext"
leaf rogue-server rogue-ca 127.0.0.1 "$server_ext"
chmod 600 "$dir"/*.key
