#!/usr/bin/env bash
# Probe overhead (issue 23 item 7): CPU time and memory of a container's
# monitor running an exec health check every second, against a monitor of
# the same container without one, side by side for DURATION seconds.
# CPU: the monitor's own user+sys, and that of the processes it reaped (the
# runtime's `exec` and the check's process, re-parented to the monitor).
# Memory: the monitor's VmRSS and VmHWM at the end. Run as root.
# Usage: bench/health.sh [--seconds N] [--bin DIR]  (DIR: built binaries;
# default: a release build made here)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=30
bin=
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) secs=$2; shift 2 ;;
        --bin) bin=$2; shift 2 ;;
        *) echo "usage: $0 [--seconds N] [--bin DIR]" >&2; exit 2 ;;
    esac
done
if [ -z "$bin" ]; then
    cargo build --release --locked -p berth-cli -p berth-monitor -p berth-runtime-cli -p berth-init
    bin=$PWD/target/x86_64-unknown-linux-gnu/release
fi
[ -x /bin/busybox ] || { echo "busybox-static is needed: apt-get install busybox-static" >&2; exit 1; }
export PATH="$bin:$PATH"
root=$(mktemp -d /var/tmp/berth-bench-health.XXXXXX)
run=$(mktemp -d /run/bbh.XXXXXX)
b() { berth --root "$root" --run-root "$run" "$@"; }
cleanup() {
    for id in $(b ps -aq --no-trunc 2>/dev/null); do b rm -f "$id" >/dev/null 2>&1 || true; done
    rm -rf "$root" "$run"
}
trap cleanup EXIT

fs=$(mktemp -d)
mkdir -p "$fs/bin" "$fs/etc" "$fs/tmp"
cp /bin/busybox "$fs/bin/busybox"
for a in sh sleep true; do ln -s busybox "$fs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$fs/etc/passwd"
tar -C "$fs" -cf "$fs.tar" .
b import "$fs.tar" bench-health >/dev/null
rm -rf "$fs" "$fs.tar"

with=$(b run -d --network none --health-cmd true --health-interval 1s bench-health sleep infinity)
without=$(b run -d --network none bench-health sleep infinity)

monitor() { sed -n 's/^monitor_pid=//p' "$run/containers/$1/state"; }
# utime stime cutime cstime (fields 14-17 of /proc/PID/stat), in ticks.
cpu() { awk '{print $14+$15, $16+$17}' "/proc/$1/stat"; }
mem() { awk '/^VmRSS|^VmHWM/ {printf "%s %s kB  ", $1, $2}' "/proc/$1/status"; }
mw=$(monitor "$with")
mo=$(monitor "$without")
read -r w0 wc0 < <(cpu "$mw")
read -r o0 oc0 < <(cpu "$mo")
sleep "$secs"
read -r w1 wc1 < <(cpu "$mw")
read -r o1 oc1 < <(cpu "$mo")
hz=$(getconf CLK_TCK)
checks=$(b inspect -f '{{len .State.Health.Log}}' "$with")
status=$(b inspect -f '{{.State.Health.Status}}' "$with")
echo "over ${secs}s (CPU in ms; the check: 'true' every second, last status $status, $checks results kept):"
printf "%-22s %10s %16s  %s\n" "monitor" "own CPU" "reaped children" "memory"
printf "%-22s %10d %16d  %s\n" "with an exec check" $(((w1 - w0) * 1000 / hz)) $(((wc1 - wc0) * 1000 / hz)) "$(mem "$mw")"
printf "%-22s %10d %16d  %s\n" "without" $(((o1 - o0) * 1000 / hz)) $(((oc1 - oc0) * 1000 / hz)) "$(mem "$mo")"
