#!/usr/bin/env bash
# Drop-in check with a real caller: podman (through conmon) runs containers
# with berth-runtime, with and without a terminal. Run as root.
# Usage: scripts/podman-check.sh [path/to/berth-runtime]
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:-$PWD/target/x86_64-unknown-linux-gnu/debug/berth-runtime}
dpkg -s podman >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman busybox-static >/dev/null; }
# The image comes from a registry, as users get theirs: by default the local
# test registry that ../shared/testbed/make-test-images.sh starts.
REGISTRY=${REGISTRY:-127.0.0.1:5000}
img=$REGISTRY/test/busybox:latest
if ! podman pull -q --tls-verify=false "$img" >/dev/null; then
    echo "podman-check: cannot pull $img; start the test registry (../shared/testbed/make-test-images.sh) or set REGISTRY" >&2
    exit 1
fi
# Podman here needs these ulimits. Its default seccomp profile applies.
opts=(--runtime "$R" run --rm --ulimit nofile=1024:1024 --ulimit nproc=32768:32768 --network=none)
echo "--- podman run (no terminal)"
podman "${opts[@]}" "$img" sh -c 'echo hello from podman on berth-runtime; id'
echo "--- podman run --memory 64m: the limit as the container sees it"
podman "${opts[@]}" --memory 64m "$img" sh -c 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max'
echo "--- podman run -d, ps, stop, rm (kill and delete through conmon)"
name=berth-check-$$
podman --runtime "$R" run -d --name "$name" --ulimit nofile=1024:1024 --ulimit nproc=32768:32768 --network=none "$img" sleep 300 >/dev/null
podman ps --filter name="$name" --format '{{.Names}} {{.Status}}'
echo "--- podman exec (exit code 4 expected) and exec -it"
rc=0; podman exec "$name" sh -c 'echo exec in $(hostname) as $(id -u); exit 4' || rc=$?; echo "rc=$rc"
(sleep 1; echo 'tty; exit 6'; sleep 1) | script -eqc "podman exec -it $name sh" /dev/null | tr -d '\r' | tail -2 || true
podman stop -t 1 "$name" >/dev/null && podman rm "$name" >/dev/null && echo "stopped and removed"
echo "--- podman run -it (console socket), exit code 3 expected"
set +e
(sleep 2; echo 'tty; exit 3'; sleep 1) | script -eqc "podman ${opts[*]} -it $img sh" /dev/null | tr -d '\r' | tail -2
echo "rc=${PIPESTATUS[1]}"
