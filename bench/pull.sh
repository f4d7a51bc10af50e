#!/usr/bin/env bash
# `berth pull` vs podman, skopeo+umoci and the floor; see bench/pull.py.
# Run as root, with the testbed registry serving test/debian (see
# ../shared/guide/TESTBED.md). Usage: bench/pull.sh [--runs N] [--registry HOST:PORT]
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/pull.sh: run as root" >&2; exit 1; }
for t in podman skopeo umoci; do
    command -v $t >/dev/null || { echo "bench/pull.sh: $t is missing: apt-get install $t" >&2; exit 1; }
done
cargo build --release --locked -p berth-cli
exec python3 bench/pull.py --berth "$PWD/target/x86_64-unknown-linux-gnu/release/berth" "$@"
