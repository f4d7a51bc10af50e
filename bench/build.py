#!/usr/bin/env python3
"""`berth build` against `buildah bud --layers` (private --root/--runroot;
buildah's storage driver overlay by default, vfs with --storage vfs) and
`docker build` (Debian's dockerd 20.10, started here for each round with
its own --data-root, --exec-root, socket and pidfile, no bridge and no
iptables, BuildKit unless --docker-classic) of one two-stage Dockerfile:
cold (fresh stores), no change, one source file changed. Interleaved
round by round (the order rotates), medians of wall time, CPU time
(user+sys of the command and every process it waited for; for docker
also dockerd's and its containerd's, and what they waited for) and peak
RSS (the largest process waited for, from a wrapper's RUSAGE_CHILDREN;
berth's monitors and containers are not its children, so their memory is
not counted, nor buildah's runc's; for docker the CLI's and, apart,
dockerd's own peak, reset before each build through clear_refs).
Prints Markdown.

Run as root via bench/build.sh.
"""
import argparse, os, random, resource, shutil, signal, statistics, subprocess, sys, tempfile, time

DOCKERFILE = """ARG BASE=bb
FROM $BASE AS gen
RUN mkdir /data && i=0; while [ $i -lt 2000 ]; do echo "file $i" > /data/f$i; i=$((i+1)); done
RUN dd if=/dev/urandom of=/big bs=1M count=20 status=none
FROM $BASE
COPY --from=gen /data /data
COPY --from=gen /big /big
COPY src/ /src/
RUN cat /src/f1 > /out
"""


