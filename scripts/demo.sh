#!/usr/bin/env bash
# The README's first command: build tracejoin and run the demo (the real pipeline on an
# embedded Kafka with generated traffic). Extra arguments go to `tracejoin demo`
# (e.g. --duration 60s --rate 2000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh build
cargo build --release --quiet
exec ./target/release/tracejoin demo "$@"
