#!/usr/bin/env bash
# Drop-in check with a real caller: podman (through conmon) runs containers
# with berth-runtime, with and without a terminal. Run as root.
# Usage: scripts/podman-check.sh [path/to/berth-runtime]
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:-$PWD/target/x86_64-unknown-linux-gnu/debug/berth-runtime}
dpkg -s podman >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman busybox-static >/dev/null; }
img=localhost/berth-check/busybox:latest
if ! podman image exists "$img"; then
    d=$(mktemp -d); mkdir -p "$d/bin"; cp /bin/busybox "$d/bin/"
    for a in sh echo id tty true; do ln -s busybox "$d/bin/$a"; done
    tar -C "$d" -cf "$d.tar" . && podman import -q "$d.tar" "$img" >/dev/null && rm -rf "$d" "$d.tar"
fi
# Podman here needs these ulimits; seccomp is not implemented in berth-runtime yet.
opts=(--runtime "$R" run --rm --security-opt seccomp=unconfined --ulimit nofile=1024:1024 --ulimit nproc=32768:32768 --network=none)
echo "--- podman run (no terminal)"
podman "${opts[@]}" "$img" sh -c 'echo hello from podman on berth-runtime; id'
echo "--- podman run -it (console socket), exit code 3 expected"
set +e
(sleep 2; echo 'tty; exit 3'; sleep 1) | script -qc "podman ${opts[*]} -it $img sh" /dev/null | tr -d '\r' | tail -2
echo "rc=${PIPESTATUS[1]}"
