#!/usr/bin/env python3
"""`berth run --rm IMAGE true` against `podman run --rm --network=none IMAGE
true` (same busybox image in both stores) and against `berth-runtime run` on
a prepared bundle with the spec berth generates (the engine's own overhead),
interleaved; then 100 detached `sleep` containers: the monitors' resident
memory against conmon's.

Run as root via bench/run.sh (which builds release binaries and hides the
hybrid cgroup2 mount so that podman's crun works here). Prints Markdown.
"""
import argparse, ctypes, json, os, random, resource, shutil, statistics, subprocess, sys, tempfile, time

IDLE_GAP = 0.03
PODMAN_RUN = ["podman", "run", "--rm", "--network=none", "--label", "berth-bench=1",
              "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=32768:32768"]


def subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:
        sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def peak_rss(cmd, env=None):
    """Peak RSS (KiB) of the command's own process, from GNU time (our own
    wait4 would count the forked Python before exec)."""
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    reap()
    return int(r.stderr.strip().splitlines()[-1])


def timed(cmd, env=None):
    """Wall ms, CPU ms of the command and every descendant (we are their
    subreaper)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = (time.perf_counter() - t0) * 1000
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if status != 0:
        sys.exit(f"{cmd[0]} failed ({status}): {err}")
    # Descendants that outlived the command (monitors, conmon) end soon
    # after; count their CPU too.
    deadline = time.time() + 2
    while time.time() < deadline:
        reap()
        if not any(os.path.exists(f"/proc/{c}") for c in children()):
            break
        time.sleep(0.005)
    reap()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1000
    return wall, cpu, ru.ru_maxrss


def children():
    me = str(os.getpid())
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    s = f.read()
                if s[s.rfind(")") + 2:].split()[1] == me:
                    out.append(d)
            except OSError:
                pass
    return out


def summary(v):
    v = sorted(v)
    q = lambda p: v[min(len(v) - 1, int(p * len(v)))]
    return statistics.median(v), q(0.1), q(0.9)


def rss_of(comm):
    total, n = 0, 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if open(f"/proc/{d}/comm").read().strip() != comm:
                continue
            for line in open(f"/proc/{d}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    n += 1
        except OSError:
            pass
    return n, total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="directory of the release binaries")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--detached", type=int, default=100)
    ap.add_argument("--before", help="directory of an earlier build's release binaries (berth, berth-monitor,"
                    " berth-runtime, berth-init): measured in the same rounds, with its own store")
    a = ap.parse_args()
    subreaper()
    berth = os.path.join(a.bin, "berth")
    runtime = os.path.join(a.bin, "berth-runtime")
    work = tempfile.mkdtemp(prefix="berth-bench-", dir="/var/tmp")
    run_root = tempfile.mkdtemp(prefix="bb", dir="/run")
    # --network none, as podman's: this bench runs in the host's network
    # namespace, where berth's default bridge would make `berth0` and
    # `table inet berth` (bench/network.sh measures networks, in its own).
    env = dict(os.environ, BERTH_ROOT=os.path.join(work, "store"), BERTH_RUN_ROOT=run_root,
               BERTH_DEFAULT_NETWORK="none")
    before = os.path.join(a.before, "berth") if a.before else None
    run_root_b = tempfile.mkdtemp(prefix="bc", dir="/run") if before else None
    env_b = dict(os.environ, BERTH_ROOT=os.path.join(work, "store-before"), BERTH_RUN_ROOT=run_root_b,
                 BERTH_DEFAULT_NETWORK="none") if before else None
    try:
        # The same busybox root in both stores.
        rootfs = os.path.join(work, "rootfs")
        os.makedirs(os.path.join(rootfs, "bin"))
        os.makedirs(os.path.join(rootfs, "etc"))
        shutil.copy("/bin/busybox", os.path.join(rootfs, "bin/busybox"))
        for app in ["sh", "true", "sleep"]:
            os.symlink("busybox", os.path.join(rootfs, "bin", app))
        with open(os.path.join(rootfs, "etc/passwd"), "w") as f:
            f.write("root:x:0:0:root:/root:/bin/sh\n")
        tar = os.path.join(work, "bb.tar")
        subprocess.run(["tar", "-C", rootfs, "-cf", tar, "."], check=True)
        subprocess.run([berth, "import", tar, "bench/bb:latest"], env=env, check=True, stdout=subprocess.DEVNULL)
        if before:
            subprocess.run([before, "import", tar, "bench/bb:latest"], env=env_b, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["podman", "import", tar, "localhost/bench/bb:latest"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        # The bundle: the spec berth generates for this image, taken from a
        # running container, with the prepared root and no cgroup path.
        cid = subprocess.run([berth, "run", "-d", "bench/bb", "sleep", "100"], env=env, check=True,
                             capture_output=True, text=True).stdout.strip()
        rdir = os.path.join(run_root, "containers", cid)
        bundle = os.path.join(work, "bundle")
        os.makedirs(bundle)
        spec = json.load(open(os.path.join(rdir, "config.json")))
        for name in ["hosts", "hostname", "resolv.conf"]:
            shutil.copy(os.path.join(rdir, name), os.path.join(bundle, name))
        for m in spec["mounts"]:
            if m.get("source", "").startswith(rdir):
                m["source"] = os.path.join(bundle, os.path.basename(m["source"]))
        spec["root"]["path"] = rootfs
        spec["process"]["args"] = ["true"]
        spec["linux"].pop("cgroupsPath", None)
        json.dump(spec, open(os.path.join(bundle, "config.json"), "w"))
        subprocess.run([berth, "rm", "-f", cid], env=env, check=True, stdout=subprocess.DEVNULL)
        rt_root = os.path.join(run_root, "bench-runtime")

        cmds = {
            "berth run --rm": lambda i: ([berth, "run", "--rm", "bench/bb", "true"], env),
            "podman run --rm": lambda i: (PODMAN_RUN + ["localhost/bench/bb", "true"], None),
            "berth-runtime run (same spec)": lambda i: ([runtime, "--root", rt_root, "run", "--bundle", bundle, f"bench-{i}"], None),
        }
        if before:
            cmds["berth run --rm (before)"] = lambda i: ([before, "run", "--rm", "bench/bb", "true"], env_b)
        # Warm up each once.
        for name, mk in cmds.items():
            timed(*mk(-1))
        rss = {n: statistics.median(peak_rss(*cmds[n](-2 - k)) for k in range(3)) for n in cmds}

        def rounds(first, gap):
            """a.runs shuffled rounds of every command: wall and CPU ms."""
            res = {n: ([], []) for n in cmds}
            for i in range(a.runs):
                order = list(cmds)
                random.shuffle(order)
                for name in order:
                    time.sleep(gap)
                    w, c, _ = timed(*cmds[name](first + i))
                    res[name][0].append(w)
                    res[name][1].append(c)
            return res

        def table(res, title, with_rss):
            pod = summary(res["podman run --rm"][0])[0]
            print(f"## {title}, {a.runs} interleaved runs each\n")
            print("| command | wall median (p10-p90) ms | vs podman | CPU per run ms (all processes) |"
                  + (" peak RSS of the command |" if with_rss else ""))
            print("|---|---:|---:|---:|" + ("---:|" if with_rss else ""))
            for name in cmds:
                m, lo, hi = summary(res[name][0])
                cpu = statistics.median(res[name][1])
                print(f"| {name} | {m:.1f} ({lo:.1f}-{hi:.1f}) | {m / pod:.3f}x | {cpu:.1f} |"
                      + (f" {rss[name] / 1024:.1f} MiB |" if with_rss else ""))
            b = statistics.median(res["berth run --rm"][0])
            eng = b - statistics.median(res["berth-runtime run (same spec)"][0])
            rt = statistics.median(res["berth-runtime run (same spec)"][0])
            print(f"\nEngine overhead (berth run minus berth-runtime run, medians): {eng:.1f} ms; "
                  f"podman is {pod / b:.1f}x slower than berth."
                  + (f" Before: {statistics.median(res['berth run --rm (before)'][0]) - rt:.1f} ms." if before else "")
                  + "\n")

        table(rounds(0, IDLE_GAP), "`run --rm IMAGE true`", True)
        # The same, back to back: each command starts right after another
        # container started, as on a host that starts them all the time. On
        # cgroup v1 the kernel then skips the RCU grace period that the first
        # move into a cgroup after a quiet moment waits for (8-25 ms here;
        # it is part of every idle-gap number above, for all three), so this
        # shows each command's own cost.
        table(rounds(a.runs, 0), "The same, back to back (no idle gap: the grace period is already over)", False)

        # Detached containers: resident memory of the monitors.
        n = a.detached
        mons = []
        if before:
            for i in range(n):
                subprocess.run([before, "run", "-d", "bench/bb", "sleep", "1000"], env=env_b, check=True, stdout=subprocess.DEVNULL)
            mons.append(("berth-monitor (before)",) + rss_of("berth-monitor"))
            ids = subprocess.run([before, "ps", "-aq"], env=env_b, capture_output=True, text=True).stdout.split()
            subprocess.run([before, "rm", "-f"] + ids, env=env_b, check=True, stdout=subprocess.DEVNULL)
        for i in range(n):
            subprocess.run([berth, "run", "-d", "bench/bb", "sleep", "1000"], env=env, check=True, stdout=subprocess.DEVNULL)
        bn, brss = rss_of("berth-monitor")
        for i in range(n):
            subprocess.run(["podman", "run", "-d", "--network=none", "--label", "berth-bench=1", "--ulimit", "nofile=1024:1024",
                            "--ulimit", "nproc=32768:32768", "localhost/bench/bb", "sleep", "1000"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pn, prss = rss_of("conmon")
        print(f"## {n} detached `sleep` containers\n")
        print("| monitor | processes | total RSS | per container |")
        print("|---|---:|---:|---:|")
        for name, mn, mrss in mons:
            print(f"| {name} | {mn} | {mrss / 1024:.1f} MiB | {mrss / max(mn, 1):.0f} KiB |")
        print(f"| berth-monitor | {bn} | {brss / 1024:.1f} MiB | {brss / max(bn, 1):.0f} KiB |")
        print(f"| conmon (podman) | {pn} | {prss / 1024:.1f} MiB | {prss / max(pn, 1):.0f} KiB |")
    finally:
        ids = subprocess.run([berth, "ps", "-aq"], env=env, capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run([berth, "rm", "-f"] + ids, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        mine = subprocess.run(["podman", "ps", "-aq", "--filter", "label=berth-bench=1"], capture_output=True, text=True).stdout.split()
        if mine:
            subprocess.run(["podman", "rm", "-f", "-t", "0"] + mine, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["podman", "rmi", "-f", "localhost/bench/bb:latest"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if before:
            ids = subprocess.run([before, "ps", "-aq"], env=env_b, capture_output=True, text=True).stdout.split()
            if ids:
                subprocess.run([before, "rm", "-f"] + ids, env=env_b, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            shutil.rmtree(run_root_b, ignore_errors=True)
        reap()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(run_root, ignore_errors=True)


if __name__ == "__main__":
    main()
