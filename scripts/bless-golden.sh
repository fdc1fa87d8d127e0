#!/usr/bin/env bash
# Accepts the current enriched shape as the golden file (tests/golden/enriched_matched_span.json).
# Runs tests/golden.rs with TRACEJOIN_BLESS=1 (it writes the file and fails, saying it blessed:
# a blessing never passes as a test), then the plain comparison, and shows what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
out="$(TRACEJOIN_BLESS=1 cargo test --release --test golden 2>&1 || true)"
if ! grep -q "BLESSED" <<<"$out"; then
  printf '%s\n' "$out" >&2
  log "bless-golden: the test did not bless the file (see above)"; exit 1
fi
log "bless-golden: golden file rewritten; comparing again without TRACEJOIN_BLESS"
cargo test --release --test golden
git --no-pager diff --stat -- tests/golden
log "bless-golden: review \`git diff tests/golden\` and commit it with the change that caused it"
