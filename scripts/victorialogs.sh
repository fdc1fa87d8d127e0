#!/usr/bin/env bash
# VictoriaLogs (Apache-2.0), the real server of Loki's push protocol the Loki sink is tested against.
# Grafana Loki itself is AGPL: it is never built here (deploy/ runs its official image for users).
#   scripts/victorialogs.sh install        build victoria-logs from the Go module proxy into the cache
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
  mkdir -p "$prefix/bin" "$TRACEJOIN_CACHE/go/mod" "$TRACEJOIN_CACHE/go/build"
  log "victorialogs: go install $pkg@$version"
  local t0 t1; t0=$(date +%s)
  GOBIN="$prefix/bin" GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 \
    GOMODCACHE="$TRACEJOIN_CACHE/go/mod" GOCACHE="$TRACEJOIN_CACHE/go/build" \
    GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}" \
    go install -trimpath "$pkg@$version" >&2
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
  nohup "$bin" -httpListenAddr="127.0.0.1:$port" -storageDataPath="$dir/data" \
      -retentionPeriod=10y -loggerLevel=WARN >>"$dir/victorialogs.log" 2>&1 &
  echo $! > "$dir/victorialogs.pid"
  echo "$port" > "$dir/victorialogs.port"
  if ! wait_for 30 curl -sf "http://127.0.0.1:$port/health"; then
    log "victorialogs: not healthy within 30 s; its log:"; tail -50 "$dir/victorialogs.log" >&2; exit 1
  fi
  echo "VICTORIALOGS_URL=http://127.0.0.1:$port"
}

stop() {
  local dir="$1"
  [ -f "$dir/victorialogs.pid" ] || return 0
  local pid; pid="$(cat "$dir/victorialogs.pid")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/victorialogs.pid"
}

case "${1:-}" in
  install) install ;;
  start) start "${2:?data dir}" "${3:-}" ;;
  stop) stop "${2:?data dir}" ;;
  bin) install; echo "$bin" ;;
  *) echo "usage: $0 install | start DIR [PORT] | stop DIR | bin" >&2; exit 2 ;;
esac
