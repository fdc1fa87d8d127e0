#!/usr/bin/env bash
# Assembles the image's root filesystem, distroless-style, from Debian packages: the packages
# that hold the libraries `ldd tracejoin` lists (the C library, libgcc, OpenSSL, zlib, and libcurl
# with its dependencies for librdkafka's OIDC token requests; librdkafka itself is linked in
# statically), found with `dpkg -S` so a new link dependency cannot be forgotten, the CA
# bundle, a non-root user, the tracejoin binary (debug info stripped) and its config at
# /etc/tracejoin/tracejoin.yaml. No shell, no package manager.
#   deploy/image/rootfs.sh DIR BINARY [DEB_CACHE]
# Used by the Dockerfile's build stage and by scripts/image.sh (the suite's build, which has no
# base image to pull). Needs apt-get (apt-get download: Debian's packages), dpkg-deb, ldd.
set -euo pipefail
dir="$1"; bin="$2"; debs="${3:-$(mktemp -d)}"
src="$(cd "$(dirname "$0")/../.." && pwd)"
# The package of each library the binary loads (usr-merged paths are registered either way).
packages=()
for lib in $(ldd "$bin" | awk '/=>/ {print $3} /ld-linux/ {print $1}' | grep -v vdso); do
  owner="$(dpkg -S "$lib" 2>/dev/null || dpkg -S "/usr$lib" 2>/dev/null \
    || dpkg -S "$(readlink -f "$lib")" 2>/dev/null || true)"
  [ -n "$owner" ] || { echo "rootfs: no Debian package holds $lib" >&2; exit 1; }
  packages+=("${owner%%:*}")
done
mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)

mkdir -p "$debs" "$dir"
# apt-get download needs the package lists: on a fresh machine (or image), update them once.
(cd "$debs" && for p in "${packages[@]}"; do
  ls "${p}"_*.deb >/dev/null 2>&1 || apt-get download -qq "$p" 2>/dev/null >&2 \
    || { apt-get update -qq >&2; apt-get download "$p" >&2; }
done)
for p in "${packages[@]}"; do dpkg-deb -x "$(ls "$debs/${p}"_*.deb | head -1)" "$dir"; done
# Only what a process needs at run time: no docs, no locales, no gconv modules.
rm -rf "$dir/usr/share/doc" "$dir/usr/share/lintian" "$dir/usr/share/locale" \
  "$dir/usr/lib/x86_64-linux-gnu/gconv" "$dir/usr/lib/aarch64-linux-gnu/gconv" "$dir/usr/share/man"
mkdir -p "$dir/etc/ssl/certs" "$dir/etc/tracejoin" "$dir/usr/local/bin"
mkdir -p -m 1777 "$dir/tmp"
cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$dir/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$dir/etc/group"
mkdir -p "$dir/home/nonroot" && chown 65532:65532 "$dir/home/nonroot"
objcopy --strip-debug "$bin" "$dir/usr/local/bin/tracejoin"
# The config at its fixed path: deploy/tracejoin.yaml with the built-in extraction rules (its
# relative rules path does not exist in the image). Mount your own over /etc/tracejoin.
grep -v '^  extract: ../rules/extract.yaml' "$src/deploy/tracejoin.yaml" > "$dir/etc/tracejoin/tracejoin.yaml"
# Every library the binary needs must be in the root.
missing=""
for lib in $(ldd "$bin" | awk '/=>/ {print $1} /ld-linux/ {print $1}' | grep -v vdso); do
  name="$(basename "$lib")"
  [ -n "$(find "$dir" -name "$name" -print -quit)" ] || missing="$missing $name"
done
[ -z "$missing" ] || { echo "rootfs: libraries missing:$missing" >&2; exit 1; }
echo "rootfs: $(du -sh "$dir" | cut -f1) in $dir" >&2
