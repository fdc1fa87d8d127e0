# Shared by the scripts: where downloads and builds are cached (outside the clone, so a fresh
# clone in CI reuses them), and small helpers. Source it; it sets nothing else.
TRACEJOIN_CACHE="${TRACEJOIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tracejoin}"
mkdir -p "$TRACEJOIN_CACHE"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# A free TCP port on 127.0.0.1, asked of the kernel.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_for SECONDS CMD...: polls CMD every 0.2 s until it succeeds; fails after SECONDS.
wait_for() {
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -ge "$deadline" ] && return 1
    sleep 0.2
  done
}
