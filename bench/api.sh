#!/usr/bin/env bash
# berth's Docker API service (`berth system service`) driven by Debian's
# docker CLI: `docker run --rm IMAGE true`, then `docker ps -a` and
# `docker inspect` with 100 containers, and the service's RSS idle, after
# the runs, and its peak (VmHWM). The lead reruns it on a quiet machine
# next to dockerd and `podman system service` (set DOCKER_HOST for those by
# hand; this script starts no daemon). Run as root.
# Usage: bench/api.sh [ROUNDS]      BIN=DIR to use built binaries (else a
# release build).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/api.sh: run as root" >&2; exit 1; }
command -v docker >/dev/null || { echo "bench/api.sh: the docker CLI is missing (apt-get install docker.io)" >&2; exit 1; }
rounds=${1:-20}
if [ -z "${BIN:-}" ]; then
    cargo build --release --locked -p berth-cli -p berth-monitor -p berth-runtime-cli -p berth-init
    BIN=$PWD/target/x86_64-unknown-linux-gnu/release
fi
work=$(mktemp -d /var/tmp/berth-bench-api.XXXXXX)
runroot=$(mktemp -d /run/bba.XXXXXX)
B=("$BIN/berth" --root "$work/berth" --run-root "$runroot")
export BERTH_DEFAULT_NETWORK=none
svc=
cleanup() {
    [ -n "$svc" ] && kill "$svc" 2>/dev/null && wait "$svc" 2>/dev/null || true
    "${B[@]}" rm -af >/dev/null 2>&1 || true
    rm -rf "$work" "$runroot"
}
trap cleanup EXIT
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc"
cp /bin/busybox "$work/rootfs/bin/"
for a in sh true sleep; do ln -s busybox "$work/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/rootfs/etc/passwd"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
"${B[@]}" import "$work/rootfs.tar" bb >/dev/null
sock=$runroot/docker.sock
"${B[@]}" system service --time 0 "unix://$sock" &
svc=$!
while [ ! -S "$sock" ]; do sleep 0.05; done
export DOCKER_HOST=unix://$sock DOCKER_CONFIG=$work/docker-config
rss() { awk -v k="$1:" '$1 == k { print $2 / 1024 " MiB" }' "/proc/$svc/status"; }
docker version >/dev/null
echo "service RSS idle: $(rss VmRSS)"
now() { date +%s.%N; }
stats() { sort -n | awk '{ a[NR] = $1 } END { printf "median %.3f s  p90 %.3f s  (n=%d)\n", a[int((NR + 1) / 2)], a[int(NR * 0.9 + 0.5)], NR }'; }
docker run --rm bb true
for r in $(seq "$rounds"); do
    t=$(now); docker run --rm bb true; echo "$(now) - $t" | bc
done | stats | sed 's/^/docker run --rm bb true: /'
for i in $(seq 100); do "${B[@]}" create --name "c$i" bb true >/dev/null; done
for r in $(seq "$rounds"); do
    t=$(now); docker ps -a >/dev/null; echo "$(now) - $t" | bc
done | stats | sed 's/^/docker ps -a (100 containers): /'
for r in $(seq "$rounds"); do
    t=$(now); docker inspect c50 >/dev/null; echo "$(now) - $t" | bc
done | stats | sed 's/^/docker inspect (100 containers): /'
echo "service RSS after the runs: $(rss VmRSS), peak: $(rss VmHWM)"
