#!/usr/bin/env bash
# The checker of deploy/compose/docker-compose.yaml (deploy/compose/check: compose-spec's loader,
# compose-go v2.16.2, the library Docker Compose uses), built with the machine's own Go
# configuration (modules from `go env GOPROXY`) into $TRACEJOIN_CACHE/compose/<hash>/, as
# scripts/helm.sh builds helm.
#   scripts/compose.sh install   build it unless already there
#   scripts/compose.sh checker   print its path; exit 1 if it is not built
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"
module="$here/../deploy/compose/check"
bin="$TRACEJOIN_CACHE/compose/$(module_hash "$module")/tracejoin-compose-check"

case "${1:-}" in
  install) go_build_cached compose-check "$module" "$bin" . ;;
  checker)
    if [ -x "$bin" ]; then echo "$bin"
    else log "compose-check: not built; run scripts/compose.sh install"; exit 1; fi ;;
  *) echo "usage: $0 install|checker" >&2; exit 2 ;;
esac
