#!/usr/bin/env bash
# The container image (Dockerfile), built and run here without a Docker engine or a registry:
#   scripts/image.sh install        Debian's buildah unless present
#   scripts/image.sh test           build the Dockerfile's runtime stage with buildah (vfs storage,
#                                   chroot isolation) from a root assembled by deploy/image/rootfs.sh
#                                   from Debian packages and the release binary (no base image can be
#                                   pulled here: the Rust build stage is the host's cargo build), then
#                                   run the image's root as its user, on a read-only root, against
#                                   TRACEJOIN_KAFKA_BOOTSTRAP: /healthz and /readyz answer 200, SIGTERM
#                                   drains and exits 0 within shutdown.timeout
# Packages are cached in $TRACEJOIN_CACHE/image/debs; the image store is temporary.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"
repo="$(cd "$here/.." && pwd)"

install() {
  if command -v buildah >/dev/null && command -v objcopy >/dev/null; then return 0; fi
  log "image: installing Debian's buildah"
  apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends buildah binutils >&2
}

work="" ctr="" pid=""
b=()
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  if [ -n "$ctr" ]; then
    "${b[@]}" umount "$ctr" >/dev/null 2>&1 || true
    "${b[@]}" rm "$ctr" >/dev/null 2>&1 || true
  fi
  if [ -n "$work" ]; then
    "${b[@]}" rmi -a -f >/dev/null 2>&1 || true
    rm -rf "$work"
  fi
}

run_test() {
  install
  : "${TRACEJOIN_KAFKA_BOOTSTRAP:?set TRACEJOIN_KAFKA_BOOTSTRAP (scripts/kafka.sh start DIR prints it)}"
  work="$(mktemp -d "${TMPDIR:-/tmp}/tracejoin-image.XXXXXX")"
  b=(buildah --storage-driver vfs --root "$work/storage" --runroot "$work/run")
  trap cleanup EXIT

  # The release binary the tests just used (scripts/test.sh runs this after cargo test --release;
  # TRACEJOIN_BIN if set, as for the process tests); built if missing.
  local bin="${TRACEJOIN_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/tracejoin}"
  [[ "$bin" = /* ]] || bin="$repo/$bin"
  if [ ! -x "$bin" ]; then
    log "image: building the release binary"
    (cd "$repo" && cargo build --release --locked --bin tracejoin >&2)
  fi
  log "image: binary $bin ($(date -r "$bin" +%FT%T))"

  log "image: root filesystem from Debian packages"
  mkdir -p "$TRACEJOIN_CACHE/image/debs"
  "$repo/deploy/image/rootfs.sh" "$work/rootfs" "$bin" "$TRACEJOIN_CACHE/image/debs"
  local r; r="$("${b[@]}" from scratch)"
  "${b[@]}" copy "$r" "$work/rootfs" /rootfs >/dev/null
  "${b[@]}" commit -q "$r" localhost/tracejoin-rootfs:build >/dev/null
  "${b[@]}" rm "$r" >/dev/null

  log "image: buildah bud (Dockerfile, target runtime)"
  local t0; t0=$(date +%s)
  "${b[@]}" bud --isolation chroot --pull-never --target runtime \
    --build-arg ROOTFS_IMAGE=localhost/tracejoin-rootfs:build \
    -f "$repo/Dockerfile" -t localhost/tracejoin:test "$repo" >&2
  log "image: built in $(( $(date +%s) - t0 )) s"

  # What the Dockerfile promises, as the image's config says it.
  local user entry cmd size
  user="$("${b[@]}" inspect --type image --format '{{.OCIv1.Config.User}}' localhost/tracejoin:test)"
  entry="$("${b[@]}" inspect --type image --format '{{.OCIv1.Config.Entrypoint}}' localhost/tracejoin:test)"
  cmd="$("${b[@]}" inspect --type image --format '{{.OCIv1.Config.Cmd}}' localhost/tracejoin:test)"
  [ "$user" = "65532:65532" ] || { log "image: user is '$user', not 65532:65532"; exit 1; }
  [ "$entry" = "[/usr/local/bin/tracejoin]" ] || { log "image: entrypoint $entry"; exit 1; }
  [ "$cmd" = "[run --config /etc/tracejoin/tracejoin.yaml]" ] || { log "image: cmd $cmd"; exit 1; }

  # Run the image's root as its user on a read-only root (a private mount namespace; the config
  # mounted over /etc/tracejoin as Kubernetes would): probes, then SIGTERM.
  ctr="$("${b[@]}" from --pull-never localhost/tracejoin:test)"
  local mnt; mnt="$("${b[@]}" mount "$ctr")"
  size="$(du -sh "$mnt" | cut -f1)"
  local port; port="$(free_port)"
  mkdir -p "$work/config"
  cat > "$work/config/tracejoin.yaml" <<YML
kafka:
  bootstrap_servers: "$TRACEJOIN_KAFKA_BOOTSTRAP"
  group_id: image-test-$$
  properties: {session.timeout.ms: "6000"}
workers: 1
inputs:
  spans: {topic: image-test-spans}
  logs: [{topic: image-test-logs}]
metrics:
  listen: "127.0.0.1:$port"
shutdown:
  timeout: 10s
YML
  chmod -R a+rX "$work/config"
  # The input topics, so the worker gets an assignment at once (without them /readyz still turns
  # 200, after the start-up gate's 30 s deadline): with the suite's Python client when there is one.
  if [ -n "${TRACEJOIN_PYTHON:-}" ]; then
    "$TRACEJOIN_PYTHON" - "$TRACEJOIN_KAFKA_BOOTSTRAP" <<'PY' >&2 || true
import sys
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
for f in admin.create_topics([NewTopic(t, 1, 1) for t in ("image-test-spans", "image-test-logs")]).values():
    try:
        f.result(30)
    except Exception as e:  # already there from an earlier run
        print("image: topic:", e)
PY
  fi
  unshare -m --propagation private sh -c '
    set -e
    mount --bind "$1" "$1"
    mount --bind "$2" "$1/etc/tracejoin"
    mount -o remount,bind,ro "$1/etc/tracejoin"
    mount -t tmpfs -o size=64m tmpfs "$1/tmp"
    mount -o remount,bind,ro "$1"
    exec chroot --userspec=65532:65532 "$1" /usr/local/bin/tracejoin run --config /etc/tracejoin/tracejoin.yaml
  ' sh "$mnt" "$work/config" > "$work/run.log" 2>&1 &
  pid=$!
  if ! wait_for 60 curl -sf "http://127.0.0.1:$port/healthz" || ! wait_for 60 curl -sf "http://127.0.0.1:$port/readyz"; then
    log "image: /healthz or /readyz did not answer 200; the process' log:"; tail -30 "$work/run.log" >&2; exit 1
  fi
  log "image: /healthz and /readyz answer 200 (uid 65532, read-only root)"
  local s0; s0=$(date +%s)
  kill -TERM "$pid"
  local rc=0; wait "$pid" || rc=$?
  pid=""
  local took=$(( $(date +%s) - s0 ))
  if [ "$rc" -ne 0 ] || [ "$took" -gt 10 ]; then
    log "image: SIGTERM: exit $rc after $took s (want 0 within shutdown.timeout, 10 s)"; tail -30 "$work/run.log" >&2; exit 1
  fi
  log "image: SIGTERM drained and exited 0 in $took s"
  echo "IMAGE_OK size=$size user=$user"
}

case "${1:-}" in
  install) install ;;
  test) run_test ;;
  *) echo "usage: $0 install|test" >&2; exit 2 ;;
esac
