#!/usr/bin/env bash
# `berth commit` vs `podman commit` of the same changes: 2000 small files
# and one 20 MB file of random bytes over a busybox image, interleaved
# round by round. berth's container writes them itself; podman's (podman
# cannot run containers in this sandbox: its runtimes' setrlimit is
# refused) gets them written into its mounted root, the same upper
# directory content. Run as root. Usage: bench/commit.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/commit.sh: run as root" >&2; exit 1; }
command -v podman >/dev/null || { echo "bench/commit.sh: podman is missing" >&2; exit 1; }
rounds=${1:-5}
cargo build --release --locked -p berth-cli -p berth-monitor -p berth-runtime-cli -p berth-init
bin=$PWD/target/x86_64-unknown-linux-gnu/release
work=$(mktemp -d /var/tmp/berth-bench-commit.XXXXXX)
runroot=$(mktemp -d /run/bbc.XXXXXX)
prun=$(mktemp -d /run/bbp.XXXXXX)
B=("$bin/berth" --root "$work/berth" --run-root "$runroot")
P=(podman --root "$work/podman" --runroot "$prun" --storage-driver overlay
   --cgroup-manager cgroupfs --events-backend file)
cleanup() {
    "${B[@]}" rm -af >/dev/null 2>&1 || true
    "${P[@]}" rm -af >/dev/null 2>&1 || true
    "${P[@]}" rmi -af >/dev/null 2>&1 || true
    umount -R "$prun" 2>/dev/null || true
    rm -rf "$work" "$runroot" "$prun"
}
trap cleanup EXIT
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/data"
cp /bin/busybox "$work/rootfs/bin/"
for a in sh dd; do ln -s busybox "$work/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/rootfs/etc/passwd"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
"${B[@]}" import "$work/rootfs.tar" bb >/dev/null
"${P[@]}" import -q "$work/rootfs.tar" bb >/dev/null
files='i=0; while [ $i -lt 2000 ]; do echo "file $i" > /data/f$i; i=$((i+1)); done'
write="$files; dd if=/dev/urandom of=/big bs=1M count=20 status=none"
now() { date +%s.%N; }
bt=() pt=()
for r in $(seq "$rounds"); do
    BERTH_DEFAULT_NETWORK=none "${B[@]}" run --name "c$r" bb sh -c "$write"
    "${P[@]}" create --name "c$r" bb true >/dev/null
    m=$("${P[@]}" mount "c$r")
    (cd / && chroot "$m" /bin/sh -c "$files")
    dd if=/dev/urandom of="$m/big" bs=1M count=20 status=none
    "${P[@]}" umount "c$r" >/dev/null
    sync; sleep 1
    if (( r % 2 )); then order="b p"; else order="p b"; fi
    for t in $order; do
        s=$(now)
        if [ "$t" = b ]; then "${B[@]}" commit "c$r" "img:$r" >/dev/null; bt+=("$(echo "$(now) - $s" | bc)")
        else "${P[@]}" commit -q "c$r" "img:$r" >/dev/null; pt+=("$(echo "$(now) - $s" | bc)"); fi
    done
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "rounds: $rounds"
echo "berth commit:  median $(med "${bt[@]}") s  (all: ${bt[*]})"
echo "podman commit: median $(med "${pt[@]}") s  (all: ${pt[*]})"
