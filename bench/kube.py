#!/usr/bin/env python3
"""`kube play` of a Deployment with 3 replicas behind a Service: berth
makes 3 pods; podman makes what its version makes (counted after the
warm-up: Debian 12's podman 4.3.1 makes 3 pods too, `<name>-pod-N`);
compared per pod and per container (same busybox image in both stores, `--network none` for
both: a bridge network would touch the host's interfaces), interleaved;
then `kube down`, timed apart. Prints Markdown.

Run as root via bench/kube.sh (which builds release binaries and hides the
hybrid cgroup2 mount so that podman's crun works here).
"""
import argparse, os, random, shutil, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import run, summary  # noqa: E402

MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: bench}
spec:
  replicas: 3
  selector: {matchLabels: {app: bench}}
  template:
    metadata: {labels: {app: bench}}
    spec:
      containers:
      - name: main
        image: localhost/bench/bb:latest
        imagePullPolicy: Never
        command: [/bin/sleep, "1000"]
---
apiVersion: v1
kind: Service
metadata: {name: benchsvc}
spec: {selector: {app: bench}, ports: [{port: 80}]}
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="directory of the release binaries")
    ap.add_argument("--runs", type=int, default=10)
    a = ap.parse_args()
    berth = os.path.join(a.bin, "berth")
    work = tempfile.mkdtemp(prefix="berth-bench-kube-", dir="/var/tmp")
    run_root = tempfile.mkdtemp(prefix="bk", dir="/run")
    env = dict(os.environ, BERTH_ROOT=os.path.join(work, "store"), BERTH_RUN_ROOT=run_root,
               BERTH_DEFAULT_NETWORK="none")
    pause_before = subprocess.run(["podman", "images", "-q", "localhost/podman-pause"],
                                  capture_output=True, text=True).stdout.split()
    yaml = os.path.join(work, "deploy.yaml")
    try:
        with open(yaml, "w") as f:
            f.write(MANIFEST)
        rootfs = os.path.join(work, "rootfs")
        os.makedirs(os.path.join(rootfs, "bin"))
        os.makedirs(os.path.join(rootfs, "etc"))
        shutil.copy("/bin/busybox", os.path.join(rootfs, "bin/busybox"))
        for app in ["sh", "sleep"]:
            os.symlink("busybox", os.path.join(rootfs, "bin", app))
        with open(os.path.join(rootfs, "etc/passwd"), "w") as f:
            f.write("root:x:0:0:root:/root:/bin/sh\n")
        conf = os.path.join(work, "containers.conf")
        with open(conf, "w") as f:
            f.write('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=32768:32768"]\n')
        os.environ["CONTAINERS_CONF"] = conf
        tar = os.path.join(work, "bb.tar")
        subprocess.run(["tar", "-C", rootfs, "-cf", tar, "."], check=True)
        run([berth, "import", tar, "localhost/bench/bb:latest"], env)
        subprocess.run(["podman", "import", tar, "localhost/bench/bb:latest"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cmds = {
            "berth": (lambda: run([berth, "kube", "play", "--network", "none", yaml], env),
                      lambda: run([berth, "kube", "down", yaml], env), None),
            "podman": (lambda: run(["podman", "kube", "play", "--network", "none", yaml]),
                       lambda: run(["podman", "kube", "down", yaml]), None),
        }
        counts = {}
        for name, (up, down, _) in cmds.items():
            up()
            if name == "berth":
                pods = subprocess.run([berth, "pod", "ps", "-q"], env=env, capture_output=True, text=True).stdout.split()
                ctrs = subprocess.run([berth, "ps", "-q"], env=env, capture_output=True, text=True).stdout.split()
            else:
                n = subprocess.run(["podman", "pod", "ps", "--filter", "name=bench", "--format", "{{.NumberOfContainers}}"],
                                   capture_output=True, text=True).stdout.split()
                pods = n
                ctrs = [None] * sum(int(x) for x in n)
            # Containers other than the infra.
            counts[name] = (len(pods), len(ctrs) - len(pods))
            down()
        res = {n: ([], []) for n in cmds}
        for i in range(a.runs):
            order = list(cmds)
            random.shuffle(order)
            for name in order:
                up, down, _ = cmds[name]
                time.sleep(0.03)
                res[name][0].append(up())
                time.sleep(0.03)
                res[name][1].append(down())
        print(f"## kube play of a Deployment behind a Service, {a.runs} interleaved runs each\n")
        print("| engine | pods | containers | play, median (p10-p90) ms | per pod ms | per container ms | down, median ms |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        per = {}
        for name in cmds:
            pods, ctrs = counts[name]
            u, ul, uh = summary(res[name][0])
            d, _, _ = summary(res[name][1])
            per[name] = (u / max(pods, 1), u / max(ctrs, 1))
            print(f"| {name} | {pods} | {ctrs} | {u:.1f} ({ul:.1f}-{uh:.1f}) | {per[name][0]:.1f} | {per[name][1]:.1f} | {d:.1f} |")
        print(f"\npodman is {per['podman'][0] / per['berth'][0]:.1f}x slower than berth per pod played, "
              f"{per['podman'][1] / per['berth'][1]:.1f}x per container.\n")
    finally:
        subprocess.run([berth, "kube", "down", yaml], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["podman", "kube", "down", yaml], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["podman", "rmi", "-f", "localhost/bench/bb:latest"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not pause_before:
            for i in subprocess.run(["podman", "images", "-q", "localhost/podman-pause"],
                                    capture_output=True, text=True).stdout.split():
                subprocess.run(["podman", "rmi", "-f", i], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(run_root, ignore_errors=True)


if __name__ == "__main__":
    main()
