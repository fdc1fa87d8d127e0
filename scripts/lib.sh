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

# The start/stop shape of the services (kafka.sh, victorialogs.sh, prometheus.sh): a process in
# the background with its pid in DIR/NAME.pid and its output appended to DIR/NAME.log.

# daemon_start DIR NAME CMD...: runs CMD in the background.
daemon_start() {
  local dir="$1" name="$2"; shift 2
  nohup "$@" >>"$dir/$name.log" 2>&1 &
  echo $! > "$dir/$name.pid"
}

# daemon_ready DIR NAME SECONDS CMD...: waits until CMD succeeds; otherwise logs the tail of
# DIR/NAME.log and exits 1.
daemon_ready() {
  local dir="$1" name="$2" secs="$3"; shift 3
  if ! wait_for "$secs" "$@"; then
    log "$name: not ready within $secs s; its log:"; tail -50 "$dir/$name.log" >&2; exit 1
  fi
}

# daemon_stop DIR NAME [SECONDS]: SIGTERM, up to SECONDS (default 10) to exit, then SIGKILL.
daemon_stop() {
  local dir="$1" name="$2" secs="${3:-10}" pid
  [ -f "$dir/$name.pid" ] || return 0
  pid="$(cat "$dir/$name.pid")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 $(( secs * 10 ))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/$name.pid"
}

# port_open PORT: whether something listens on 127.0.0.1:PORT.
port_open() {
  python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()' "$1"
}

# go_env: the environment of the Go builds. The module and build caches live in the cache, so a
# fresh clone rebuilds nothing; the module proxy is the machine's own Go configuration
# (`go env GOPROXY`), never written here.
go_env() {
  mkdir -p "$TRACEJOIN_CACHE/go/mod" "$TRACEJOIN_CACHE/go/build"
  export GOTOOLCHAIN=local CGO_ENABLED=0 \
    GOMODCACHE="$TRACEJOIN_CACHE/go/mod" GOCACHE="$TRACEJOIN_CACHE/go/build"
  log "go: $(go env GOVERSION), GOPROXY=$(go env GOPROXY)"
}

# module_hash DIR: a hash of a Go module's go.mod, go.sum and own .go files, to name its build.
module_hash() {
  find "$1" -maxdepth 1 \( -name go.mod -o -name go.sum -o -name '*.go' \) -print0 | sort -z \
    | xargs -0 cat | sha256sum | cut -c1-16
}

# go_build_cached NAME MODULE OUT PACKAGE: builds PACKAGE of the Go module in MODULE to OUT unless
# OUT exists (name OUT by module_hash, so an edit builds anew), with the machine's Go
# configuration (go_env); the build's time is appended to build-times beside OUT's folder.
go_build_cached() {
  local name="$1" module="$2" out="$3" pkg="$4"
  if [ -x "$out" ]; then return 0; fi
  command -v go >/dev/null || { log "$name: Go is missing"; exit 1; }
  mkdir -p "$(dirname "$out")"
  go_env
  log "$name: building with the machine's Go configuration"
  local t0 t1; t0=$(date +%s)
  (cd "$module" && GOFLAGS="-buildvcs=false -mod=readonly" \
    go build -trimpath -ldflags="-s -w" -o "$out.tmp" "$pkg" >&2)
  mv "$out.tmp" "$out"
  t1=$(date +%s)
  log "$name: built in $((t1 - t0)) s -> $out"
  printf '%s %s build_seconds=%s go=%s\n' "$(date -u +%FT%TZ)" "$out" "$((t1 - t0))" \
    "$(go env GOVERSION)" >> "$(dirname "$(dirname "$out")")/build-times"
}
