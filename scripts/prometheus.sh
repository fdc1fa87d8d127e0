#!/usr/bin/env bash
# A real Prometheus (Debian's package) on 127.0.0.1 that scrapes the given targets every second,
# with exemplar storage on (so it asks for OpenMetrics, and keeps the exemplars it finds).
#   scripts/prometheus.sh install                  apt-get install prometheus unless present
#   scripts/prometheus.sh start DIR TARGET...      start it with config and TSDB in DIR, scraping
#                                                  each host:port TARGET's /metrics (job "tracejoin");
#                                                  prints "PROMETHEUS_URL=http://127.0.0.1:PORT" once ready
#   scripts/prometheus.sh start-config DIR         start it with the caller's DIR/prometheus.yml
#                                                  (e.g. a scrape over https with tls_config)
#   scripts/prometheus.sh stop DIR                 stop the instance started with DIR
# A scraped series shows up a few seconds after start (service discovery settles in ~5 s):
# poll /api/v1/query rather than sleeping.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"

install() {
  if command -v prometheus >/dev/null && command -v promtool >/dev/null; then return 0; fi
  log "prometheus: installing Debian's prometheus package"
  apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >&2
  # The package starts a system service on :9090; the tests run their own instance.
  (systemctl stop prometheus || service prometheus stop) >/dev/null 2>&1 || true
}

start() {
  local dir="$1"; shift
  [ "$#" -gt 0 ] || { echo "usage: $0 start DIR TARGET..." >&2; exit 2; }
  install
  mkdir -p "$dir/data"
  local targets="" t
  for t in "$@"; do targets="$targets'$t',"; done
  cat > "$dir/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: tracejoin
    static_configs:
      - targets: [${targets%,}]
YML
  run "$dir"
}

# run DIR: Prometheus on a free port with DIR/prometheus.yml and its TSDB in DIR/data.
run() {
  local dir="$1"
  mkdir -p "$dir/data"
  promtool check config "$dir/prometheus.yml" >&2
  local port; port="$(free_port)"
  daemon_start "$dir" prometheus prometheus --config.file="$dir/prometheus.yml" \
      --storage.tsdb.path="$dir/data" --web.listen-address="127.0.0.1:$port" --log.level=warn \
      --enable-feature=exemplar-storage
  daemon_ready "$dir" prometheus 30 curl -sf "http://127.0.0.1:$port/-/ready"
  echo "PROMETHEUS_URL=http://127.0.0.1:$port"
}

stop() { daemon_stop "$1" prometheus 5; }

case "${1:-}" in
  install) install ;;
  start) shift; start "$@" ;;
  start-config) install; run "${2:?dir with prometheus.yml}" ;;
  stop) stop "$2" ;;
  *) echo "usage: $0 install | start DIR TARGET... | start-config DIR | stop DIR" >&2; exit 2 ;;
esac
