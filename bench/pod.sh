#!/usr/bin/env bash
# Benchmark a pod and two containers started in it, berth against podman
# (Debian's podman, crun and conmon), interleaved. Run as root.
# Usage: bench/pod.sh [--runs N] [--run-tmpfs]
exec "$(dirname "$0")/podman-side.sh" pod.py "$@"
