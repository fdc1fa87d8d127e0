#!/usr/bin/env bash
# VictoriaLogs (Apache-2.0), the real server of Loki's push protocol the Loki sink is tested against.
# Grafana Loki itself is AGPL: it is never built here (deploy/ runs its official image for users).
#   scripts/victorialogs.sh install        build victoria-logs (modules from the machine's Go
#                                          configuration, `go env GOPROXY`) into the cache
#   scripts/victorialogs.sh start DIR      run it on 127.0.0.1 (free port), storage in DIR;
#                                          prints "VICTORIALOGS_URL=http://127.0.0.1:PORT"
#   scripts/victorialogs.sh start DIR PORT run it on that port (a restart keeps its address)
#   scripts/victorialogs.sh start-tls DIR  the same, serving HTTPS only (-tls) with a certificate of
#                                          a test CA made in DIR/tls (scripts/certs.sh), and a
#                                          second HTTPS port that requires a client certificate
#                                          of that CA: VictoriaLogs' own mTLS (-mtls) is in its
#                                          Enterprise build only, so Debian's socat (OpenSSL)
#                                          terminates it there and forwards to the TLS port.
#                                          Prints KEY=VALUE lines: TLS_URL, MTLS_URL, CA_FILE,
#                                          CLIENT_CERT_FILE, CLIENT_KEY_FILE, ROGUE_CA_FILE,
#                                          ROGUE_CLIENT_CERT_FILE, ROGUE_CLIENT_KEY_FILE
#   scripts/victorialogs.sh stop DIR       stop the instance started with DIR (its data stays)
#   scripts/victorialogs.sh bin            print the binary's path (after install)
# The Go module and build caches live in the cache too, so a fresh clone on this machine rebuilds
# nothing. `install` logs the build time; the first (cold) build is recorded in
# $TRACEJOIN_CACHE/victorialogs-$version/build-times.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"
version="${TRACEJOIN_VICTORIALOGS_VERSION:-v1.52.1}"
pkg="github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs"
prefix="$TRACEJOIN_CACHE/victorialogs-$version"
bin="$prefix/bin/victoria-logs"

install() {
  if [ -x "$bin" ] && [ -f "$prefix/.complete" ]; then return 0; fi
  command -v go >/dev/null || { log "victorialogs: Go is missing (https://go.dev/dl/)"; exit 1; }
  mkdir -p "$prefix/bin"
  go_env
  log "victorialogs: go install $pkg@$version"
  local t0 t1; t0=$(date +%s)
  GOBIN="$prefix/bin" GOFLAGS=-mod=mod go install -trimpath "$pkg@$version" >&2
  t1=$(date +%s)
  log "victorialogs: built in $((t1 - t0)) s ($(go env GOVERSION))"
  printf '%s %s build_seconds=%s go=%s\n' "$(date -u +%FT%TZ)" "$version" "$((t1 - t0))" \
    "$(go env GOVERSION)" >> "$prefix/build-times"
  touch "$prefix/.complete"
}

start() {
  local dir="$1" port="${2:-}"; install
  mkdir -p "$dir/data"
  [ -n "$port" ] || port="$(free_port)"
  # -retentionPeriod: the tests write "now" timestamps; 10y keeps back-dated fixtures too.
  daemon_start "$dir" victorialogs "$bin" -httpListenAddr="127.0.0.1:$port" \
      -storageDataPath="$dir/data" -retentionPeriod=10y -loggerLevel=WARN
  echo "$port" > "$dir/victorialogs.port"
  daemon_ready "$dir" victorialogs 30 curl -sf "http://127.0.0.1:$port/health"
  echo "VICTORIALOGS_URL=http://127.0.0.1:$port"
}

start_tls() {
  local dir="$1"; install
  command -v socat >/dev/null || { log "victorialogs: socat is missing (apt-get install socat)"; exit 1; }
  mkdir -p "$dir/data"
  "$here/certs.sh" "$dir/tls"
  local tls="$dir/tls" port mport; port="$(free_port)"; mport="$(free_port)"
  daemon_start "$dir" victorialogs "$bin" -httpListenAddr="127.0.0.1:$port" \
      -tls -tlsCertFile="$tls/server.crt" -tlsKeyFile="$tls/server.key" \
      -storageDataPath="$dir/data" -retentionPeriod=10y -loggerLevel=WARN
  daemon_ready "$dir" victorialogs 30 curl -sf --cacert "$tls/ca.crt" "https://127.0.0.1:$port/health"
  # verify=1 with cafile: the handshake fails unless the client presents a certificate of the CA.
  daemon_start "$dir" socat socat \
      "OPENSSL-LISTEN:$mport,bind=127.0.0.1,reuseaddr,fork,cert=$tls/server.crt,key=$tls/server.key,cafile=$tls/ca.crt,verify=1" \
      "OPENSSL:127.0.0.1:$port,cafile=$tls/ca.crt,verify=1"
  daemon_ready "$dir" socat 30 curl -sf --cacert "$tls/ca.crt" --cert "$tls/client.crt" \
      --key "$tls/client.key" "https://127.0.0.1:$mport/health"
  echo "TLS_URL=https://127.0.0.1:$port"
  echo "MTLS_URL=https://127.0.0.1:$mport"
  echo "CA_FILE=$tls/ca.crt"
  echo "CLIENT_CERT_FILE=$tls/client.crt"
  echo "CLIENT_KEY_FILE=$tls/client.key"
  echo "ROGUE_CA_FILE=$tls/rogue-ca.crt"
  echo "ROGUE_CLIENT_CERT_FILE=$tls/rogue-client.crt"
  echo "ROGUE_CLIENT_KEY_FILE=$tls/rogue-client.key"
}

stop() { daemon_stop "$1" socat 5; daemon_stop "$1" victorialogs 10; }

case "${1:-}" in
  install) install ;;
  start) start "${2:?data dir}" "${3:-}" ;;
  start-tls) start_tls "${2:?data dir}" ;;
  stop) stop "${2:?data dir}" ;;
  bin) install; echo "$bin" ;;
  *) echo "usage: $0 install | start DIR [PORT] | start-tls DIR | stop DIR | bin" >&2; exit 2 ;;
esac
