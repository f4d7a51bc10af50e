#!/usr/bin/env python3
"""berth-runtime vs runc vs crun on one busybox bundle, interleaved.

Measures, per runtime: `run` end to end (median, p10-p90), create / start /
delete separately, CPU time and peak RSS of the runtime process, and
containers per second with 1, 2 and 8 `run`s in flight. Prints a Markdown
table with ratios against crun. Run as root via bench/runtime.sh, which
builds the release binary and hides the hybrid cgroup2 mount in a private
mount namespace so that every runtime sees the same cgroup v1 layout.
"""
import argparse, concurrent.futures, ctypes, json, os, random, resource, shutil, statistics, subprocess, sys, tempfile, time

def prctl_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")

def make_bundle(base):
    b = os.path.join(base, "bundle")
    os.makedirs(os.path.join(b, "rootfs/bin"))
    shutil.copy("/bin/busybox", os.path.join(b, "rootfs/bin/busybox"))
    for a in ["sh", "true"]:
        os.symlink("busybox", os.path.join(b, "rootfs/bin", a))
    subprocess.run(["runc", "spec", "--bundle", b], check=True)
    with open(os.path.join(b, "config.json")) as f:
        c = json.load(f)
    c["process"]["terminal"] = False
    c["process"]["args"] = ["/bin/true"]
    with open(os.path.join(b, "config.json"), "w") as f:
        json.dump(c, f)
    return b

# Moving a process into a cgroup v1 hierarchy waits for an RCU grace period
# (~7 ms here) unless another move happened within about one grace period,
# so a command timed right after another runtime's create would be measured
# with a warm kernel state and the previous one with a cold one. Every timed
# command starts after the same idle gap, and the order of the runtimes is
# shuffled each round, so that none profits from its neighbour.
IDLE_GAP = 0.03

def timed(argv, gap=True):
    """Runs argv; returns (wall s, cpu s, maxrss KiB, exit code)."""
    if gap:
        time.sleep(IDLE_GAP)
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        err = p.stderr.read().decode(errors="replace")
        raise SystemExit(f"{' '.join(argv)} failed ({p.returncode}): {err}")
    p.stderr.close()
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, p.returncode

def reap(pid):
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass

def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--berth", required=True)
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--throughput", type=int, default=60, help="containers per throughput measurement")
    args = ap.parse_args()
    prctl_subreaper()
    base = tempfile.mkdtemp(prefix="berth-bench")
    bundle = make_bundle(base)
    runtimes = {"berth-runtime": args.berth, "crun": shutil.which("crun"), "runc": shutil.which("runc")}
    runtimes = {k: v for k, v in runtimes.items() if v}
    res = {k: {"run": [], "run_cpu": [], "create": [], "start": [], "delete": [], "cpu": [], "rss": []} for k in runtimes}
    n = 0
    order = list(runtimes.items())
    rng = random.Random(42)
    for i in range(args.runs):
        rng.shuffle(order)
        for name, binpath in order:  # interleaved, in a shuffled order each round
            root = os.path.join(base, "root-" + name)
            n += 1
            cid = f"b{n}"
            w, cpu, _, _ = timed([binpath, "--root", root, "run", "--bundle", bundle, cid])
            res[name]["run"].append(w)
            res[name]["run_cpu"].append(cpu)
            cid = f"b{n}s"
            pidfile = os.path.join(base, cid + ".pid")
            w1, c1, rss, _ = timed([binpath, "--root", root, "create", "--bundle", bundle, "--pid-file", pidfile, cid])
            pid = int(open(pidfile).read())
            w2, c2, _, _ = timed([binpath, "--root", root, "start", cid])
            reap(pid)
            w3, c3, _, _ = timed([binpath, "--root", root, "delete", cid])
            for k, v in (("create", w1), ("start", w2), ("delete", w3)):
                res[name][k].append(v)
            res[name]["cpu"].append(c1 + c2 + c3)
            res[name]["rss"].append(rss)
    # Peak RSS of the runtime process alone: GNU time forks a small process
    # and reads ru_maxrss after exec (forking from Python would count
    # Python's own pages).
    for name, binpath in runtimes.items():
        root = os.path.join(base, "root-" + name)
        res[name]["rss"] = []
        for j in range(5):
            cid = f"rss{j}"
            # -o: the container inherits stderr, so the report goes to a file.
            report = os.path.join(base, "rss.txt")
            subprocess.run(["/usr/bin/time", "-o", report, "-f", "%M", binpath, "--root", root, "create", "--bundle", bundle, cid],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            res[name]["rss"].append(int(open(report).read().strip().splitlines()[-1]))
            subprocess.run([binpath, "--root", root, "delete", "--force", cid], check=True, stdout=subprocess.DEVNULL)
    rates = {}
    for name, binpath in runtimes.items():
        root = os.path.join(base, "root-" + name)
        rates[name] = {}
        for inflight in (1, 2, 8):
            ids = [f"t{name[:2]}{inflight}-{j}" for j in range(args.throughput)]
            t = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(inflight) as ex:
                list(ex.map(lambda cid: timed([binpath, "--root", root, "run", "--bundle", bundle, cid], gap=False), ids))
            rates[name][inflight] = args.throughput / (time.perf_counter() - t)
    ms = lambda s: s * 1000
    ref = "crun" if "crun" in res else next(iter(res))
    med = lambda name, k: statistics.median(res[name][k])
    print(f"\n{args.runs} interleaved rounds (shuffled order, {IDLE_GAP*1000:.0f} ms idle before each timed command); busybox bundle, process.args = [/bin/true]; times in ms; ratios vs {ref} (lower is better for time)\n")
    print("| runtime | `run` median (p10-p90) | vs " + ref + " | CPU per `run` | create / start / delete | CPU per create+start+delete | peak RSS of `create` | containers/s (1 / 2 / 8 in flight) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in res:
        r = res[name]
        print(f"| {name} | {ms(med(name,'run')):.1f} ({ms(pct(r['run'],.1)):.1f}-{ms(pct(r['run'],.9)):.1f}) | "
              f"{med(name,'run')/med(ref,'run'):.2f}x | {ms(med(name,'run_cpu')):.1f} | "
              f"{ms(med(name,'create')):.1f} / {ms(med(name,'start')):.1f} / {ms(med(name,'delete')):.1f} | "
              f"{ms(med(name,'cpu')):.1f} | {statistics.median(r['rss'])/1024:.1f} MiB | "
              f"{rates[name][1]:.0f} / {rates[name][2]:.0f} / {rates[name][8]:.0f} |")
    shutil.rmtree(base, ignore_errors=True)

if __name__ == "__main__":
    main()
