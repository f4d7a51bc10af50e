#!/usr/bin/env bash
# Benchmark berth's bridge networks (issue 22) against podman (netavark,
# aardvark-dns) and docker (Debian's docker.io, dockerd started here):
# `run --rm` with each kind of network, `network create`+`rm`, throughput
# and latency through a published port, setup time vs number of containers,
# DNS lookups and the DNS servers' memory. Run as root.
#
# Everything runs in a network namespace and a private mount namespace this
# script makes (unshare -n -m): the host's interfaces, routes and firewall
# rules are never touched, dockerd and podman get their own data, exec and
# run roots and socket, and what is left when the script ends (also on
# failure) is removed by bench/network.py and dies with the namespaces.
# Usage: bench/network.sh [--runs N] [--scale N] [--dns-queries N] [--mb N]
#        [--tput-rounds N] [--only PARTS (e.g. 24)]
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/network.sh: run as root" >&2; exit 1; }
pkgs="podman crun conmon netavark aardvark-dns docker.io busybox-static golang-github-containers-common curl iproute2 time"
for p in $pkgs; do
    dpkg -s "$p" >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null; break; }
done
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release --locked -p berth-cli -p berth-monitor -p berth-runtime-cli -p berth-init -p berth-dns
BIN=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release
[ -x "$BIN/berth" ] || BIN=$CARGO_TARGET_DIR/release
# crun 1.8 (podman's runtime) refuses this hybrid cgroup layout; hide the
# cgroup2 mount in the private mount namespace, for every engine alike.
exec unshare -m -n --propagation private sh -c '
  if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
  ip link set lo up
  # podman 4.3 keeps the IPAM database of netavark and the files of
  # aardvark-dns in /run/containers/networks whatever its --runroot: a
  # tmpfs of ours there.
  mkdir -p /run/containers && mount -t tmpfs -o mode=0755 berth-netbench /run/containers
  exec python3 bench/network.py --bin "$0" "$@"' "$BIN" "$@"
