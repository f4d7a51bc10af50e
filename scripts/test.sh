#!/usr/bin/env bash
# The whole test suite, as CI runs it, on a fresh Debian 12 / Ubuntu machine.
# Installs what it needs (apt packages, rustfmt and clippy), then runs:
# format check, clippy -D warnings, the build, unit tests, and the
# privileged conformance suite (real containers: run as root), then the
# same privileged tests in a cgroup v2 VM (scripts/vm-v2.sh), then the fuzz
# targets for a bounded time (scripts/fuzz.sh; BERTH_FUZZ_SECS per target).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh: the conformance suite makes real containers; run as root" >&2
    exit 1
fi

missing=()
# g++: libfuzzer-sys builds libFuzzer for the fuzz targets. uidmap:
# newuidmap/newgidmap for the rootless tests. docker-registry: the real
# registry (CNCF distribution) the image tests start on loopback. skopeo,
# podman: the save/load interoperability tests. time: GNU time measures
# the peak RSS of a pull. containerd, docker.io (dockerd 20.10 and its
# client), podman, runc and util-linux's script(1): the callers lane
# (crates/conformance/tests/callers.rs) drives berth-runtime through them,
# side by side with runc. nftables (nft writes berth's table the first
# time) and iproute2 (the network tests build their namespaces with ip):
# the network tests (crates/cli/tests/network.rs). docker.io's client and
# systemd's systemd-socket-activate: the API tests (crates/cli/tests/api.rs).
# buildah: the differential build tests (crates/cli/tests/build.rs).
# docker-compose (1.29): the compose end-to-end test
# (crates/cli/tests/compose.rs). openssl and python3-grpcio: the HTTPS and
# gRPC servers of the probe tests (crates/cli/tests/health.rs; the
# containers run the host's /usr read-only).
for p in busybox-static pkg-config libseccomp-dev procps g++ uidmap docker-registry skopeo podman time runc crun containerd docker.io util-linux nftables iproute2 systemd buildah docker-compose openssl python3-grpcio; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The Python Docker SDK (PyPI's docker), a client of the API tests.
# (A Debian python3 refuses pip outside a venv: then pip is told it may,
# and Debian's own package is the last resort.)
python3 -c 'import docker' 2>/dev/null || python3 -m pip install -q 'docker>=7,<8' \
    || python3 -m pip install -q --break-system-packages 'docker>=7,<8' \
    || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-docker >/dev/null; }
if command -v rustup >/dev/null; then
    installed=$(rustup component list --installed 2>/dev/null || true)
    for c in rustfmt clippy; do
        grep -q "^$c" <<<"$installed" || rustup component add "$c"
    done
fi

echo "==> lock files are current (the fuzz workspace has its own)"
cargo metadata --locked --format-version 1 >/dev/null
cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null || {
    echo "fuzz/Cargo.lock is stale: run 'cargo tree --manifest-path fuzz/Cargo.toml' and commit it" >&2
    exit 1
}
echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo build"
# The conformance suite drives the berth-runtime binary: build it first.
cargo build --workspace --locked
echo "==> cargo test (unit, docs, layering, conformance)"
cargo test --workspace --locked --no-fail-fast
echo "==> cgroup v2 lane: the privileged tests again, in a qemu VM with cgroup v2 alone"
scripts/vm-v2.sh
echo "==> fuzzing (config.json validation, the seccomp compiler)"
scripts/fuzz.sh "${BERTH_FUZZ_SECS:-60}"
echo "==> the README's first command: scripts/setup.sh (release build, an offline image, a container), with stores of its own"
setup_dir=$(mktemp -d /var/tmp/berth-setup.XXXXXX)
setup_run=$(mktemp -d /run/bsetup.XXXXXX)
# Its container gets only a loopback here: CI never makes bridges or
# firewall rules in the machine's own namespace (the network tests make
# theirs in namespaces of their own).
BERTH_DEFAULT_NETWORK=none BERTH_ROOT=$setup_dir BERTH_RUN_ROOT=$setup_run scripts/setup.sh
rm -rf "$setup_dir" "$setup_run"
