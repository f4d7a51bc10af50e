#!/usr/bin/env bash
# `berth build` vs `buildah bud --layers` and `docker build` (a dockerd of
# its own, BuildKit) of the same two-stage Dockerfile (3 RUN steps making
# 2000 files and a 20 MB file, COPY --from, COPY of 1000 context files):
# cold, rebuilt with nothing changed, and with one source file changed;
# interleaved round by round (bench/build.py).
# --steps N [--steps-only]: also the cost of one RUN step against `berth run`.
# Run as root. Usage: bench/build.sh [--runs N] [--debug] [--docker-classic] [--no-docker] [--steps N [--steps-only]]
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/build.sh: run as root" >&2; exit 1; }
command -v buildah >/dev/null || { echo "bench/build.sh: buildah is missing (apt-get install buildah)" >&2; exit 1; }
[ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || { echo "bench/build.sh: docker is missing (apt-get install docker.io; or pass --no-docker)" >&2; exit 1; }
profile=release
args=()
for a in "$@"; do
    case "$a" in
        --debug) profile=debug ;;
        *) args+=("$a") ;;
    esac
done
if [ "$profile" = release ]; then
    cargo build --release --locked -p berth-cli -p berth-monitor -p berth-runtime-cli -p berth-init
else
    cargo build --locked -p berth-cli -p berth-monitor -p berth-runtime-cli -p berth-init
fi
exec python3 bench/build.py --bin "${CARGO_TARGET_DIR:-$PWD/target}/x86_64-unknown-linux-gnu/$profile" "${args[@]}"
