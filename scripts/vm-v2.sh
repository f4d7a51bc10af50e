#!/usr/bin/env bash
# The cgroup v2 lane. Most users run cgroup v2 alone; CI machines here are
# hybrid v1. This boots Debian's kernel under qemu (TCG) with an initramfs
# holding busybox, the static berth binaries and the privileged test
# binaries, mounts cgroup2 alone at /sys/fs/cgroup, runs the tests there and
# reports their result. Run as root; installs what it needs.
#
# Usage: scripts/vm-v2.sh [--keep] [TEST-FILTER ARGS...]
#   --keep leaves the work dir (initramfs, console log) for a look; the other
#   arguments go to every test binary (e.g. a test name, --nocapture); test
#   names replace the engine's list of tests (engine_tests below).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
keep=0
if [ "${1:-}" = --keep ]; then keep=1; shift; fi

missing=()
for p in qemu-system-x86 linux-image-amd64 busybox-static cpio binutils python3; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
KERNEL=$(ls /boot/vmlinuz-*-amd64 | sort -V | tail -1)
KVER=${KERNEL#/boot/vmlinuz-}

echo "==> building the binaries and the test binaries (static)"
cargo build --workspace --locked --quiet
W=$(mktemp -d /var/tmp/berth-vm.XXXXXX)
[ $keep = 1 ] || trap 'rm -rf "$W"' EXIT
cargo test --workspace --locked --no-run --message-format=json 2>/dev/null >"$W/build.json"
# The integration tests that need a real kernel: the conformance suite (but
# not project.rs, which reads the source tree, nor callers.rs, which drives
# the real engines on the host), the cgroups crate's, and the engine's
# end-to-end tests that meet cgroups (below; their images are imported
# from busybox, so the VM needs no registry). Each line: the binary, and
# for the engine's a name for its list of tests.
python3 - "$W/build.json" >"$W/tests.txt" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    t = m["target"]
    if t["kind"] != ["test"]:
        continue
    pkg = m["package_id"]
    # callers.rs needs containerd, dockerd and podman, which the VM lacks;
    # idmap.rs needs a filesystem that takes idmapped mounts, and the VM
    # has only tmpfs, which Debian 12's kernel (6.1) cannot idmap (6.3+
    # can): it runs on the host lane, and the runtime's error for such a
    # filesystem is tested there.
    if ("berth-conformance" in pkg or "conformance" in pkg) and t["name"] not in ("project", "callers", "idmap"):
        print(m["executable"])
    elif "cgroups" in pkg:
        print(m["executable"])
    elif "berth-cli" in pkg and t["name"] in ("run", "usage"):
        print(m["executable"], "@" + t["name"])
EOF
# The engine's tests on v2: limits, devices (the eBPF program), the OOM
# kill, stats, pause, a container's own sub-cgroups, restart, exec, cp,
# logs, and the monitor leaving its caller's cgroup. The emulated CPU is
# slow: only these, not the whole of run.rs and usage.rs.
engine_tests() {
    case "$1" in
        @run) echo run_prints_output_returns_the_exit_code_and_rm_leaves_nothing \
            detached_containers_stop_start_restart_and_remove \
            logs_keep_streams_apart_and_honour_tail_since_and_timestamps \
            restart_policies_restart_with_back_off_and_stop_ends_them \
            resource_limits_apply_and_the_oom_kill_is_reported \
            security_and_cpu_options_reach_the_container \
            devices_namespaces_shm_sysctls_and_hosts_reach_the_container \
            exec_runs_in_the_container_with_its_options \
            cp_copies_both_ways_and_never_follows_a_container_symlink_out \
            diff_rename_top_stats_volumes_and_system \
            ps_is_right_after_the_monitor_is_killed_and_after_run_is_wiped \
            a_container_paused_by_its_runtime_reads_stats_resumes_and_stops \
            sub_cgroups_a_container_made_go_with_it \
            cgroupns_and_annotations_reach_the_container ;;
        @usage) echo a_detached_container_outlives_the_cgroup_of_whoever_ran_berth ;;
        *) ;;
    esac
}
[ -s "$W/tests.txt" ] || { echo "vm-v2: found no test binaries" >&2; exit 1; }

echo "==> initramfs"
R=$W/root
mkdir -p "$R"/{bin,dev,proc,sys,tmp,etc,newroot,root,run}
cp /bin/busybox "$R/bin/busybox"
echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"
echo 'root:x:0:' >"$R/etc/group"
# Same absolute paths as on the host: the tests find the runtime next to
# themselves and the checker where cargo built it.
T=$ROOT/target/x86_64-unknown-linux-gnu/debug
mkdir -p "$R$T/deps"
for b in berth berth-monitor berth-init berth-runtime berth-checker; do
    objcopy --strip-debug "$T/$b" "$R$T/$b"
