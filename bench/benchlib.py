"""What the berth-vs-peer benchmark scripts share: a timed command and a
summary of timings."""
import statistics, subprocess, sys, time


def run(cmd, env=None):
    """Runs `cmd` (its output dropped); its wall time in ms. Exits on failure."""
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {r.stderr}")
    return (time.perf_counter() - t0) * 1000


def summary(v):
    """Median, 10th and 90th percentile of `v`."""
    v = sorted(v)
    q = lambda p: v[min(len(v) - 1, int(p * len(v)))]
    return statistics.median(v), q(0.1), q(0.9)
