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

DOCKER_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
               "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
               "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
MOBY_PROFILE = "/usr/share/containers/seccomp.json"  # package golang-github-containers-common

def kernel_version():
    return tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])

def docker_seccomp(caps):
    """Docker's default profile in OCI form, converted as Docker and Podman
    do: the rules for this architecture, these capabilities and this kernel."""
    moby = json.load(open(MOBY_PROFILE))
    arches = ["SCMP_ARCH_X86_64"]
    for m in moby.get("archMap", []):
        if m["architecture"] == "SCMP_ARCH_X86_64":
            arches += m.get("subArchitectures", [])
    rules = []
    for r in moby["syscalls"]:
        inc, exc = r.get("includes") or {}, r.get("excludes") or {}
        if inc.get("arches") and "amd64" not in inc["arches"]:
            continue
        if exc.get("arches") and "amd64" in exc["arches"]:
            continue
        if inc.get("caps") and not set(inc["caps"]) <= set(caps):
            continue
        if exc.get("caps") and set(exc["caps"]) & set(caps):
            continue
        if inc.get("minKernel") and kernel_version() < tuple(int(x) for x in inc["minKernel"].split(".")[:2]):
            continue
        rule = {"names": r["names"], "action": r["action"]}
        if r.get("args"):
            rule["args"] = [{k: v for k, v in a.items() if k in ("index", "value", "valueTwo", "op")} for a in r["args"]]
        if r.get("errnoRet") is not None:
            rule["errnoRet"] = r["errnoRet"]
        rules.append(rule)
    out = {"defaultAction": moby["defaultAction"], "architectures": arches, "syscalls": rules}
    if moby.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = moby["defaultErrnoRet"]
    return out

def derive_bundle(base, plain, name, edit):
    """A bundle sharing `plain`'s rootfs, its config changed by edit(config)."""
    b = os.path.join(base, name)
    os.makedirs(b)
    os.symlink(os.path.join(plain, "rootfs"), os.path.join(b, "rootfs"))
    with open(os.path.join(plain, "config.json")) as f:
        c = json.load(f)
    c["root"]["path"] = os.path.join(plain, "rootfs")
    edit(c)
    with open(os.path.join(b, "config.json"), "w") as f:
        json.dump(c, f)
    return b

def make_docker_bundle(base, plain):
    """The plain bundle with Docker's default capabilities and seccomp."""
    profile = docker_seccomp(DOCKER_CAPS)
    def edit(c):
        caps = c["process"]["capabilities"]
        for k in ("bounding", "effective", "permitted"):
            caps[k] = list(DOCKER_CAPS)
        caps.pop("inheritable", None)
        caps.pop("ambient", None)
        c["linux"]["seccomp"] = profile
    b = derive_bundle(base, plain, "bundle-docker", edit)
    return b, sum(len(r["names"]) for r in profile["syscalls"])

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
    docker_bundle, docker_names = make_docker_bundle(base, bundle)
    runtimes = {"berth-runtime": args.berth, "crun": shutil.which("crun"), "runc": shutil.which("runc")}
    runtimes = {k: v for k, v in runtimes.items() if v}
    res = {k: {"run": [], "run_cpu": [], "create": [], "start": [], "delete": [], "cpu": [], "rss": [],
               "drun": [], "drun_cpu": []} for k in runtimes}
    n = 0
    order = list(runtimes.items())
    rng = random.Random(42)
    # One untimed round: page cache, and whatever a runtime caches.
    for name, binpath in runtimes.items():
        root = os.path.join(base, "root-" + name)
        for b, cid in ((bundle, "warm"), (docker_bundle, "warmd")):
            timed([binpath, "--root", root, "run", "--bundle", b, cid], gap=False)
    for i in range(args.runs):
        rng.shuffle(order)
        for name, binpath in order:  # interleaved, in a shuffled order each round
            root = os.path.join(base, "root-" + name)
            n += 1
            cid = f"b{n}"
            w, cpu, _, _ = timed([binpath, "--root", root, "run", "--bundle", bundle, cid])
            res[name]["run"].append(w)
            res[name]["run_cpu"].append(cpu)
            cid = f"b{n}d"
            w, cpu, _, _ = timed([binpath, "--root", root, "run", "--bundle", docker_bundle, cid])
            res[name]["drun"].append(w)
            res[name]["drun_cpu"].append(cpu)
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
    # exec into a running container, and update latency.
    sleeper = derive_bundle(base, bundle, "bundle-sleep",
                            lambda c: c["process"].update(args=["/bin/busybox", "sleep", "100000"]))
    ex = {k: {"exec": [], "exec_cpu": [], "update": []} for k in runtimes}
    for name, binpath in runtimes.items():
        root = os.path.join(base, "root-" + name)
        subprocess.run([binpath, "--root", root, "run", "-d", "--bundle", sleeper, "sleeper"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    for i in range(args.runs):
        rng.shuffle(order)
        for name, binpath in order:
            root = os.path.join(base, "root-" + name)
            w, cpu, _, _ = timed([binpath, "--root", root, "exec", "sleeper", "/bin/true"])
            ex[name]["exec"].append(w)
            ex[name]["exec_cpu"].append(cpu)
            w, _, _, _ = timed([binpath, "--root", root, "update", "--pids-limit", str(100 + i), "sleeper"])
            ex[name]["update"].append(w)
    for name, binpath in runtimes.items():
        root = os.path.join(base, "root-" + name)
        subprocess.run([binpath, "--root", root, "delete", "--force", "sleeper"], stdout=subprocess.DEVNULL, check=True)
    print(f"\n`exec /bin/true` into a running container and `update --pids-limit`, {args.runs} interleaved rounds:\n")
    print("| runtime | `exec` median (p10-p90) | vs " + ref + " | CPU per `exec` | `update` median |")
    print("|---|---:|---:|---:|---:|")
    emed = lambda name, k: statistics.median(ex[name][k])
    for name in res:
        e = ex[name]
        print(f"| {name} | {ms(emed(name,'exec')):.1f} ({ms(pct(e['exec'],.1)):.1f}-{ms(pct(e['exec'],.9)):.1f}) | "
              f"{emed(name,'exec')/emed(ref,'exec'):.2f}x | {ms(emed(name,'exec_cpu')):.1f} | {ms(emed(name,'update')):.1f} |")

    print(f"\nWith Docker's default capabilities ({len(DOCKER_CAPS)}) and seccomp profile ({docker_names} syscall names, "
          f"3 architectures, converted from {MOBY_PROFILE}); after an untimed warm-up round, "
          f"so a runtime that caches the compiled profile (berth-runtime does) does not compile it again:\n")
    print("| runtime | `run` median (p10-p90) | vs " + ref + " | CPU per `run` |")
    print("|---|---:|---:|---:|")
    for name in res:
        r = res[name]
        print(f"| {name} | {ms(med(name,'drun')):.1f} ({ms(pct(r['drun'],.1)):.1f}-{ms(pct(r['drun'],.9)):.1f}) | "
              f"{med(name,'drun')/med(ref,'drun'):.2f}x | {ms(med(name,'drun_cpu')):.1f} |")
    shutil.rmtree(base, ignore_errors=True)

if __name__ == "__main__":
    main()
