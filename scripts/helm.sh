#!/usr/bin/env bash
# Helm (v4, helm.sh/helm/v4/cmd/helm) and the strict checker of rendered objects
# (deploy/helm/check/: client-go's scheme, prometheus-operator's and KEDA's API types), both built
# with the machine's own Go configuration (modules from `go env GOPROXY`), the way
# scripts/collector.sh builds the Collector.
#   scripts/helm.sh install   build both into the cache unless already there
#   scripts/helm.sh bin       print helm's path; exit 1 if it is not built
#   scripts/helm.sh checker   print the checker's path; exit 1 if it is not built
# Each Go module pins its versions (go.mod, go.sum committed): deploy/helm/tool/ names helm as a
# `tool`, deploy/helm/check/ is the checker. GOMODCACHE and GOCACHE live in $TRACEJOIN_CACHE/go/
# (shared with the other Go builds); the binaries in $TRACEJOIN_CACHE/helm/<hash of the module>/,
# so a fresh clone on this machine rebuilds nothing and an edit of a module builds anew.
# Each build's time is appended to $TRACEJOIN_CACHE/helm/build-times.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"
prefix="$TRACEJOIN_CACHE/helm"

helm_module="$here/../deploy/helm/tool"
check_module="$here/../deploy/helm/check"
helm_bin="$prefix/$(module_hash "$helm_module")/helm"
check_bin="$prefix/$(module_hash "$check_module")/tracejoin-k8s-check"

case "${1:-}" in
  install)
    go_build_cached helm "$helm_module" "$helm_bin" helm.sh/helm/v4/cmd/helm
    go_build_cached k8s-check "$check_module" "$check_bin" . ;;
  bin)
    if [ -x "$helm_bin" ]; then echo "$helm_bin"
    else log "helm: not built; run scripts/helm.sh install"; exit 1; fi ;;
  checker)
    if [ -x "$check_bin" ]; then echo "$check_bin"
    else log "k8s-check: not built; run scripts/helm.sh install"; exit 1; fi ;;
  *) echo "usage: $0 install|bin|checker" >&2; exit 2 ;;
esac
