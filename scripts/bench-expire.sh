#!/usr/bin/env bash
# Expiry benchmark: N processed variants (default 100000) made seven days ago on Garage,
# one `expire` sweep; prints wall time and object-store requests (see BENCHMARKS.md).
#   scripts/bench-expire.sh [N]
# Uses a running Garage if IMAGELAKE_TEST_S3_ENDPOINT is set, else starts one.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$IMAGELAKE_CACHE/target}
export IMAGELAKE_BENCH_VARIANTS=${1:-${IMAGELAKE_BENCH_VARIANTS:-100000}}
cargo build --release --workspace --test lifecycle_bench
if [[ -z ${IMAGELAKE_TEST_S3_ENDPOINT:-} ]]; then
    run_dir=$(scripts/servers.sh start)
    trap 'scripts/servers.sh stop "$run_dir" || true' EXIT
    # shellcheck disable=SC1091
    source "$run_dir/env.sh"
fi
echo "== expiring $IMAGELAKE_BENCH_VARIANTS variants on Garage ($(nproc) cores)" >&2
cargo test --release --workspace --test lifecycle_bench -- --ignored --nocapture --test-threads 1 2>&1 | grep -E '^(BENCH|  |expire)|panicked|FAILED|test result'
