#!/usr/bin/env bash
# The side-by-side span harness: tracejoin's RED metrics against the OpenTelemetry Collector's
# spanmetrics connector on one backlog of spans, in a real Kafka broker started here (127.0.0.1)
# and stopped at exit. Each system runs alone, as its real binary; prints CPU-seconds, spans per
# CPU-second, wall time and peak RSS of each. Arguments go to examples/span_compare.rs:
#   --spans N (1000000)  --spans-per-record N (5)  --partitions N (4)  --workers N|auto (1)
#   --only tracejoin|collector|both (both)  --repartition never|auto|always (never)
#   --compression none|lz4|zstd|snappy|gzip (none)  --scrape-ms N (150)  --timeout-secs N (900)
#   --rounds N (1: each system runs N times, alternating, on the one backlog; medians printed)
#   --tracejoin-kafka-property KEY=VALUE (repeatable: a librdkafka property for tracejoin to try)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
# Before anything here adds to it: how busy the machine was when the harness was started.
SPAN_COMPARE_LOAD_BEFORE_BUILD="$(cut -d' ' -f1-3 /proc/loadavg)"
SPAN_COMPARE_COMMAND="scripts/span-compare.sh $*"
export SPAN_COMPARE_LOAD_BEFORE_BUILD SPAN_COMPARE_COMMAND
scripts/install-deps.sh
scripts/collector.sh install
TRACEJOIN_COLLECTOR_BIN="$(scripts/collector.sh bin)"
cargo build --release --quiet --bin tracejoin --example span_compare
TRACEJOIN_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/tracejoin"
export TRACEJOIN_COLLECTOR_BIN TRACEJOIN_BIN
dir="$(mktemp -d "${TMPDIR:-/tmp}/tracejoin-span-compare.XXXXXX")"
trap 'scripts/kafka.sh stop "$dir/kafka"; rm -rf "$dir"' EXIT
TRACEJOIN_KAFKA_BOOTSTRAP="$(scripts/kafka.sh start "$dir/kafka" | sed -n 's/^BOOTSTRAP=//p')"
export TRACEJOIN_KAFKA_BOOTSTRAP
cargo run --release --quiet --example span_compare -- "$@"
