#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what it needs, starts the real services on
# 127.0.0.1 (Apache Kafka in KRaft mode, VictoriaLogs, …), runs every test, and stops the
# services again.
# Downloads and builds are cached outside the clone ($TRACEJOIN_CACHE, default ~/.cache/tracejoin).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
started=$(date +%s)

log "installing what the tests need"
scripts/install-deps.sh
scripts/kafka.sh install
scripts/victorialogs.sh install
scripts/prometheus.sh install
scripts/collector.sh install
scripts/helm.sh install
TRACEJOIN_HELM="$(scripts/helm.sh bin)"
TRACEJOIN_K8S_CHECK="$(scripts/helm.sh checker)"
export TRACEJOIN_HELM TRACEJOIN_K8S_CHECK
scripts/compose.sh install
TRACEJOIN_COMPOSE_CHECK="$(scripts/compose.sh checker)"
export TRACEJOIN_COMPOSE_CHECK
scripts/image.sh install
TRACEJOIN_PYTHON="$(scripts/python-env.sh)"
export TRACEJOIN_PYTHON

run_dir="$(mktemp -d "${TMPDIR:-/tmp}/tracejoin-test.XXXXXX")"
cleanup() {
  scripts/kafka.sh stop "$run_dir/kafka" || true
  scripts/kafka.sh stop "$run_dir/kafka-secure" || true
  scripts/victorialogs.sh stop "$run_dir/vl" || true
  scripts/victorialogs.sh stop "$run_dir/vl-tls" || true
  rm -rf "$run_dir"
}
trap cleanup EXIT
# Exports each KEY=VALUE line of standard input as PREFIX<KEY> (what a service script printed).
export_as() {
  local key value
  while IFS='=' read -r key value; do
    [ -n "$key" ] && export "$1$key=$value"
  done
  return 0
}

log "starting Apache Kafka"
TRACEJOIN_KAFKA_BOOTSTRAP="$(scripts/kafka.sh start "$run_dir/kafka" | sed -n 's/^BOOTSTRAP=//p')"
export TRACEJOIN_KAFKA_BOOTSTRAP
log "kafka at $TRACEJOIN_KAFKA_BOOTSTRAP"
log "starting a secured Apache Kafka (SASL_SSL/SCRAM, mTLS, ACLs) for tests/kafka_security.rs"
# Its addresses, certificates and users as TRACEJOIN_SECURE_<KEY> (SASL_SSL_BOOTSTRAP, CA_FILE, …).
export_as TRACEJOIN_SECURE_ < <(scripts/kafka.sh start-secure "$run_dir/kafka-secure")
[ -n "${TRACEJOIN_SECURE_SASL_SSL_BOOTSTRAP:-}" ] || { log "the secured broker did not start"; exit 1; }
log "secured kafka at $TRACEJOIN_SECURE_SASL_SSL_BOOTSTRAP (SASL_SSL), $TRACEJOIN_SECURE_MTLS_BOOTSTRAP (mTLS)"
log "starting VictoriaLogs (a real server of Loki's push protocol)"
TRACEJOIN_VICTORIALOGS_URL="$(scripts/victorialogs.sh start "$run_dir/vl" | sed -n 's/^VICTORIALOGS_URL=//p')"
export TRACEJOIN_VICTORIALOGS_URL
log "victorialogs at $TRACEJOIN_VICTORIALOGS_URL"
log "starting VictoriaLogs over TLS (a private CA; a client-certificate port) for tests/loki_tls.rs"
# Its URLs and certificates as TRACEJOIN_VLTLS_<KEY> (TLS_URL, MTLS_URL, CA_FILE, …).
export_as TRACEJOIN_VLTLS_ < <(scripts/victorialogs.sh start-tls "$run_dir/vl-tls")
[ -n "${TRACEJOIN_VLTLS_TLS_URL:-}" ] || { log "VictoriaLogs over TLS did not start"; exit 1; }
log "victorialogs over TLS at $TRACEJOIN_VLTLS_TLS_URL, client certificates required at $TRACEJOIN_VLTLS_MTLS_URL"

log "cargo fmt --check; cargo clippy -D warnings"
cargo fmt --check
cargo clippy --release --lib --bins --tests --examples --benches -- -D warnings
log "cargo test (release profile: the same build the demo and benches use)"
cargo test --release --lib --bins --tests --examples -- --test-threads 2
log "the container image: Dockerfile built with buildah, run as its user on a read-only root"
scripts/image.sh test
log "benches, once each in criterion's test mode (they must build and run; timings come from cargo bench)"
cargo test --release --benches
log "suite finished in $(( $(date +%s) - started )) s"
