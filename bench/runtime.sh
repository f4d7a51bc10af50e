#!/usr/bin/env bash
# Benchmark berth-runtime against runc and crun (Debian packages), interleaved.
# Run as root. Usage: bench/runtime.sh [--runs N] [--throughput N]
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs="runc crun busybox-static time golang-github-containers-common"
for p in $pkgs; do
    dpkg -s "$p" >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null; break; }
done
cargo build --release -p berth-runtime-cli --locked
BIN=$PWD/target/x86_64-unknown-linux-gnu/release/berth-runtime
# crun 1.8 refuses this hybrid layout; hide the cgroup2 mount for everyone in
# a private mount namespace so that all three see the same cgroups.
exec unshare -m --propagation private sh -c '
  if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
  exec python3 bench/runtime.py --berth "$0" "$@"' "$BIN" "$@"
