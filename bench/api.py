"""berth's Docker API service against dockerd and podman's service, all
three driven by the same docker CLI (Debian's 20.10):

- `docker run --rm --network none bb true`, interleaved rounds;
- with 100 containers made: `docker ps -a` and `docker inspect c50`, by the
  CLI and as the bare API request (GET /v1.41/containers/json?all=1,
  GET /v1.41/containers/c50/json on a fresh connection, no CLI);
- RSS: the service alone and with its helpers (dockerd + containerd +
  shims; podman + conmon; berth's service + monitors), idle, the highest
  seen while the runs went on, and after them.

Each peer gets state of its own (dockerd: --data-root, --exec-root, -H,
--pidfile, --bridge=none --iptables=false --ip-masq=false, its default
runtime; podman: --root, --runroot) and is stopped and its state removed
at the end. Run by bench/api.sh (as root, in a private mount namespace).
"""
import argparse, http.client, os, shutil, signal, socket, subprocess, sys, tempfile, threading, time
from benchlib import run, summary

DOCKER = "/usr/bin/docker"
ENGINES = ["berth", "dockerd", "podman"]


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def api_ms(sock, path):
    """One GET on a fresh connection: ms to the whole body."""
    t0 = time.perf_counter()
    c = UnixHTTP(sock)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    if r.status != 200:
        sys.exit(f"GET {path} on {sock}: {r.status} {body[:200]!r}")
    return (time.perf_counter() - t0) * 1000


