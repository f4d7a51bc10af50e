#!/usr/bin/env bash
# How `berth run --rm` grows with the containers already running (0, then
# 100 by default), against an earlier build in the same rounds. berth alone,
# in the host's mount namespace as it is. Run as root.
# Usage: bench/scale.sh [--runs N] [--running N] [--before DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dpkg -s busybox-static >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null; }
cargo build --release --locked -p berth-cli -p berth-monitor -p berth-runtime-cli -p berth-init
BIN=${CARGO_TARGET_DIR:-$PWD/target}/x86_64-unknown-linux-gnu/release
exec python3 bench/scale.py --bin "$BIN" "$@"
