#!/usr/bin/env bash
# Benchmark `kube play` of a Deployment (3 replicas, berth; podman plays one)
# behind a Service, berth against podman
# (Debian's podman, crun and conmon), interleaved, per pod. Run as root.
# Usage: bench/kube.sh [--runs N]
set -euo pipefail
cd "$(dirname "$0")/.."
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
  exec python3 bench/kube.py --bin "$0" "$@"' "$BIN" "$@"
