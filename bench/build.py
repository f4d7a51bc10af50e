#!/usr/bin/env python3
"""`berth build` against `buildah bud --layers` (private --root/--runroot;
buildah's storage driver overlay by default, vfs with --storage vfs) of one
two-stage Dockerfile: cold (fresh stores), no change, one source file
changed. Interleaved round by round (the order alternates), medians of
wall time, CPU time (user+sys of the command and every process it waited
for) and peak RSS (the largest process waited for, from a wrapper's
RUSAGE_CHILDREN; berth's monitors and containers are not its children, so
their memory is not counted, nor buildah's runc's). Prints Markdown.

Run as root via bench/build.sh.
"""
import argparse, os, resource, shutil, statistics, subprocess, sys, tempfile, time

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--storage", default="overlay", help="buildah's storage driver (overlay or vfs)")
    a = ap.parse_args()
    berth = os.path.join(a.bin, "berth")
    work = tempfile.mkdtemp(prefix="berth-bench-build-", dir="/var/tmp")
    policy = os.path.join(work, "policy.json")
    with open(policy, "w") as f:
        f.write('{"default":[{"type":"insecureAcceptAnything"}]}')
    results = {(t, s): [] for t in ("berth", "buildah") for s in ("cold", "no change", "one file changed")}
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
        for r in range(a.runs):
            rr = os.path.join(work, f"r{r}")
            run_root = tempfile.mkdtemp(prefix="bb", dir="/run")
            benv = dict(os.environ, BERTH_ROOT=os.path.join(rr, "berth"), BERTH_RUN_ROOT=run_root,
                        BERTH_DEFAULT_NETWORK="none")
            subprocess.run([berth, "import", tar, "bb"], env=benv, check=True, stdout=subprocess.DEVNULL)
            subprocess.run([berth, "save", "-o", os.path.join(rr, "bb.tar"), "bb"], env=benv, check=True)
            bh = ["buildah", "--root", os.path.join(rr, "buildah"), "--runroot", os.path.join(rr, "brun"),
                  "--storage-driver", a.storage]
            cmds = {
                "berth": [berth, "build", "-q", "-t", "app", ctx],
                "buildah": bh + ["bud", "--layers", "--runtime", "runc", "--network", "none", "-q",
                                 "--signature-policy", policy,
                                 "--build-arg", f"BASE=docker-archive:{rr}/bb.tar", "-t", "app", ctx],
            }
            order = ["berth", "buildah"] if r % 2 == 0 else ["buildah", "berth"]
            for scenario in ("cold", "no change", "one file changed"):
                if scenario == "one file changed":
                    with open(os.path.join(ctx, "src", "f1"), "w") as f:
                        f.write(f"changed in round {r}\n")
                for t in order:
                    subprocess.run(["sync"])
                    results[(t, scenario)].append(timed_rss(cmds[t], env=benv))
            subprocess.run(bh + ["rm", "--all"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run(bh + ["rmi", "--all", "--force"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run(["umount", "-R", os.path.join(rr, "buildah", "overlay")], stderr=subprocess.DEVNULL)
            shutil.rmtree(rr, ignore_errors=True)
            shutil.rmtree(run_root, ignore_errors=True)
        print(f"{a.runs} rounds, interleaved; buildah storage {a.storage}; medians\n")
        print("| scenario | tool | wall (s) | CPU (s) | peak RSS (MiB) |")
        print("|---|---|---|---|---|")
        for s in ("cold", "no change", "one file changed"):
            for t in ("berth", "buildah"):
                v = results[(t, s)]
                med = lambda i: statistics.median(x[i] for x in v)
                print(f"| {s} | {t} | {med(0):.3f} | {med(1):.3f} | {med(2):.1f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
