#!/usr/bin/env bash
# berth's Docker API service (`berth system service`) against dockerd
# (Debian's docker.io 20.10, started here with state of its own) and
# `podman system service`, all driven by Debian's docker CLI: see
# bench/api.py. Run as root.
# Usage: bench/api.sh [--runs N] [--reqs N]     BIN=DIR to use built
# binaries (else a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/api.sh: run as root" >&2; exit 1; }
pkgs="docker.io podman crun conmon catatonit busybox-static golang-github-containers-common"
for p in $pkgs; do
    dpkg -s "$p" >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null; break; }
done
if [ -z "${BIN:-}" ]; then
    cargo build --release --locked -p berth-cli -p berth-monitor -p berth-runtime-cli -p berth-init
    BIN=${CARGO_TARGET_DIR:-$PWD/target}/x86_64-unknown-linux-gnu/release
fi
# crun 1.8 (podman's runtime) refuses this hybrid cgroup layout; hide the
# cgroup2 mount in a private mount namespace, for every engine alike.
exec unshare -m --propagation private sh -c '
  if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
  exec python3 bench/api.py --bin "$0" "$@"' "$BIN" "$@"
