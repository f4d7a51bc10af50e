#!/usr/bin/env python3
"""berth's bridge networks against podman (netavark, aardvark-dns) and docker
(Debian's docker.io), side by side, in the network namespace that
bench/network.sh makes (never the host's). Prints Markdown tables.

1. `run --rm IMAGE true` with no network, the default bridge, a user
   network and `-p` (a new host port each round), interleaved and shuffled
   round by round; `network create` + `network rm`. Medians, CPU time of
   every process involved (for docker: the CLI plus dockerd, containerd
   and the shims), peak RSS of the command's process (GNU time).
2. A container serving a file (busybox httpd), published with `-p PORT:80`:
   throughput (curl) and latency (one TCP connection per request) from the
   namespace's "host side" through 127.0.0.1:PORT, through the host's
   address (a veth in the namespace (no dummy module here)) and straight to the
   container's address.
3. berth: run time of the 1st, 10th, 50th, 100th detached container on one
   user network.
4. DNS on a user network, berth-dns against aardvark-dns: 1000 busybox
   `nslookup` in a loop inside a container (spawn included), a tight UDP
   client in the container's network namespace (queries/s, p50/p99), and
   the servers' VmRSS/VmHWM.
"""
import argparse, ctypes, json, os, random, resource, shutil, signal, socket, statistics, struct, subprocess, sys
import tempfile, time

IDLE_GAP = float(os.environ.get("BENCH_IDLE_GAP", "0.03"))
HOST_ADDR = "192.168.250.1"  # the "host's address": a veth in the namespace (no dummy module here)
SUBNETS = {"berth": "10.201.0.0/24", "podman": "10.202.0.0/24", "docker": "10.203.0.0/24"}
SCALE_SUBNET = "10.204.0.0/22"
SCALE_SUBNET2 = "10.205.0.0/22"
PORT_BASE = {"berth": 20000, "podman": 21000, "docker": 22000}
SERVE_PORT = {"berth": 18080, "podman": 18081, "docker": 18082}
SERVE = ("mkdir -p /www && dd if=/dev/zero of=/www/big bs=1M count={mb} 2>/dev/null && echo hello >/www/small"
         " && exec httpd -f -p 80 -h /www")
DAEMONS = set()  # our long-lived children (dockerd, berth-dns, ...): not waited for


def log(*a):
    print(*a, file=sys.stderr, flush=True)


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


def children():
    me = str(os.getpid())
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    s = f.read()
                if s[s.rfind(")") + 2:].split()[1] == me:
                    out.append(int(d))
            except OSError:
                pass
    return out


def comm(pid):
    try:
        return open(f"/proc/{pid}/comm").read().strip()
    except OSError:
        return ""


def ppid(pid):
    try:
        s = open(f"/proc/{pid}/stat").read()
        return int(s[s.rfind(")") + 2:].split()[1])
    except OSError:
        return 0


def proc_cpu_ms(pids):
    """utime+stime+cutime+cstime of these processes, ms."""
    tot = 0
    hz = os.sysconf("SC_CLK_TCK")
    for p in pids:
        try:
            s = open(f"/proc/{p}/stat").read()
            f = s[s.rfind(")") + 2:].split()
            tot += sum(int(x) for x in f[11:15])
        except OSError:
            pass
    return tot * 1000 / hz


