#!/usr/bin/env python3
"""`berth pull` vs `podman pull` vs `skopeo copy` + `umoci unpack`, and the
floor (decompression + inode creation), interleaved, on ext4 and tmpfs.

The image is the testbed's multi-layer Debian image (~160 MB gzip, ~240 MB
tar, thousands of files, whiteouts, a 100 MiB random file) served by a
registry on loopback (../shared/testbed/make-test-images.sh starts it).
Every tool starts from empty storage each round; rounds shuffle the order;
`sync` runs (untimed) before each timed command so no one pays for another's
writeback. Reported: wall time (median, min-max), CPU time (user+sys of the
process tree) and peak RSS of the largest process (GNU time), with ratios to podman and
to the floor. Run as root: bench/pull.sh [--runs N] [--registry HOST:PORT].
"""
import argparse, concurrent.futures, json, os, random, resource, shutil, statistics, subprocess, sys, tempfile, time, urllib.request

def timed(cmd, env=None):
    """Runs cmd; returns (wall s, cpu s, peak rss KiB). CPU is the process
    tree's (rusage of waited children). Peak RSS comes from GNU time around
    the command: a forked Python child would count the interpreter's pages
    until exec."""
    rss_file = tempfile.NamedTemporaryFile(prefix="berth-bench-rss", delete=False)
    rss_file.close()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file.name] + cmd,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {p.stderr.decode(errors='replace')}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with open(rss_file.name) as f:
        rss = int(f.read().strip().splitlines()[-1])
    os.unlink(rss_file.name)
    return wall, cpu, rss

def fresh(d):
    if os.path.exists(d):
        subprocess.run(["rm", "-rf", "--one-file-system", d], check=True)
    os.makedirs(d)

def manifest(reg, repo, tag):
    req = urllib.request.Request(f"http://{reg}/v2/{repo}/manifests/{tag}",
                                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    return json.load(urllib.request.urlopen(req))

def fetch_blobs(reg, repo, layers, into):
    paths = []
    for l in layers:
        p = os.path.join(into, l["digest"].split(":")[1])
        if not os.path.exists(p):
            with urllib.request.urlopen(f"http://{reg}/v2/{repo}/blobs/{l['digest']}") as r, open(p, "wb") as f:
                shutil.copyfileobj(r, f, 1 << 20)
        paths.append(p)
    return paths

def floor(blobs, dest, parallel):
    """Decompress + untar every layer into its own directory, `parallel` at
    a time, from local files: what any pull must at least do."""
    def one(i_b):
        i, b = i_b
        d = os.path.join(dest, str(i))
        os.makedirs(d)
        return subprocess.run(["/usr/bin/time", "-f", "%M", "-o", f"{d}.rss", "sh", "-c",
                               f"gzip -dc '{b}' | tar -x --numeric-owner -C '{d}'"], check=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(parallel) as ex:
        list(ex.map(one, enumerate(blobs)))
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss = 0
    for i in range(len(blobs)):
        with open(os.path.join(dest, f"{i}.rss")) as f:
            rss = max(rss, int(f.read().strip().splitlines()[-1]))
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), rss

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--registry", default="127.0.0.1:5000")
    ap.add_argument("--image", default="test/debian:latest")
    ap.add_argument("--berth", required=True)
    ap.add_argument("--ext4-dir", default="/var/tmp/berth-bench-pull")
    ap.add_argument("--parallel", type=int, default=3)
    a = ap.parse_args()
    repo, tag = a.image.rsplit(":", 1)
    try:
        m = manifest(a.registry, repo, tag)
    except Exception as e:
        sys.exit(f"cannot reach {a.registry}/{a.image} ({e}); start the testbed registry "
                 "(../shared/testbed/make-test-images.sh, or its registry/registry.sh start)")
    ref = f"{a.registry}/{a.image}"
    comp = sum(l["size"] for l in m["layers"])
    tmpfs = tempfile.mkdtemp(prefix="berth-bench-tmpfs")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4g", "tmpfs", tmpfs], check=True)
    os.makedirs(a.ext4_dir, exist_ok=True)
    blob_dir = tempfile.mkdtemp(prefix="berth-bench-blobs", dir="/var/tmp")
    blobs = fetch_blobs(a.registry, repo, m["layers"], blob_dir)
    tools = {
        "berth pull": lambda d: [timed([a.berth, "--root", d, "pull", "-q", "--parallel", str(a.parallel), ref])],
        "podman pull": lambda d: [timed(["podman", "--root", f"{d}/root", "--runroot", f"{d}/run",
                                         "--storage-driver", "overlay", "pull", "-q", "--tls-verify=false", ref])],
        "skopeo copy + umoci unpack": lambda d: [
            timed(["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}", f"oci:{d}/oci:latest"]),
            timed(["umoci", "unpack", "--image", f"{d}/oci:latest", f"{d}/bundle"])],
        "floor (gzip -d | tar -x)": lambda d: [floor(blobs, d, a.parallel)],
    }
    results = {(fs, t): [] for fs in ("ext4", "tmpfs") for t in tools}
    try:
        for r in range(a.runs):
            order = [(fs, t) for fs in ("ext4", "tmpfs") for t in tools]
            random.shuffle(order)
            for fs, t in order:
                base = a.ext4_dir if fs == "ext4" else tmpfs
                d = os.path.join(base, "run")
                fresh(d)
                if t.startswith("podman"):
                    # podman keeps mounts under its runroot; start clean.
                    pass
                subprocess.run(["sync"], check=True)
                time.sleep(0.5)
                parts = tools[t](d)
                wall = sum(p[0] for p in parts)
                cpu = sum(p[1] for p in parts)
                rss = max(p[2] for p in parts)
                results[(fs, t)].append((wall, cpu, rss))
                if t.startswith("podman"):
                    subprocess.run(["podman", "--root", f"{d}/root", "--runroot", f"{d}/run",
                                    "--storage-driver", "overlay", "system", "reset", "-f"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                fresh(d)
            print(f"round {r + 1}/{a.runs} done", file=sys.stderr)
    finally:
        subprocess.run(["umount", "-l", tmpfs])
        os.rmdir(tmpfs)
        shutil.rmtree(blob_dir, ignore_errors=True)
        shutil.rmtree(a.ext4_dir, ignore_errors=True)
    print(f"\n`pull {a.image}` ({len(m['layers'])} layers, {comp / 1e6:.0f} MB compressed) from {a.registry} "
          f"into empty storage, {a.runs} interleaved rounds; wall and CPU in seconds, peak RSS of the largest process (GNU time)\n")
    for fs in ("ext4", "tmpfs"):
        pod = statistics.median(w for w, _, _ in results[(fs, "podman pull")])
        fl = statistics.median(w for w, _, _ in results[(fs, "floor (gzip -d | tar -x)")])
        print(f"**{fs}**\n")
        print("| tool | wall median (min-max) | vs podman | vs floor | CPU | peak RSS |")
        print("|---|---:|---:|---:|---:|---:|")
        for t in tools:
            ws = [w for w, _, _ in results[(fs, t)]]
            med = statistics.median(ws)
            cpu = statistics.median(c for _, c, _ in results[(fs, t)])
            rss = statistics.median(r for _, _, r in results[(fs, t)]) / 1024
            print(f"| {t} | {med:.2f} ({min(ws):.2f}-{max(ws):.2f}) | {med / pod:.2f}x | {med / fl:.2f}x | {cpu:.2f} | {rss:.1f} MiB |")
        print()

if __name__ == "__main__":
    main()
