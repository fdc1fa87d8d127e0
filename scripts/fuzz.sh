#!/usr/bin/env bash
# Runs every cargo-fuzz target under fuzz/ for SECONDS each (default 60): a soak, not part of
# scripts/test.sh. Installs the nightly toolchain and cargo-fuzz if missing. Exits non-zero if
# any target found a crash (a panic, a timeout, an out-of-memory); the reproducer is under
# fuzz/artifacts/<target>/, and `cd fuzz && cargo +nightly fuzz run -s none <target> <file>`
# replays it.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Environment:
#   FUZZ_SANITIZER  none (default) or address. The targets are safe Rust and look for panics;
#                   with address, librdkafka's configure step fails (cc-rs builds the bundled
#                   zstd with -fsanitize=address, and the probe links it without the runtime).
#   FUZZ_JOBS       parallel fuzzing processes per target (default 1).
#   CARGO_TARGET_DIR  default $TRACEJOIN_CACHE/fuzz-target, away from the main build's lock.
# New corpus entries stay in fuzz/corpus/<target>/, ignored by git except seed-* and kept-*
# files: copy an interesting one to kept-<name> to commit it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

seconds="${1:-60}"
shift || true
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$TRACEJOIN_CACHE/fuzz-target}"
sanitizer="${FUZZ_SANITIZER:-none}"
jobs="${FUZZ_JOBS:-1}"

if ! rustup toolchain list | grep -q '^nightly'; then
  log "installing the nightly toolchain (cargo-fuzz needs it)"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

cd fuzz
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

log "building ${targets[*]} (sanitizer $sanitizer)"
cargo +nightly fuzz build -s "$sanitizer"

# With -jobs, libFuzzer runs workers whose output goes to fuzz-<n>.log in the current directory.
parallel=()
if [ "$jobs" -gt 1 ]; then
  parallel=(-jobs="$jobs" -workers="$jobs")
fi

failed=()
for t in "${targets[@]}"; do
  out="$CARGO_TARGET_DIR/fuzz-$t.log"
  log "fuzzing $t for ${seconds}s (output: $out)"
  mkdir -p "corpus/$t" "artifacts/$t"
  before="$(ls "artifacts/$t")"
  # -timeout: an input that takes 10 s is a stalled partition, reported like a crash.
  status=0
  cargo +nightly fuzz run -s "$sanitizer" "$t" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 "${parallel[@]}" \
    >"$out" 2>&1 || status=$?
  grep -E 'DONE|stat::number_of_executed_units|stat::average_exec_per_sec|panicked|SUMMARY|Test unit written' "$out" >&2 || true
  if [ "$status" -ne 0 ] || [ "$(ls "artifacts/$t")" != "$before" ]; then
    failed+=("$t")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  log "crashes in: ${failed[*]} (see fuzz/artifacts/ and $CARGO_TARGET_DIR/fuzz-<target>.log)"
  exit 1
fi
log "no crashes in ${targets[*]}"