def run(cmd, env=None, check=True, quiet=True):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    reap()
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def timed(cmd, env=None, daemons=()):
    """Wall ms, CPU ms of the command and every descendant (we are their
    subreaper) plus what the daemons given used meanwhile."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    d0 = proc_cpu_ms(daemons)
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, _ = os.wait4(p.pid, 0)
    wall = (time.perf_counter() - t0) * 1000
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if status != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({status}): {err.strip()}")
    # Descendants that outlived the command (monitors, conmon, shims) end
    # soon after; count their CPU too. One still there after a second is a
    # server (berth-dns, aardvark-dns): not waited for again.
    deadline = time.time() + 1
    while time.time() < deadline:
        reap()
        if not [c for c in children() if c not in DAEMONS]:
            break
        time.sleep(0.005)
    reap()
    DAEMONS.update(children())
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1000
    cpu += proc_cpu_ms(daemons) - d0
    return wall, cpu


def peak_rss(cmd, env=None):
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    reap()
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return int(r.stderr.strip().splitlines()[-1])


def bridge_ports():
    """Interfaces enslaved to a bridge (the host ends of containers' veths)."""
    try:
        return sum(1 for n in os.listdir("/sys/class/net") if os.path.exists(f"/sys/class/net/{n}/brport"))
    except OSError:
        return 0


def settle(baseline, limit=3.0):
    """Waits until the kernel has finished tearing down what the previous
    command left (a removed network namespace's veths go asynchronously, in
    a kernel worker that holds the rtnl lock the next command needs): every
    engine's command starts on a quiet kernel, whoever ran before it."""
    until = time.time() + limit
    while bridge_ports() > baseline and time.time() < until:
        time.sleep(0.002)


def summary(v):
    v = sorted(v)
    q = lambda p: v[min(len(v) - 1, int(p * len(v)))]
    return statistics.median(v), q(0.1), q(0.9)


def find_ip(obj):
    """The first IPv4 address in an inspect document's network settings."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "IPAddress" and isinstance(v, str) and v:
                return v
        for v in obj.values():
            r = find_ip(v)
            if r:
                return r
    elif isinstance(obj, list):
        for v in obj:
            r = find_ip(v)
            if r:
                return r
    return None


def http_get(host, port, path, timeout=5):
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        return data
    finally:
        s.close()


def wait_http(host, port, what):
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if b"hello" in http_get(host, port, "/small", timeout=1):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what}: no HTTP answer on {host}:{port} within 30 s")


DNS_CLIENT = r'''
import socket, struct, sys, time
server, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((server, 53))
q = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
lat = []
for i in range(n):
    qid = i & 0xffff
    msg = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack(">HH", 1, 1)
    t0 = time.perf_counter()
    s.send(msg)
    while True:
        r = s.recv(4096)
        if struct.unpack(">H", r[:2])[0] == qid:
            break
    lat.append(time.perf_counter() - t0)
    flags, _, an = struct.unpack(">HHH", r[2:8])
    if flags & 0xf != 0 or an < 1:
        sys.exit(f"query {name} to {server}: rcode {flags & 0xf}, {an} answers")
print(" ".join(f"{x:.7f}" for x in lat))
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="directory of the release binaries")
    ap.add_argument("--runs", type=int, default=12, help="interleaved rounds of part 1")
    ap.add_argument("--scale", type=int, default=100, help="containers on one berth network (part 3)")
    ap.add_argument("--dns-queries", type=int, default=1000, help="nslookup loop length (part 4)")
    ap.add_argument("--mb", type=int, default=100, help="size of the served file, MB (part 2)")
    ap.add_argument("--tput-rounds", type=int, default=7, help="interleaved download rounds (part 2)")
    ap.add_argument("--only", default="1234", help="parts to run, e.g. 14")
    a = ap.parse_args()
    subreaper()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    if not os.path.exists("/proc/self/ns/net") or run(["ip", "-o", "link"]).count("\n") > 1:
        sys.exit("bench/network.py: run it through bench/network.sh (a fresh network namespace)")
    berth = os.path.join(a.bin, "berth")
    work = tempfile.mkdtemp(prefix="berth-netbench-", dir="/var/tmp")
    rroot = tempfile.mkdtemp(prefix="bnb", dir="/run")
    env = dict(os.environ, BERTH_ROOT=os.path.join(work, "berth"), BERTH_RUN_ROOT=os.path.join(rroot, "berth"),
               PATH=a.bin + ":" + os.environ["PATH"])
    B = [berth]
    P = ["podman", "--root", os.path.join(work, "podman"), "--runroot", os.path.join(rroot, "podman"),
         "--network-config-dir", os.path.join(work, "podman-net"), "--tmpdir", os.path.join(rroot, "podman-tmp"),
         "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
    PRUN = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=32768:32768"]
    sock = os.path.join(rroot, "docker.sock")
    denv = dict(os.environ, DOCKER_CONFIG=os.path.join(work, "docker-cli"))
    D = ["/usr/bin/docker", "-H", "unix://" + sock]
    dockerd = None
    out = []

    def say(s=""):
        out.append(s)
        print(s, flush=True)

    try:
        run(["ip", "link", "add", "benchhost0", "type", "veth", "peer", "name", "benchhost1"])
        run(["ip", "link", "set", "benchhost1", "up"])
        run(["ip", "addr", "add", HOST_ADDR + "/24", "dev", "benchhost0"])
        run(["ip", "link", "set", "benchhost0", "up"])
        # dockerd with its own roots, socket and cgroup parent, in this namespace.
        os.makedirs(os.path.join(work, "docker-cli"))
        with open(os.path.join(work, "daemon.json"), "w") as f:
            f.write("{}\n")
        dlog = open(os.path.join(work, "dockerd.log"), "w")
        dockerd = subprocess.Popen(["dockerd", "--config-file", os.path.join(work, "daemon.json"),
                                    "--data-root", os.path.join(work, "docker"), "--exec-root", os.path.join(rroot, "dexec"),
                                    "-H", "unix://" + sock, "--pidfile", os.path.join(rroot, "docker.pid"),
                                    "--cgroup-parent", "/berth-netbench-docker", "--log-level", "warn"],
                                   stdout=dlog, stderr=dlog)
        DAEMONS.add(dockerd.pid)

        # The same busybox root in every store.
        rootfs = os.path.join(work, "rootfs")
        for d in ["bin", "etc", "www", "tmp"]:
            os.makedirs(os.path.join(rootfs, d))
        shutil.copy("/bin/busybox", os.path.join(rootfs, "bin/busybox"))
        for app in ["sh", "true", "sleep", "httpd", "nslookup", "dd", "mkdir", "echo", "cat"]:
            os.symlink("busybox", os.path.join(rootfs, "bin", app))
        with open(os.path.join(rootfs, "etc/passwd"), "w") as f:
            f.write("root:x:0:0:root:/root:/bin/sh\n")
        tar = os.path.join(work, "bb.tar")
        subprocess.run(["tar", "-C", rootfs, "-cf", tar, "."], check=True)
        run(B + ["import", tar, "bench/bb:latest"], env=env)
        run(P + ["import", tar, "localhost/bench/bb:latest"])
        deadline = time.time() + 60
        while subprocess.run(D + ["version"], env=denv, capture_output=True).returncode != 0:
            if dockerd.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"dockerd did not start: see {work}/dockerd.log")
            time.sleep(0.2)
        run(D + ["import", tar, "bench/bb:latest"], env=denv)
        dpids = lambda: [dockerd.pid] + [c for c in children() if comm(c) == "containerd"] + \
            [int(x) for x in run(["pgrep", "-P", str(dockerd.pid)], check=False).split()]

        # berth's default network takes Docker's 172.17.0.0/16 when free
        # (dockerd's docker0 has it here: berth takes the next /16), never
        # podman's 10.88.0.0/16 first (podman makes podman0 there whatever
        # routes exist). Made now, before the rounds.
        run(B + ["run", "--rm", "bench/bb", "true"], env=env)
        bsub = json.loads(run(B + ["network", "inspect", "bridge"], env=env))
        log(f"berth's default network: {json.dumps(bsub)[:400]}")
        for eng, cmd, e in [("berth", B, env), ("podman", P, None), ("docker", D, denv)]:
            run(cmd + ["network", "create", "--subnet", SUBNETS[eng], "benchnet"], env=e)
        say("# berth networks benchmark (bench/network.sh)\n")
        say(f"berth {run(B + ['--version'], env=env).strip()}; {run(['podman', '--version']).strip()}; "
            f"{run(D + ['--version'], env=denv).strip()}; kernel {os.uname().release}\n")

        if "1" in a.only:
            part1(a, say, B, P, D, PRUN, env, denv, dpids)
        if "2" in a.only:
            part2(a, say, B, P, D, PRUN, env, denv)
        if "3" in a.only:
            part3(a, say, B, env)
        if "4" in a.only:
            part4(a, say, B, P, PRUN, env, work)
    finally:
        log("cleaning up")
        try:
            ids = run(B + ["ps", "-aq"], env=env, check=False).split()
            if ids:
                run(B + ["rm", "-f"] + ids, env=env, check=False)
            for n in run(B + ["network", "ls", "-q"], env=env, check=False).split():
                run(B + ["network", "rm", n], env=env, check=False)
            ids = run(P + ["ps", "-aq"], check=False).split()
            if ids:
                run(P + ["rm", "-f", "-t", "0"] + ids, check=False)
            for n in ["benchnet", "benchdns"]:
                run(P + ["network", "rm", "-f", n], check=False)
            run(P + ["rmi", "-af"], check=False)
            if dockerd and dockerd.poll() is None:
                ids = run(D + ["ps", "-aq"], env=denv, check=False).split()
                if ids:
                    run(D + ["rm", "-f"] + ids, env=denv, check=False)
                run(D + ["network", "prune", "-f"], env=denv, check=False)
                dockerd.terminate()
                try:
                    dockerd.wait(30)
                except subprocess.TimeoutExpired:
                    dockerd.kill()
                    dockerd.wait()
        finally:
            # Whatever we started that is still there (DNS servers, conmon,
            # containerd): by pid, ours only.
            time.sleep(0.5)
            for c in children():
                log(f"stopping leftover process {c} ({comm(c)})")
                try:
                    os.kill(c, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.2)
            reap()
            # Mounts under our directories (this mount namespace is private
            # and dies with us; unmount so that the directories can go).
            mnts = [l.split()[4] for l in open("/proc/self/mountinfo")]
            for m in reversed(mnts):
                if m.startswith(work) or m.startswith(rroot):
                    subprocess.run(["umount", "-l", m], stderr=subprocess.DEVNULL)
            for ctl in os.listdir("/sys/fs/cgroup"):
                p = os.path.join("/sys/fs/cgroup", ctl, "berth-netbench-docker")
                if os.path.isdir(p):
                    for root, dirs, _ in os.walk(p, topdown=False):
                        for d in dirs:
                            try:
                                os.rmdir(os.path.join(root, d))
                            except OSError:
                                pass
                    try:
                        os.rmdir(p)
                    except OSError:
                        pass
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(rroot, ignore_errors=True)


def part1(a, say, B, P, D, PRUN, env, denv, dpids):
    img_b, img_p, img_d = "bench/bb", "localhost/bench/bb", "bench/bb"
    k = {"berth": 0, "podman": 0, "docker": 0}

    def port(eng):
        k[eng] += 1
        return str(PORT_BASE[eng] + k[eng])

    cmds = {
        ("berth", "none"): lambda: (B + ["run", "--rm", "--network", "none", img_b, "true"], env),
        ("berth", "default bridge"): lambda: (B + ["run", "--rm", img_b, "true"], env),
        ("berth", "user network"): lambda: (B + ["run", "--rm", "--network", "benchnet", img_b, "true"], env),
        ("berth", "-p"): lambda: (B + ["run", "--rm", "-p", port("berth") + ":80", img_b, "true"], env),
        ("podman", "none"): lambda: (P + ["run", "--rm", "--network", "none"] + PRUN + [img_p, "true"], None),
        ("podman", "default bridge"): lambda: (P + ["run", "--rm"] + PRUN + [img_p, "true"], None),
        ("podman", "user network"): lambda: (P + ["run", "--rm", "--network", "benchnet"] + PRUN + [img_p, "true"], None),
        ("podman", "-p"): lambda: (P + ["run", "--rm", "-p", port("podman") + ":80"] + PRUN + [img_p, "true"], None),
        ("docker", "none"): lambda: (D + ["run", "--rm", "--network", "none", img_d, "true"], denv),
        ("docker", "default bridge"): lambda: (D + ["run", "--rm", img_d, "true"], denv),
        ("docker", "user network"): lambda: (D + ["run", "--rm", "--network", "benchnet", img_d, "true"], denv),
        ("docker", "-p"): lambda: (D + ["run", "--rm", "-p", port("docker") + ":80", img_d, "true"], denv),
    }
    nets = {"berth": (B, env), "podman": (P, None), "docker": (D, denv)}
    cols = ["none", "default bridge", "user network", "-p", "network create", "network rm"]
    engines = ["berth", "podman", "docker"]
    log("part 1: warm-up and peak RSS")
    rss = {}
    for key, mk in cmds.items():
        timed(*mk())
        rss[key] = statistics.median(peak_rss(*mk()) for _ in range(3))
    res = {}

    def add(key, w, c):
        res.setdefault(key, ([], []))
        res[key][0].append(w)
        res[key][1].append(c)

    base = bridge_ports()
    for i in range(a.runs):
        log(f"part 1: round {i + 1}/{a.runs}")
        order = list(cmds)
        random.shuffle(order)
        for key in order:
            settle(base)
            time.sleep(IDLE_GAP)
            cmd, e = cmds[key]()
            add(key, *timed(cmd, e, dpids() if key[0] == "docker" else ()))
    # `network create` + `rm` in rounds of their own: berth's `network rm`
    # with no container running removes every bridge berth made (the
    # default network's too), which the next networked run makes again.
    # That cost is the "run after network rm" column (berth only).
    nn = 0
    for i in range(a.runs):
        log(f"part 1: network round {i + 1}/{a.runs}")
        order = list(engines)
        random.shuffle(order)
        for eng in order:
            cmd, e = nets[eng]
            dm = dpids() if eng == "docker" else ()
            nn += 1
            name = f"benchtmp{nn}"
            settle(base)
            time.sleep(IDLE_GAP)
            add((eng, "network create"), *timed(cmd + ["network", "create", name], e, dm))
            time.sleep(IDLE_GAP)
            add((eng, "network rm"), *timed(cmd + ["network", "rm", name], e, dm))
            if eng == "berth":
                settle(base)
                time.sleep(IDLE_GAP)
                add(("berth", "run after network rm"), *timed(*cmds[("berth", "default bridge")]()))
    med = {k: statistics.median(v[0]) for k, v in res.items()}
    say(f"## `run --rm IMAGE true` and `network create`/`rm`, {a.runs} interleaved rounds\n")
    say("Wall time, median (p10-p90), ms:\n")
    say("| engine | " + " | ".join(cols) + " |")
    say("|---|" + "---:|" * len(cols))
    for e in engines:
        cells = []
        for c in cols:
            m, lo, hi = summary(res[(e, c)][0])
            cells.append(f"{m:.1f} ({lo:.1f}-{hi:.1f})")
        say(f"| {e} | " + " | ".join(cells) + " |")
    say("\nCPU per command, median, ms (docker: CLI + dockerd + containerd + shims):\n")
    say("| engine | " + " | ".join(cols) + " |")
    say("|---|" + "---:|" * len(cols))
    for e in engines:
        say(f"| {e} | " + " | ".join(f"{statistics.median(res[(e, c)][1]):.1f}" for c in cols) + " |")
    say("\nPeak RSS of the command's own process (GNU time, median of 3), MiB:\n")
    say("| engine | " + " | ".join(cols[:4]) + " |")
    say("|---|" + "---:|" * 4)
    for e in engines:
        say(f"| {e} | " + " | ".join(f"{rss[(e, c)] / 1024:.1f}" for c in cols[:4]) + " |")
    say("\nHow many times slower than berth (wall medians):\n")
    say("| engine | " + " | ".join(cols) + " |")
    say("|---|" + "---:|" * len(cols))
    for e in ["podman", "docker"]:
        say(f"| {e} | " + " | ".join(f"{med[(e, c)] / med[('berth', c)]:.1f}x" for c in cols) + " |")
    nb = med[("berth", "none")]
    say(f"\nberth's networking cost over `--network none` (medians): default bridge "
        f"+{med[('berth', 'default bridge')] - nb:.1f} ms, user network +{med[('berth', 'user network')] - nb:.1f} ms, "
        f"-p +{med[('berth', '-p')] - nb:.1f} ms (goal: at most +3 ms); default bridge right after a `network rm` "
        f"(its bridge made again): {med[('berth', 'run after network rm')]:.1f} ms.")
    rssd = sum(int(l.split()[1]) for p in dpids() for l in open(f"/proc/{p}/status") if l.startswith("VmRSS:"))
    say(f"dockerd + containerd resident after part 1: {rssd / 1024:.1f} MiB.\n")


def part2(a, say, B, P, D, PRUN, env, denv):
    serve = SERVE.format(mb=a.mb)
    servers = {}
    log("part 2: servers")
    for eng, cmd, e, img, extra in [("berth", B, env, "bench/bb", []), ("podman", P, None, "localhost/bench/bb", PRUN),
                                    ("docker", D, denv, "bench/bb", [])]:
        cid = run(cmd + ["run", "-d", "--name", "benchweb", "-p", f"{SERVE_PORT[eng]}:80"] + extra
                  + [img, "sh", "-c", serve], env=e).strip().splitlines()[-1]
        ip = find_ip(json.loads(run(cmd + ["inspect", cid], env=e)))
        if not ip:
            raise RuntimeError(f"{eng}: no IPv4 address in `inspect {cid}`")
        servers[eng] = ip
    paths = {}
    for eng, ip in servers.items():
        try:
            wait_http(ip, 80, f"{eng} server")
        except RuntimeError:
            cmd, e = {"berth": (B, env), "podman": (P, None), "docker": (D, denv)}[eng]
            log(run(["ip", "-o", "-4", "addr"]) + run(["ip", "route"]) + run(cmd + ["logs", "benchweb"], env=e, check=False)
                + run(cmd + ["ps", "-a"], env=e, check=False))
            raise
        paths[(eng, "127.0.0.1:PORT")] = ("127.0.0.1", SERVE_PORT[eng])
        paths[(eng, "host address:PORT")] = (HOST_ADDR, SERVE_PORT[eng])
        paths[(eng, "container address:80")] = (ip, 80)
    for key, (h, p) in paths.items():
        try:
            wait_http(h, p, f"{key[0]} through {key[1]}")
        except RuntimeError as ex:
            say(f"**{ex}**")
            paths[key] = None
    tput = {k: [] for k, v in paths.items() if v}
    rounds = a.tput_rounds
    for i in range(rounds):
        log(f"part 2: throughput round {i + 1}/{rounds}")
        order = list(tput)
        random.shuffle(order)
        for key in order:
            h, p = paths[key]
            r = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{speed_download} %{size_download}",
                     f"http://{h}:{p}/big"])
            speed, size = r.split()
            if int(float(size)) != a.mb * 1024 * 1024:
                raise RuntimeError(f"{key}: got {size} bytes, expected {a.mb} MiB")
            tput[key].append(float(speed) / 1e6)
    lat = {k: [] for k in tput}
    for i in range(4):
        log(f"part 2: latency round {i + 1}/4")
        order = list(lat)
        random.shuffle(order)
        for key in order:
            h, p = paths[key]
            for _ in range(100):
                t0 = time.perf_counter()
                http_get(h, p, "/small")
                lat[key].append((time.perf_counter() - t0) * 1e6)
    say(f"## Published port: {a.mb} MiB file over HTTP (busybox httpd, `-p PORT:80`), {rounds} interleaved rounds\n")
    say("| engine | path | MB/s median (min-max) | vs direct | request latency, new connection each, p50 / p99 us |")
    say("|---|---|---:|---:|---:|")
    for eng in servers:
        direct = statistics.median(tput[(eng, "container address:80")])
        for pth in ["127.0.0.1:PORT", "host address:PORT", "container address:80"]:
            key = (eng, pth)
            if key not in tput:
                say(f"| {eng} | {pth} | failed | | |")
                continue
            v = sorted(tput[key])
            l = sorted(lat[key])
            say(f"| {eng} | {pth} | {statistics.median(v):.0f} ({v[0]:.0f}-{v[-1]:.0f}) | "
                f"{statistics.median(v) / direct:.3f} | {statistics.median(l):.0f} / {l[int(0.99 * len(l))]:.0f} |")
    procs = {comm(int(d)) for d in os.listdir("/proc") if d.isdigit()}
    say(f"\nUserland proxies running: {', '.join(sorted(p for p in procs if 'proxy' in p)) or 'none'} "
        f"(docker-proxy serves docker's 127.0.0.1). MB = 10^6 bytes.\n")
    for eng, cmd, e in [("berth", B, env), ("podman", P, None), ("docker", D, denv)]:
        run(cmd + ["rm", "-f", "benchweb"], env=e)


def part3(a, say, B, env):
    log("part 3: containers on one network")
    nets = {"DNS": "benchscale", "--disable-dns": "benchscale2", "none": "none"}
    run(B + ["network", "create", "--subnet", SCALE_SUBNET, "benchscale"], env=env)
    run(B + ["network", "create", "--disable-dns", "--subnet", SCALE_SUBNET2, "benchscale2"], env=env)
    times = {k: [] for k in nets}
    for i in range(a.scale):
        for k, net in nets.items():
            time.sleep(IDLE_GAP)
            t0 = time.perf_counter()
            run(B + ["run", "-d", "--network", net, "bench/bb", "sleep", "100000"], env=env)
            times[k].append((time.perf_counter() - t0) * 1000)
    reap()
    ids = run(B + ["ps", "-q"], env=env).split()
    t0 = time.perf_counter()
    run(B + ["rm", "-f"] + ids, env=env)
    rm_ms = (time.perf_counter() - t0) * 1000
    for net in ["benchscale", "benchscale2"]:
        run(B + ["network", "rm", net], env=env)
    say(f"## berth: `run -d --network NET IMAGE sleep`, {a.scale} containers on each of two networks"
        " (one with DNS, one `--disable-dns`) and with `--network none`, started in turn\n")
    say("| container | with DNS, ms | --disable-dns, ms | --network none, ms |")
    say("|---|---:|---:|---:|")
    rows = [(f"{n}{ {1: 'st'}.get(n, 'th')}", lambda v, n=n: v[n - 1]) for n in [1, 10, 50, 100] if n <= a.scale]
    rows.append(("median of 2nd-10th", lambda v: statistics.median(v[1:10])))
    if a.scale >= 20:
        rows.append(("median of last 10", lambda v: statistics.median(v[-10:])))
    for label, f in rows:
        say(f"| {label} | {f(times['DNS']):.1f} | {f(times['--disable-dns']):.1f} | {f(times['none']):.1f} |")
    say(f"\n`rm -f` of all {len(ids)}: {rm_ms:.0f} ms ({rm_ms / max(len(ids), 1):.1f} ms each).\n")


def part4(a, say, B, P, PRUN, env, work):
    log("part 4: DNS")
    clientpy = os.path.join(work, "dnsclient.py")
    with open(clientpy, "w") as f:
        f.write(DNS_CLIENT)
    res = {}
    for eng, cmd, e, img, extra, dom in [("berth", B, env, "bench/bb", [], "dns.berth"),
                                         ("podman", P, None, "localhost/bench/bb", PRUN, "dns.podman")]:
        run(cmd + ["network", "create", "benchdns"], env=e)
        run(cmd + ["run", "-d", "--network", "benchdns", "--name", "peer"] + extra + [img, "sleep", "100000"], env=e)
        run(cmd + ["run", "-d", "--network", "benchdns", "--name", "client"] + extra + [img, "sleep", "100000"], env=e)
        pid = run(cmd + ["inspect", "--format", "{{.State.Pid}}", "client"], env=e).strip()
        resolv = open(f"/proc/{pid}/root/etc/resolv.conf").read()
        server = [l.split()[1] for l in resolv.splitlines() if l.startswith("nameserver")][0]
        loop = (f"i=0; while [ $i -lt {a.dns_queries} ]; do nslookup peer >/dev/null || exit 1; i=$((i+1)); done")
        base = statistics.median(timed(cmd + ["exec", "client", "true"], e)[0] for _ in range(3))
        w = statistics.median(timed(cmd + ["exec", "client", "sh", "-c", loop], e)[0] for _ in range(2)) - base
        n = 5000
        lat = None
        for name in ["peer", "peer." + dom]:
            r = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "python3", clientpy, server, name, str(n)],
                               capture_output=True, text=True)
            if r.returncode == 0:
                lat = sorted(float(x) * 1e6 for x in r.stdout.split())
                qname = name
                break
            log(f"{eng}: {r.stderr.strip()}")
        # The server's memory, after all that.
        sname = "berth-dns" if eng == "berth" else "aardvark-dns"
        mem = []
        for d in os.listdir("/proc"):
            if d.isdigit() and comm(int(d)) == sname and ppid(int(d)) == os.getpid():
                st = {l.split(":")[0]: int(l.split()[1]) for l in open(f"/proc/{d}/status") if l.startswith("Vm")}
                mem.append((st.get("VmRSS", 0), st.get("VmHWM", 0)))
                log(f"{sname}: {open(f'/proc/{d}/cmdline').read().replace(chr(0), ' ')}")
        res[eng] = (sname, server, w, lat, qname if lat else None, mem)
        run(cmd + ["rm", "-f", "peer", "client"], env=e)
        run(cmd + ["network", "rm", "benchdns"], env=e)
    say(f"## DNS on a user network: berth-dns vs aardvark-dns\n")
    say(f"| server | {a.dns_queries} busybox `nslookup peer` in a container (spawn included), s | per lookup ms |"
        " tight UDP client (5000 sequential A queries): queries/s | p50 / p99 us | VmRSS / VmHWM |")
    say("|---|---:|---:|---:|---:|---:|")
    for eng, (sname, server, w, lat, qname, mem) in res.items():
        if lat:
            q = f"{len(lat) / (sum(lat) / 1e6):.0f} | {lat[len(lat) // 2]:.0f} / {lat[int(0.99 * len(lat))]:.0f}"
        else:
            q = "failed | "
        m = ", ".join(f"{r / 1024:.1f} / {h / 1024:.1f} MiB" for r, h in mem) or "not running"
        say(f"| {sname} ({server}) | {w / 1000:.2f} | {w / a.dns_queries:.2f} | {q} | {m} |")
    say("\n(the tight client runs in the client container's network namespace, via nsenter; name queried: "
        + ", ".join(f"{e}: `{r[4]}`" for e, r in res.items()) + ")\n")


if __name__ == "__main__":
    main()
