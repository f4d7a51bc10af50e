#!/usr/bin/env python3
"""A pod made and two containers started in it: `berth pod create` + 2 x
`berth run -d --pod` against `podman pod create` + 2 x `podman run -d
--pod` (same busybox image in both stores, no network), interleaved; then
the pod removed (`pod rm -f`), timed apart. Prints Markdown.

Run as root via bench/pod.sh (which builds release binaries and hides the
hybrid cgroup2 mount so that podman's crun works here).

--run-tmpfs: both engines keep their run state on a tmpfs (as on a host
whose /run is one, as systemd makes it; this machine's /run is on the
ext4 root, where making an inode costs 0.1-0.3 ms while files are being
removed around it): berth's run root, and podman's --runroot and --tmpdir,
podman then with a store of its own (--root) beside berth's on the same
disk. The stores stay on disk for both.
"""
import argparse, os, random, shutil, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import run, summary  # noqa: E402

LABEL = "berth-bench-pod=1"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="directory of the release binaries")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--run-tmpfs", action="store_true",
                    help="both engines' run state on a tmpfs (see the module's comment)")
    a = ap.parse_args()
    berth = os.path.join(a.bin, "berth")
    work = tempfile.mkdtemp(prefix="berth-bench-pod-", dir="/var/tmp")
    tmpfs = None
    podman = ["podman"]
    if a.run_tmpfs:
        # bench/pod.sh runs this in a mount namespace of its own: the
        # tmpfs is seen here only, and goes with it.
        tmpfs = tempfile.mkdtemp(prefix="bpt", dir="/run")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0700", "tmpfs", tmpfs], check=True)
        podman = ["podman", "--root", os.path.join(work, "podman-root"),
                  "--runroot", os.path.join(tmpfs, "podman-run"), "--tmpdir", os.path.join(tmpfs, "podman-tmp")]
    run_root = tempfile.mkdtemp(prefix="bp", dir=tmpfs or "/run")
    env = dict(os.environ, BERTH_ROOT=os.path.join(work, "store"), BERTH_RUN_ROOT=run_root,
               BERTH_DEFAULT_NETWORK="none")
    pause_before = subprocess.run(podman + ["images", "-q", "localhost/podman-pause"],
                                  capture_output=True, text=True).stdout.split()
    try:
        rootfs = os.path.join(work, "rootfs")
        os.makedirs(os.path.join(rootfs, "bin"))
        os.makedirs(os.path.join(rootfs, "etc"))
        shutil.copy("/bin/busybox", os.path.join(rootfs, "bin/busybox"))
        for app in ["sh", "sleep"]:
            os.symlink("busybox", os.path.join(rootfs, "bin", app))
        with open(os.path.join(rootfs, "etc/passwd"), "w") as f:
            f.write("root:x:0:0:root:/root:/bin/sh\n")
        # crun may not raise RLIMIT_NOFILE here (as bench/run.py passes
        # --ulimit to podman run): the same limits for every podman
        # container, infra included, through containers.conf.
        conf = os.path.join(work, "containers.conf")
        with open(conf, "w") as f:
            f.write('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=32768:32768"]\n')
        os.environ["CONTAINERS_CONF"] = conf
        tar = os.path.join(work, "bb.tar")
        subprocess.run(["tar", "-C", rootfs, "-cf", tar, "."], check=True)
        run([berth, "import", tar, "bench/bb:latest"], env)
        subprocess.run(podman + ["import", tar, "localhost/bench/bb:latest"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def berth_up(i):
            p = f"bpod{i}"
            t = run([berth, "pod", "create", "--name", p, "--label", LABEL], env)
            for k in range(2):
                t += run([berth, "run", "-d", "--pod", p, "bench/bb", "sleep", "1000"], env)
            return t

        def podman_up(i):
            p = f"bpod{i}"
            t = run(podman + ["pod", "create", "--name", p, "--network", "none", "--label", LABEL])
            for k in range(2):
                t += run(podman + ["run", "-d", "--pod", p, "--label", LABEL, "localhost/bench/bb", "sleep", "1000"])
            return t

        cmds = {
            "berth": (berth_up, lambda i: run([berth, "pod", "rm", "-f", f"bpod{i}"], env)),
            "podman": (podman_up, lambda i: run(podman + ["pod", "rm", "-f", "-t", "0", f"bpod{i}"])),
        }
        # Warm up (berth's infra image and podman's pause image are made
        # on first use).
        for name, (up, down) in cmds.items():
            up(-1)
            down(-1)
        res = {n: ([], []) for n in cmds}
        for i in range(a.runs):
            order = list(cmds)
            random.shuffle(order)
            for name in order:
                up, down = cmds[name]
                time.sleep(0.03)
                res[name][0].append(up(i))
                time.sleep(0.03)
                res[name][1].append(down(i))
        where = " (both engines' run state on a tmpfs)" if a.run_tmpfs else ""
        print(f"## A pod and two containers, {a.runs} interleaved runs each{where}\n")
        print("| engine | pod create + 2 x run -d --pod, median (p10-p90) ms | pod rm -f, median (p10-p90) ms |")
        print("|---|---:|---:|")
        for name in cmds:
            u, ul, uh = summary(res[name][0])
            d, dl, dh = summary(res[name][1])
            print(f"| {name} | {u:.1f} ({ul:.1f}-{uh:.1f}) | {d:.1f} ({dl:.1f}-{dh:.1f}) |")
        bu = statistics.median(res["berth"][0])
        pu = statistics.median(res["podman"][0])
        print(f"\npodman is {pu / bu:.1f}x slower than berth to make a pod and start two containers in it.\n")
    finally:
        ids = subprocess.run([berth, "pod", "ps", "-q"], env=env, capture_output=True, text=True).stdout.split()
        for i in ids:
            subprocess.run([berth, "pod", "rm", "-f", i], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        mine = subprocess.run(podman + ["pod", "ps", "-q", "--filter", "label=" + LABEL],
                              capture_output=True, text=True).stdout.split()
        if mine:
            subprocess.run(podman + ["pod", "rm", "-f", "-t", "0"] + mine, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(podman + ["rmi", "-f", "localhost/bench/bb:latest"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The pause image podman built for our pods, unless it was there.
        if not pause_before:
            for i in subprocess.run(podman + ["images", "-q", "localhost/podman-pause"],
                                    capture_output=True, text=True).stdout.split():
                subprocess.run(podman + ["rmi", "-f", i], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if a.run_tmpfs:
            # podman's own store: whatever it still has mounted there goes
            # first (this mount namespace is the bench's own).
            root = os.path.join(work, "podman-root")
            with open("/proc/self/mountinfo") as f:
                points = [l.split()[4] for l in f if l.split()[4].startswith(root + "/")]
            for m in sorted(points, key=len, reverse=True):
                subprocess.run(["umount", "-l", m], stderr=subprocess.DEVNULL)
        shutil.rmtree(run_root, ignore_errors=True)
        if tmpfs:
            subprocess.run(["umount", "-l", tmpfs])
            os.rmdir(tmpfs)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
