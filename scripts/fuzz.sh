#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ (coverage instrumentation and
# AddressSanitizer, on the stable toolchain with RUSTC_BOOTSTRAP=1) and runs
# each for a bounded time. A crash fails the run and leaves its input in
# fuzz/artifacts/<target>/; turn it into a regression test.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
set -euo pipefail
secs=${1:-60}
cd "$(dirname "$0")/../fuzz"
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions \
-Coverflow-checks -Zsanitizer=address"
echo "==> building the fuzz targets"
cargo build --locked --release --bins
bin=target/x86_64-unknown-linux-gnu/release
for t in config seccomp tar manifest unpack spec monitor dns dockerfile api kube; do
    echo "==> fuzzing $t for ${secs}s"
    mkdir -p "artifacts/$t" "target/corpus/$t"
    # New inputs go to target/corpus (kept between local runs); the seeds in
    # corpus/ are read only.
    "$bin/$t" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="artifacts/$t/" \
        "target/corpus/$t" "corpus/$t"
done
echo "==> fuzzing found nothing"
