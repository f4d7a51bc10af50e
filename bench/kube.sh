#!/usr/bin/env bash
# Benchmark `kube play` of a Deployment (3 replicas) behind a Service,
# berth against podman (Debian's podman 4.3 makes 3 pods too; crun,
# conmon), interleaved, per pod. Run as root.
# Usage: bench/kube.sh [--runs N]
exec "$(dirname "$0")/podman-side.sh" kube.py "$@"
