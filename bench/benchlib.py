"""What the berth-vs-peer benchmark scripts share: a timed command and a
summary of timings."""
import statistics, subprocess, sys, time


def run(cmd, env=None):
    """Runs `cmd` (its output dropped); its wall time in ms. Exits on failure."""
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {r.stderr}")
    return (time.perf_counter() - t0) * 1000


def summary(v):
    """Median, 10th and 90th percentile of `v`."""
    v = sorted(v)
    q = lambda p: v[min(len(v) - 1, int(p * len(v)))]
    return statistics.median(v), q(0.1), q(0.9)


def busybox_tar(work, apps=("sh", "true", "sleep")):
    """A busybox root (the host's static busybox, `apps` linked to it, a
    passwd with root) made under `work`, as a tar; its path."""
    import os, shutil
    rootfs = os.path.join(work, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"))
    os.makedirs(os.path.join(rootfs, "etc"))
    shutil.copy("/bin/busybox", os.path.join(rootfs, "bin/busybox"))
    for app in apps:
        os.symlink("busybox", os.path.join(rootfs, "bin", app))
    with open(os.path.join(rootfs, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    tar = os.path.join(work, "bb.tar")
    subprocess.run(["tar", "-C", rootfs, "-cf", tar, "."], check=True)
    return tar
