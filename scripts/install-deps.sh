#!/usr/bin/env bash
# System packages the build and the tests need, from Debian's archive; a no-op when present.
#   scripts/install-deps.sh build   only what building tracejoin needs (the demo)
#   scripts/install-deps.sh         that, and what the tests need
# pkg-config, libssl-dev, g++, make: librdkafka (bundled) with TLS; libcurl4-openssl-dev: its
# OAUTHBEARER OIDC token requests; python3-venv: the
# OpenTelemetry SDK env; maven + a JDK: the Kafka broker; prometheus: the real Prometheus;
# openssl: the test certificates; socat: the client-certificate TLS port in front of VictoriaLogs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need=()
command -v pkg-config >/dev/null || need+=(pkg-config)
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
dpkg -s libcurl4-openssl-dev >/dev/null 2>&1 || need+=(libcurl4-openssl-dev)
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
if [ "${1:-all}" != build ]; then
  python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
  command -v mvn >/dev/null || need+=(maven)
  command -v java >/dev/null || need+=(default-jre-headless)
  command -v prometheus >/dev/null || need+=(prometheus)
  command -v go >/dev/null || need+=(golang-go)
  command -v socat >/dev/null || need+=(socat)
  command -v openssl >/dev/null || need+=(openssl)
fi
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
if ! command -v cargo >/dev/null; then
  log "cargo is missing: install Rust with rustup (https://rustup.rs), then re-run"; exit 1
fi
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy >&2 || true
