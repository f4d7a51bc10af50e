#!/usr/bin/env python3
"""How a container start grows with the containers already running:
`berth run --rm IMAGE true` with none running, then with N detached
`sleep` containers running (each an overlay mount, a monitor and a
cgroup), interleaved with an earlier build (`--before`) in the same rounds,
each with its own store. berth alone: this runs in the host's mount
namespace as it is (podman's crun refuses this hybrid layout unless the
cgroup2 mount is hidden, and hiding it changes what is measured here).
Prints Markdown.
"""
import argparse, os, random, shutil, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import busybox_tar, run, summary  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="directory of the release binaries")
    ap.add_argument("--before", help="directory of an earlier build's release binaries")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--running", type=int, default=100)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="berth-bench-scale-", dir="/var/tmp")
    builds = {"berth": a.bin}
    if a.before:
        builds["berth (before)"] = a.before
    envs = {}
    try:
        tar = busybox_tar(work)
        for k, (name, d) in enumerate(builds.items()):
            envs[name] = dict(os.environ, BERTH_ROOT=os.path.join(work, f"store{k}"),
                              BERTH_RUN_ROOT=tempfile.mkdtemp(prefix="bs", dir="/run"),
                              BERTH_DEFAULT_NETWORK="none")
            run([os.path.join(d, "berth"), "import", tar, "bench/bb:latest"], envs[name])

        def rounds():
            res = {n: [] for n in builds}
            for i in range(a.runs + 1):
                for name in random.sample(list(builds), len(builds)):
                    time.sleep(0.03)
                    t = run([os.path.join(builds[name], "berth"), "run", "--rm", "bench/bb", "true"], envs[name])
                    if i > 0:
                        res[name].append(t)
            return res

        idle = rounds()
        for name, d in builds.items():
            for _ in range(a.running):
                run([os.path.join(d, "berth"), "run", "-d", "bench/bb", "sleep", "1000"], envs[name])
        lines = sum(1 for _ in open("/proc/self/mountinfo"))
        busy = rounds()
        print(f"## `run --rm IMAGE true` with 0 and {a.running} containers running, {a.runs} interleaved runs each\n")
        print(f"(/proc/self/mountinfo: {lines} lines with them running)\n")
        print(f"| build | none running, median (p10-p90) ms | {a.running} running | growth |")
        print("|---|---:|---:|---:|")
        for name in builds:
            i, il, ih = summary(idle[name])
            b, bl, bh = summary(busy[name])
            print(f"| {name} | {i:.1f} ({il:.1f}-{ih:.1f}) | {b:.1f} ({bl:.1f}-{bh:.1f}) | {b - i:+.1f} ms |")
    finally:
        for name, d in builds.items():
            env = envs.get(name)
            if env is None:
                continue
            berth = os.path.join(d, "berth")
            ids = subprocess.run([berth, "ps", "-aq"], env=env, capture_output=True, text=True).stdout.split()
            if ids:
                subprocess.run([berth, "rm", "-f"] + ids, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            shutil.rmtree(env["BERTH_RUN_ROOT"], ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
