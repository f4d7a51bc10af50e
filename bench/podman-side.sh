#!/usr/bin/env bash
# Runs a berth-vs-podman benchmark script (bench/pod.py, bench/kube.py):
# installs podman's side (Debian's podman, crun, conmon), builds berth's
# release binaries, and runs `python3 bench/SCRIPT --bin DIR ARGS...` in a
# private mount namespace. Run as root.
# Usage: bench/podman-side.sh SCRIPT.py [ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
script=$1
shift
pkgs="podman crun conmon catatonit busybox-static golang-github-containers-common"
for p in $pkgs; do
    dpkg -s "$p" >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null; break; }
done
cargo build --release --locked -p berth-cli -p berth-monitor -p berth-runtime-cli -p berth-init
BIN=${CARGO_TARGET_DIR:-$PWD/target}/x86_64-unknown-linux-gnu/release
# crun 1.8 (podman's runtime) refuses this hybrid cgroup layout; hide the
# cgroup2 mount in a private mount namespace, for both engines alike.
exec unshare -m --propagation private sh -c '
  if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
  script=$1; shift
  exec python3 "bench/$script" --bin "$0" "$@"' "$BIN" "$script" "$@"
