#!/usr/bin/env bash
# From a fresh Debian 12 (or Ubuntu) to a running container, offline:
# installs the apt packages the build and the first container need, checks
# the Rust toolchain against the workspace's rust-version (and says how to
# get one), builds berth in release mode, makes a busybox image from the
# busybox-static package (`berth import`: no registry, no internet), and
# runs a container from it.
#
#   scripts/setup.sh          as root (apt, and containers need root)
#
# BERTH_ROOT and BERTH_RUN_ROOT pick other stores than /var/lib/berth and
# /run/berth, as for berth itself. The test suite is scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }
die() {
    printf 'scripts/setup.sh: %s\n' "$*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || die "run as root: it installs packages and runs a container"

# The build: a C toolchain and libc's static libraries (everything berth
# ships is linked statically), pkg-config and libseccomp-dev (libseccomp.a).
# The first container: busybox-static. util-linux: unshare, used by tests.
# nftables: nft writes berth's table the first time a bridge network is
# used (later changes go over netlink).
packages=(gcc libc6-dev pkg-config libseccomp-dev busybox-static nftables)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "install these packages first: ${missing[*]}"
    say "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Rust: at least the workspace's rust-version. Debian 12's own rustc (1.63)
# is too old; rustup installs a current one for this user.
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
need=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml | head -1)
[ -n "$need" ] || die "no rust-version in Cargo.toml"
howto="install Rust $need or later with rustup (https://rustup.rs):
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
    . \"\$HOME/.cargo/env\"
then run scripts/setup.sh again. (Debian's rustc package is too old.)"
if ! command -v cargo >/dev/null; then
    die "cargo not found: $howto"
fi
have=$(rustc --version | sed -n 's/^rustc \([0-9]*\.[0-9]*\).*/\1/p')
ver() { awk -F. '{ printf "%d%04d\n", $1, $2 }' <<<"$1"; }
if [ -z "$have" ] || [ "$(ver "$have")" -lt "$(ver "$need")" ]; then
    die "rustc ${have:-?} is older than the $need this workspace needs: $howto"
fi
say "rustc $have (the workspace needs $need or later)"

say "cargo build --release (a few minutes the first time)"
t0=$(date +%s)
cargo build --release --locked --bins
bin="${CARGO_TARGET_DIR:-$PWD/target}/$(sed -n 's/^target *= *"\(.*\)"/\1/p' .cargo/config.toml)/release"
[ -x "$bin/berth" ] || die "the build left no $bin/berth"
say "built in $(($(date +%s) - t0)) s: $bin"

# An image from the busybox-static package: its applets as symlinks.
say "berth import: busybox:local from /bin/busybox"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/rootfs/bin" "$dir/rootfs/etc" "$dir/rootfs/tmp" "$dir/rootfs/root"
chmod 1777 "$dir/rootfs/tmp"
cp /bin/busybox "$dir/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || ln -s busybox "$dir/rootfs/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' >"$dir/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/rootfs/etc/group"
tar -C "$dir/rootfs" -cf "$dir/busybox.tar" .
"$bin/berth" import "$dir/busybox.tar" busybox:local >/dev/null

say "berth run --rm busybox:local"
"$bin/berth" run --rm busybox:local sh -c 'echo "hello from a berth container: $(uname -sr), pid $$"'

cat <<EOF
==> done. berth is in $bin:
    export PATH=$bin:\$PATH
    berth run --rm -it busybox:local sh
EOF
