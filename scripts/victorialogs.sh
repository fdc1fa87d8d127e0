#!/usr/bin/env bash
# VictoriaLogs (Apache-2.0), the real server of Loki's push protocol the Loki sink is tested against.
# Grafana Loki itself is AGPL: it is never built here (deploy/ runs its official image for users).
#   scripts/victorialogs.sh install        build victoria-logs (modules from the machine's Go
#                                          configuration, `go env GOPROXY`) into the cache
#   scripts/victorialogs.sh start DIR      run it on 127.0.0.1 (free port), storage in DIR;
#                                          prints "VICTORIALOGS_URL=http://127.0.0.1:PORT"
#   scripts/victorialogs.sh start DIR PORT run it on that port (a restart keeps its address)
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

stop() { daemon_stop "$1" victorialogs 10; }

case "${1:-}" in
  install) install ;;
  start) start "${2:?data dir}" "${3:-}" ;;
  stop) stop "${2:?data dir}" ;;
  bin) install; echo "$bin" ;;
  *) echo "usage: $0 install | start DIR [PORT] | stop DIR | bin" >&2; exit 2 ;;
esac