def timed(cmd, env=None):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {r.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def timed_rss(cmd, env=None):
    """Wall, CPU and the peak RSS (MiB) of the command and the processes
    it waited for, measured by a fresh wrapper process (RUSAGE_CHILDREN's
    maximum is per waiter, so one wrapper per command)."""
    out = tempfile.NamedTemporaryFile(delete=False)
    out.close()
    wall, cpu = timed(["/usr/bin/env", "python3", "-c",
                       "import resource,subprocess,sys;"
                       "r=subprocess.run(sys.argv[2:]).returncode;"
                       "open(sys.argv[1],'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss));"
                       "sys.exit(r)", out.name] + cmd, env=env)
    with open(out.name) as f:
        rss = int(f.read() or 0) / 1024
    os.unlink(out.name)
    return wall, cpu, rss


# Debian's docker.io 20.10 (its CLI has BuildKit built in; a newer CLI
# earlier in PATH would want buildx).
DOCKER = "/usr/bin/docker"
DOCKERD = "/usr/sbin/dockerd"


def proc_cpu(pid):
    """user+sys of a process and of the children it waited for (s)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def children(pid):
    out = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def peak_rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


STARTED = []


class Dockerd:
    """A dockerd of its own under `work` (started, then stopped and its
    state removed by stop())."""

    def __init__(self, work):
        self.dir = os.path.join(work, "docker")
        self.exec_root = tempfile.mkdtemp(prefix="bdx", dir="/run")
        self.sock = os.path.join(self.exec_root, "docker.sock")
        self.pidfile = os.path.join(self.exec_root, "docker.pid")
        self.log = open(os.path.join(work, "dockerd.log"), "w")
        self.proc = subprocess.Popen(
            [DOCKERD, "--data-root", os.path.join(self.dir, "data"), "--exec-root", self.exec_root,
             "-H", f"unix://{self.sock}", "--pidfile", self.pidfile, "--bridge=none",
             "--iptables=false", "--ip-masq=false", "--ip-forward=false"],
            stdout=self.log, stderr=subprocess.STDOUT)
        STARTED.append(self)
        deadline = time.time() + 60
        while subprocess.run([DOCKER, "-H", f"unix://{self.sock}", "version"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                sys.exit(f"dockerd did not start: see {self.log.name}")
            time.sleep(0.2)

    def cli(self):
        return [DOCKER, "-H", f"unix://{self.sock}"]

    def pids(self):
        return [self.proc.pid] + children(self.proc.pid)

    def cpu(self):
        return sum(proc_cpu(p) for p in self.pids())

    def reset_peak(self):
        for p in self.pids():
            try:
                with open(f"/proc/{p}/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                pass

    def peak(self):
        return peak_rss_mib(self.proc.pid)

    def stop(self):
        if self in STARTED:
            STARTED.remove(self)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        for root in (self.dir, self.exec_root):
            mounts = []
            with open("/proc/self/mountinfo") as f:
                for line in f:
                    m = line.split()[4]
                    if m.startswith(root + "/"):
                        mounts.append(m)
            for m in sorted(mounts, reverse=True):
                subprocess.run(["umount", "-l", m], stderr=subprocess.DEVNULL)
            shutil.rmtree(root, ignore_errors=True)


def steps_part(a, berth, tar, work, policy):
    """The cost of one RUN step: `build --no-cache` of FROM bb plus N RUN
    steps against the same with one step, (T_N - T_1) / (N - 1), beside
    `berth run --rm --network none bb CMD` of the same command. Two kinds of
    step: one that changes no file (an empty layer) and one that writes a
    small file (a layer of one file: diff, tar, gzip, digest, store).
    buildah's per-step cost for context. Interleaved, medians."""
    n = a.steps
    rr = os.path.join(work, "steps")
    run_root = tempfile.mkdtemp(prefix="bs", dir="/run")
    benv = dict(os.environ, BERTH_ROOT=os.path.join(rr, "berth"), BERTH_RUN_ROOT=run_root,
                BERTH_DEFAULT_NETWORK="none")
    bh = ["buildah", "--root", os.path.join(rr, "buildah"), "--runroot", os.path.join(rr, "brun"),
          "--storage-driver", a.storage]
    try:
        subprocess.run([berth, "import", tar, "bb"], env=benv, check=True, stdout=subprocess.DEVNULL)
        subprocess.run([berth, "save", "-o", os.path.join(rr, "bb.tar"), "bb"], env=benv, check=True)
        kinds = {"no change": "echo step {i}", "writes a file": "echo step {i} > /f{i}"}
        ctxs = {}
        for kind, step in kinds.items():
            for count in (1, n):
                d = os.path.join(rr, f"ctx-{kind.replace(' ', '-')}-{count}")
                os.makedirs(d)
                with open(os.path.join(d, "Dockerfile"), "w") as f:
                    f.write("ARG BASE=bb\nFROM $BASE\n"
                            + "".join(f"RUN {step.format(i=i)}\n" for i in range(count)))
                ctxs[(kind, count)] = d
        # Untimed: buildah's first use pulls the base into its store.
        base = ["--build-arg", f"BASE=docker-archive:{rr}/bb.tar"]
        bud = bh + ["bud", "--layers", "--no-cache", "--runtime", "runc", "--network", "none", "-q",
                    "--signature-policy", policy] + base
        subprocess.run(bud + ["-t", "warm", ctxs[("no change", 1)]], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run([berth, "run", "--rm", "--network", "none", "bb", "sh", "-c", "true"], env=benv, check=True)
        res = {}
        jobs = []
        for kind, step in kinds.items():
            jobs.append(("berth run --rm", kind, [berth, "run", "--rm", "--network", "none", "bb", "sh", "-c",
                                                   step.format(i=0)], benv))
            for count in (1, n):
                jobs.append((f"berth build {count}", kind,
                             [berth, "build", "-q", "--no-cache", "--network", "none", "-t", "s",
                              ctxs[(kind, count)]], benv))
                jobs.append((f"buildah bud {count}", kind, bud + ["-t", "s", ctxs[(kind, count)]], None))
        for r in range(a.runs):
            order = list(jobs)
            random.shuffle(order)
            for name, kind, cmd, env in order:
                time.sleep(0.03)
                res.setdefault((name, kind), []).append(timed(cmd, env=env))
        print(f"## The cost of one RUN step ({n}-step and 1-step builds with --no-cache, {a.runs} rounds, "
              f"interleaved; medians)\n")
        print("| step | berth run --rm (ms, CPU) | berth: one RUN step (ms, CPU) | step - run (ms) "
              "| buildah: one RUN step (ms, CPU) |")
        print("|---|---:|---:|---:|---:|")
        med = lambda k, i: statistics.median(x[i] for x in res[k]) * 1000
        for kind in kinds:
            run_w, run_c = med(("berth run --rm", kind), 0), med(("berth run --rm", kind), 1)
            step = lambda tool, i: (med((f"{tool} {n}", kind), i) - med((f"{tool} 1", kind), i)) / (n - 1)
            print(f"| {kind} | {run_w:.1f}, {run_c:.1f} | {step('berth build', 0):.1f}, "
                  f"{step('berth build', 1):.1f} | {step('berth build', 0) - run_w:+.1f} | "
                  f"{step('buildah bud', 0):.1f}, {step('buildah bud', 1):.1f} |")
        print(f"\nWhole builds, wall ms: " + "; ".join(
            f"{name} ({kind}) {med((name, kind), 0):.0f}" for name, kind, _, _ in jobs if "build" in name
            or "bud" in name) + "\n")
    finally:
        subprocess.run(bh + ["rm", "--all"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(bh + ["rmi", "--all", "--force"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["umount", "-R", os.path.join(rr, "buildah", "overlay")], stderr=subprocess.DEVNULL)
        shutil.rmtree(rr, ignore_errors=True)
        shutil.rmtree(run_root, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--storage", default="overlay", help="buildah's storage driver (overlay or vfs)")
    ap.add_argument("--docker-classic", action="store_true", help="docker's classic builder, not BuildKit")
    ap.add_argument("--no-docker", action="store_true")
    ap.add_argument("--steps", type=int, default=0,
                    help="also measure the cost of one RUN step against `berth run --rm` with N-step builds")
    ap.add_argument("--steps-only", action="store_true", help="only the RUN step part")
    a = ap.parse_args()
    tools = ["berth", "buildah"] + ([] if a.no_docker else ["docker"])
    berth = os.path.join(a.bin, "berth")
    work = tempfile.mkdtemp(prefix="berth-bench-build-", dir="/var/tmp")
    policy = os.path.join(work, "policy.json")
    with open(policy, "w") as f:
        f.write('{"default":[{"type":"insecureAcceptAnything"}]}')
    results = {(t, s): [] for t in tools for s in ("cold", "no change", "one file changed")}
    dockerd_peak = {s: [] for s in ("cold", "no change", "one file changed")}
    try:
        rootfs = os.path.join(work, "rootfs")
        os.makedirs(os.path.join(rootfs, "bin"))
        os.makedirs(os.path.join(rootfs, "etc"))
        shutil.copy("/bin/busybox", os.path.join(rootfs, "bin/busybox"))
        for app in ["sh", "mkdir", "echo", "dd", "cat", "["]:
            os.symlink("busybox", os.path.join(rootfs, "bin", app))
        with open(os.path.join(rootfs, "etc/passwd"), "w") as f:
            f.write("root:x:0:0:root:/root:/bin/sh\n")
        tar = os.path.join(work, "rootfs.tar")
        subprocess.run(["tar", "-C", rootfs, "-cf", tar, "."], check=True)
        ctx = os.path.join(work, "ctx")
        os.makedirs(os.path.join(ctx, "src"))
        for i in range(1000):
            with open(os.path.join(ctx, "src", f"f{i}"), "w") as f:
                f.write(f"source {i}\n")
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(DOCKERFILE)
        if a.steps:
            steps_part(a, berth, tar, work, policy)
        if a.steps_only:
            return
        for r in range(a.runs):
            rr = os.path.join(work, f"r{r}")
            run_root = tempfile.mkdtemp(prefix="bb", dir="/run")
            benv = dict(os.environ, BERTH_ROOT=os.path.join(rr, "berth"), BERTH_RUN_ROOT=run_root,
                        BERTH_DEFAULT_NETWORK="none")
            subprocess.run([berth, "import", tar, "bb"], env=benv, check=True, stdout=subprocess.DEVNULL)
            subprocess.run([berth, "save", "-o", os.path.join(rr, "bb.tar"), "bb"], env=benv, check=True)
            bh = ["buildah", "--root", os.path.join(rr, "buildah"), "--runroot", os.path.join(rr, "brun"),
                  "--storage-driver", a.storage]
            dockerd = None
            if "docker" in tools:
                dockerd = Dockerd(rr)
                p = subprocess.Popen([berth, "save", "bb"], env=benv, stdout=subprocess.PIPE)
                subprocess.run(dockerd.cli() + ["load", "-q"], stdin=p.stdout, check=True,
                               stdout=subprocess.DEVNULL)
                p.wait()
            denv = dict(os.environ, DOCKER_BUILDKIT="0" if a.docker_classic else "1")
            cmds = {
                # `--network none` for every tool: the same RUN steps, and
                # no bridge or firewall rule made in the host's namespace.
                "berth": [berth, "build", "-q", "--network", "none", "-t", "app", ctx],
                "buildah": bh + ["bud", "--layers", "--runtime", "runc", "--network", "none", "-q",
                                 "--signature-policy", policy,
                                 "--build-arg", f"BASE=docker-archive:{rr}/bb.tar", "-t", "app", ctx],
            }
            if dockerd:
                cmds["docker"] = dockerd.cli() + ["build", "-q", "--network", "none", "-t", "app", ctx]
            order = tools[r % len(tools):] + tools[:r % len(tools)]
            for scenario in ("cold", "no change", "one file changed"):
                if scenario == "one file changed":
                    with open(os.path.join(ctx, "src", "f1"), "w") as f:
                        f.write(f"changed in round {r}\n")
                for t in order:
                    subprocess.run(["sync"])
                    if t == "docker":
                        dockerd.reset_peak()
                        before = dockerd.cpu()
                        wall, cpu, rss = timed_rss(cmds[t], env=denv)
                        cpu += dockerd.cpu() - before
                        results[(t, scenario)].append((wall, cpu, rss))
                        dockerd_peak[scenario].append(dockerd.peak())
                    else:
                        results[(t, scenario)].append(timed_rss(cmds[t], env=benv))
            if dockerd:
                dockerd.stop()
            subprocess.run(bh + ["rm", "--all"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run(bh + ["rmi", "--all", "--force"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run(["umount", "-R", os.path.join(rr, "buildah", "overlay")], stderr=subprocess.DEVNULL)
            shutil.rmtree(rr, ignore_errors=True)
            shutil.rmtree(run_root, ignore_errors=True)
        builder = "classic builder" if a.docker_classic else "BuildKit"
        print(f"{a.runs} rounds, interleaved; buildah storage {a.storage}; docker {builder}; medians\n")
        print("| scenario | tool | wall (s) | CPU (s) | peak RSS (MiB) |")
        print("|---|---|---|---|---|")
        for s in ("cold", "no change", "one file changed"):
            for t in tools:
                v = results[(t, s)]
                med = lambda i: statistics.median(x[i] for x in v)
                rss = f"{med(2):.1f}"
                if t == "docker":
                    rss += f" (CLI); dockerd {statistics.median(dockerd_peak[s]):.1f}"
                print(f"| {s} | {t} | {med(0):.3f} | {med(1):.3f} | {rss} |")
    finally:
        # A failed command exits through here: stop a dockerd left running.
        for d in list(STARTED):
            d.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