def tree(pid):
    """pid and all its descendants."""
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(p))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def marked(token):
    """Processes whose command line names `token` (a state directory)."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if token.encode() in f.read():
                        out.append(int(p))
            except OSError:
                pass
    return out


def rss_kib(pid, key="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Engine:
    def __init__(self, name, sock, pid, tokens):
        self.name, self.sock, self.pid, self.tokens = name, sock, pid, tokens
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{sock}")

    def docker(self, *args):
        return [DOCKER, *args]

    def service_rss(self):
        return rss_kib(self.pid)

    def all_rss(self):
        pids = set(tree(self.pid))
        for t in self.tokens:
            pids.update(marked(t))
        return sum(rss_kib(p) for p in pids)


def wait_sock(path, proc, what):
    t = time.time()
    while True:
        if proc.poll() is not None:
            sys.exit(f"{what} ended at start (status {proc.returncode})")
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            s.close()
            return
        except OSError:
            if time.time() - t > 60:
                sys.exit(f"{what} did not listen on {path}")
            time.sleep(0.05)


def unmount_under(d):
    with open("/proc/self/mountinfo") as f:
        mps = [l.split()[4] for l in f]
    for m in sorted((m for m in mps if m.startswith(d + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], stderr=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--reqs", type=int, default=30)
    a = ap.parse_args()
    for tool in (DOCKER, "/usr/sbin/dockerd", "/usr/bin/podman"):
        if not os.path.exists(tool):
            sys.exit(f"{tool} is missing (apt-get install docker.io podman)")
    work = tempfile.mkdtemp(prefix="berth-bench-api.", dir="/var/tmp")
    run_dirs = [tempfile.mkdtemp(prefix=p, dir="/run") for p in ("bba.", "bbd.", "bbp.")]
    brun, drun, prun = run_dirs
    procs = {}
    try:
        # One busybox root filesystem, imported by each engine as bb.
        rootfs = os.path.join(work, "rootfs")
        os.makedirs(rootfs + "/bin")
        os.makedirs(rootfs + "/etc")
        shutil.copy("/bin/busybox", rootfs + "/bin/busybox")
        for ap_ in ("sh", "true", "sleep"):
            os.symlink("busybox", f"{rootfs}/bin/{ap_}")
        with open(rootfs + "/etc/passwd", "w") as f:
            f.write("root:x:0:0:root:/root:/bin/sh\n")
        tar = os.path.join(work, "rootfs.tar")
        subprocess.run(["tar", "-C", rootfs, "-cf", tar, "."], check=True)

        # berth
        berth = [os.path.join(a.bin, "berth"), "--root", f"{work}/berth", "--run-root", brun]
        benv = dict(os.environ, BERTH_DEFAULT_NETWORK="none")
        subprocess.run(berth + ["import", tar, "bb"], check=True, env=benv, stdout=subprocess.DEVNULL)
        bsock = f"{brun}/docker.sock"
        procs["berth"] = subprocess.Popen(berth + ["system", "service", "--time", "0", f"unix://{bsock}"], env=benv)
        wait_sock(bsock, procs["berth"], "berth system service")

        # dockerd, with its own managed containerd under its exec root.
        dsock = f"{work}/dockerd.sock"
        procs["dockerd"] = subprocess.Popen(
            ["dockerd", "--data-root", f"{work}/docker", "--exec-root", drun, "-H", f"unix://{dsock}",
             "--pidfile", f"{work}/dockerd.pid", "--bridge=none", "--iptables=false", "--ip-masq=false",
             "--ip-forward=false"],
            stdout=open(f"{work}/dockerd.log", "w"), stderr=subprocess.STDOUT)
        wait_sock(dsock, procs["dockerd"], "dockerd")

        # podman's service. Its crun needs these ulimits on this machine
        # (../shared/guide/TESTBED.md): given as its defaults, so the docker
        # command line is the same for every engine.
        conf = f"{work}/containers.conf"
        with open(conf, "w") as f:
            f.write('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=32768:32768"]\n')
        penv = dict(os.environ, CONTAINERS_CONF=conf)
        psock = f"{work}/podman.sock"
        procs["podman"] = subprocess.Popen(
            ["podman", "--root", f"{work}/podman", "--runroot", prun, "system", "service", "--time", "0",
             f"unix://{psock}"], env=penv, stdout=open(f"{work}/podman.log", "w"), stderr=subprocess.STDOUT)
        wait_sock(psock, procs["podman"], "podman system service")

        engines = {
            "berth": Engine("berth", bsock, procs["berth"].pid, [brun]),
            "dockerd": Engine("dockerd", dsock, procs["dockerd"].pid, [drun]),
            "podman": Engine("podman", psock, procs["podman"].pid, [prun]),
        }
        for n in ("dockerd", "podman"):
            e = engines[n]
            subprocess.run(e.docker("import", tar, "bb:latest"), env=e.env, check=True, stdout=subprocess.DEVNULL)
        time.sleep(2)
        idle = {n: (e.service_rss(), e.all_rss()) for n, e in engines.items()}

        # docker run --rm, interleaved; RSS sampled while they run.
        peak = {n: [0, 0] for n in ENGINES}
        busy = {"on": None}
        stop = threading.Event()

        def sampler():
            while not stop.is_set():
                n = busy["on"]
                if n:
                    e = engines[n]
                    peak[n][0] = max(peak[n][0], e.service_rss())
                    peak[n][1] = max(peak[n][1], e.all_rss())
                time.sleep(0.02)

        th = threading.Thread(target=sampler, daemon=True)
        th.start()
        runs = {n: [] for n in ENGINES}
        cmd = ["run", "--rm", "--network", "none", "bb", "true"]
        for n, e in engines.items():  # warm-up
            run(e.docker(*cmd), env=e.env)
        for r in range(a.runs):
            order = ENGINES[r % 3:] + ENGINES[:r % 3]
            for n in order:
                busy["on"] = n
                runs[n].append(run(engines[n].docker(*cmd), env=engines[n].env))
                busy["on"] = None
        stop.set()
        th.join()
        after = {n: (e.service_rss(), e.all_rss()) for n, e in engines.items()}

        # 100 containers each, then ps and inspect.
        for n, e in engines.items():
            for i in range(100):
                subprocess.run(e.docker("create", "--network", "none", "--name", f"c{i}", "bb", "true"),
                               env=e.env, check=True, stdout=subprocess.DEVNULL)
        lat = {k: {n: [] for n in ENGINES} for k in ("ps-cli", "inspect-cli", "ps-api", "inspect-api")}
        for n, e in engines.items():  # warm-up
            api_ms(e.sock, "/v1.41/containers/json?all=1")
        for r in range(a.reqs):
            order = ENGINES[r % 3:] + ENGINES[:r % 3]
            for n in order:
                e = engines[n]
                lat["ps-api"][n].append(api_ms(e.sock, "/v1.41/containers/json?all=1"))
                lat["inspect-api"][n].append(api_ms(e.sock, "/v1.41/containers/c50/json"))
                lat["ps-cli"][n].append(run(e.docker("ps", "-a"), env=e.env))
                lat["inspect-cli"][n].append(run(e.docker("inspect", "c50"), env=e.env))
        with100 = {n: (e.service_rss(), e.all_rss()) for n, e in engines.items()}
        hwm = {n: rss_kib(e.pid, "VmHWM") for n, e in engines.items()}

        print(f"\n## docker run --rm --network none bb true ({a.runs} interleaved rounds; ms)\n")
        print("| engine | median | p10 | p90 | vs berth |")
        print("|---|---:|---:|---:|---:|")
        bm = summary(runs["berth"])[0]
        for n in ENGINES:
            m, p10, p90 = summary(runs[n])
            print(f"| {n} | {m:.1f} | {p10:.1f} | {p90:.1f} | {m / bm:.1f}x |")
        print(f"\n## 100 containers: ps -a and inspect c50 ({a.reqs} interleaved rounds; median ms, p90)\n")
        print("| engine | GET containers/json?all=1 | GET containers/c50/json | docker ps -a | docker inspect c50 |")
        print("|---|---:|---:|---:|---:|")
        for n in ENGINES:
            cells = []
            for k in ("ps-api", "inspect-api", "ps-cli", "inspect-cli"):
                m, _, p90 = summary(lat[k][n])
                ratio = "" if n == "berth" else f" ({m / summary(lat[k]['berth'])[0]:.1f}x)"
                cells.append(f"{m:.2f}{ratio}, p90 {p90:.2f}")
            print(f"| {n} | " + " | ".join(cells) + " |")
        mib = lambda k: f"{k / 1024:.1f}"
        print("\n## RSS, MiB: the service alone / with its helpers\n")
        print("| engine | idle | highest during the runs | after the runs | with 100 containers | service peak (VmHWM) |")
        print("|---|---:|---:|---:|---:|---:|")
        for n in ENGINES:
            row = [idle[n], peak[n], after[n], with100[n]]
            print(f"| {n} | " + " | ".join(f"{mib(s)} / {mib(t)}" for s, t in row) + f" | {mib(hwm[n])} |")
        print("\nhelpers: dockerd's containerd and shims; podman's conmon; berth's monitors "
              "(processes of the service's tree or naming its state directory)")
    finally:
        # Remove the containers, stop every peer by its pid, remove state.
        for n, sock in (("berth", f"{brun}/docker.sock"), ("dockerd", f"{work}/dockerd.sock"), ("podman", f"{work}/podman.sock")):
            p = procs.get(n)
            if p and p.poll() is None:
                env = dict(os.environ, DOCKER_HOST=f"unix://{sock}")
                ids = subprocess.run([DOCKER, "ps", "-aq"], env=env, capture_output=True, text=True).stdout.split()
                if ids:
                    subprocess.run([DOCKER, "rm", "-f", *ids], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for d in [work] + run_dirs:
            unmount_under(d)
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
