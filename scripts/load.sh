#!/usr/bin/env bash
# The load harness against a real Kafka broker started here (127.0.0.1), stopped at exit.
# Prints throughput, latency percentiles and peak memory. Arguments go to examples/load.rs:
#   --traces-per-sec N (2000)  --seconds N (30)  --backlog-traces N (50000)  --partitions N (4)
#   --workers N (1)  --repartition never|auto|always (never)  --backlog-only 1
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
scripts/install-deps.sh
dir="$(mktemp -d "${TMPDIR:-/tmp}/tracejoin-load.XXXXXX")"
trap 'scripts/kafka.sh stop "$dir/kafka"; rm -rf "$dir"' EXIT
TRACEJOIN_KAFKA_BOOTSTRAP="$(scripts/kafka.sh start "$dir/kafka" | sed -n 's/^BOOTSTRAP=//p')"
export TRACEJOIN_KAFKA_BOOTSTRAP
cargo run --release --quiet --example load -- "$@"
