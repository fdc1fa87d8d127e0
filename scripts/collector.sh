#!/usr/bin/env bash
# The OpenTelemetry Collector (Kafka receiver, spanmetrics connector, Prometheus exporter) that
# tests/red_collector.rs cross-checks the RED metrics against, and (OTLP receiver, Kafka exporter)
# the producer of tests/scale_out.rs, built with the machine's own Go
# configuration (modules from `go env GOPROXY`).
#   scripts/collector.sh install   build it into the cache unless already there
#   scripts/collector.sh bin       print the binary's path; exit 1 if it is not built
# The Go module (tests/collector/) pins every component to one release: core
# go.opentelemetry.io/collector v0.165.0 (v1.71.0 for the stable modules), contrib v0.165.1;
# go.sum is committed. GOMODCACHE and GOCACHE live in $TRACEJOIN_CACHE/go/ (shared with the other
# Go builds), the binary in $TRACEJOIN_CACHE/otelcol-<release>/<hash of the module>/, so a fresh
# clone on this machine rebuilds nothing and an edit of the module builds a new binary.
# Each build's time is appended to $TRACEJOIN_CACHE/otelcol-<release>/build-times.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"
module="$here/../tests/collector"
release="v0.165.1"
prefix="$TRACEJOIN_CACHE/otelcol-$release"
hash="$(cat "$module/go.mod" "$module/go.sum" "$module"/*.go | sha256sum | cut -c1-16)"
bin="$prefix/$hash/otelcol-tracejoin"

install() {
  if [ -x "$bin" ]; then return 0; fi
  command -v go >/dev/null || { log "collector: Go is missing"; exit 1; }
  mkdir -p "$prefix/$hash"
  go_env
  local mods_before; mods_before="$(find "$TRACEJOIN_CACHE/go/mod/cache/download" -name '*.zip' 2>/dev/null | wc -l)"
  log "collector: building otelcol-tracejoin (contrib $release) with the machine's Go configuration"
  local t0 t1; t0=$(date +%s)
  (cd "$module" && GOFLAGS="-buildvcs=false -mod=readonly" \
    go build -trimpath -ldflags="-s -w" -o "$bin.tmp" . >&2)
  mv "$bin.tmp" "$bin"
  t1=$(date +%s)
  log "collector: built in $((t1 - t0)) s ($(go env GOVERSION)) -> $bin"
  printf '%s %s hash=%s build_seconds=%s module_zips_before=%s go=%s\n' "$(date -u +%FT%TZ)" \
    "$release" "$hash" "$((t1 - t0))" "$mods_before" "$(go env GOVERSION)" >> "$prefix/build-times"
}

case "${1:-}" in
  install) install ;;
  bin)
    if [ -x "$bin" ]; then echo "$bin"
    else log "collector: not built for this module ($hash); run scripts/collector.sh install"; exit 1; fi ;;
  *) echo "usage: $0 install|bin" >&2; exit 2 ;;
esac