done
names= prev=
for a in "$@"; do
    case "$prev" in -Z | --skip | --test-threads | --format | --color | --logfile) prev=; continue ;; esac
    case "$a" in -*) ;; *) names=1 ;; esac
    prev=$a
done
while read -r t kind; do
    objcopy --strip-debug "$t" "$R$t"
    # Test names given to this script replace the engine's default lists.
    if [ -z "$kind" ] || [ -n "$names" ]; then
        echo "$t $*" >>"$R/tests.txt"
    else
        echo "$t" $(engine_tests "$kind") "$*" >>"$R/tests.txt"
    fi
done <"$W/tests.txt"
# BERTH_VM_SCRIPT=file: a shell script the VM runs before the tests (for
# debugging in the v2 machine by hand).
if [ -n "${BERTH_VM_SCRIPT:-}" ]; then cp "$BERTH_VM_SCRIPT" "$R/root/debug.sh"; fi
# overlayfs, brd (a RAM disk, the block device the io tests limit) and
# loop (the devices tests' device) are modules in Debian's kernel.
for m in overlay brd loop; do
    mod=$(find "/lib/modules/$KVER" -name "$m.ko*" | head -1)
    case "$mod" in
        *.xz) xz -dc "$mod" >"$R/$m.ko" ;;
        *.zst) zstd -qdc "$mod" >"$R/$m.ko" ;;
        *) cp "$mod" "$R/$m.ko" ;;
    esac
done

# The work tree may live anywhere: stage 1 copies the top directory that
# holds it.
top=/$(echo "$ROOT" | cut -d/ -f2)
cat >"$R/init" <<EOF
#!/bin/busybox sh
if [ "\$1" != stage2 ]; then
    # Stage 1: pivot_root cannot leave the initramfs; move onto a tmpfs.
    /bin/busybox mount -t tmpfs -o size=90% tmpfs /newroot
    /bin/busybox cp -a /bin /etc /tmp /root /run /tests.txt /overlay.ko /brd.ko /loop.ko /init $top /newroot/
    /bin/busybox mkdir -p /newroot/dev /newroot/proc /newroot/sys
    exec /bin/busybox switch_root /newroot /bin/busybox sh /init stage2
fi
EOF
cat >>"$R/init" <<'EOF'
# Stage 2: the test machine, cgroup v2 alone.
/bin/busybox --install -s /bin
export PATH=/bin HOME=/root RUST_BACKTRACE=1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
ln -sf pts/ptmx /dev/ptmx
mount -t tmpfs tmpfs /dev/shm
# /tmp is on the tmpfs root already (and may hold the work tree); the
# engine's tests put their run roots on /run's tmpfs, as on a host.
mount -t tmpfs -o mode=755 tmpfs /run
mount -t cgroup2 -o nsdelegate none /sys/fs/cgroup
# Debian's kernel has AppArmor enabled: securityfs shows it.
mount -t securityfs securityfs /sys/kernel/security || true
echo "berth-vm: LSMs: $(cat /sys/kernel/security/lsm 2>/dev/null); AppArmor enabled: $(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)"
insmod /overlay.ko || echo "berth-vm: overlay module not loaded"
insmod /brd.ko rd_nr=1 rd_size=8192 || echo "berth-vm: brd module not loaded"
insmod /loop.ko || echo "berth-vm: loop module not loaded"
echo "berth-vm: kernel $(uname -r); cgroup controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
rc=0
if [ -f /root/debug.sh ]; then sh -x /root/debug.sh; fi
while read -r t args; do
    echo "berth-vm: running $t $args"
    t0=$(date +%s)
    # newuidmap is a setuid, dynamically linked shadow-utils binary the VM
    # (static busybox, no libc) cannot run: subordinate ids are tested on
    # the host only.
    "$t" --test-threads=2 $args --skip rootless_subordinate_ids || rc=1
    echo "berth-vm: $(basename "$t") took $(($(date +%s) - t0)) s"
done < /tests.txt
echo "BERTH-VM-RESULT rc=$rc"
poweroff -f
EOF
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1 >"$W/initrd.gz")
echo "    $(du -h "$W/initrd.gz" | cut -f1) initramfs, kernel $KVER"

echo "==> booting (TCG; the emulated CPU is slow)"
timeout 1800 qemu-system-x86_64 -accel tcg -smp 2 -m 4096 -nographic -no-reboot \
    -kernel "$KERNEL" -initrd "$W/initrd.gz" \
    -append "console=ttyS0 quiet panic=-1" </dev/null | tee "$W/console.log" | tr -d '\r' || true
grep -q "BERTH-VM-RESULT rc=0" "$W/console.log" || {
    echo "vm-v2: the cgroup v2 lane failed (console log: $W/console.log)" >&2
    trap - EXIT
    exit 1
}
echo "==> cgroup v2 lane passed"
