#!/usr/bin/env bash
# Reporting benchmark: generates a compacted synthetic lake (one Parquet file per table and
# day), then measures the median latency of every report through the reporting router
# (DuckDB in-process, views, JSON encoding) next to the same SQL run by Python's duckdb on
# the same files, in the same run.
#   scripts/bench-reporting.sh [UPLOADS] [DAYS] [CUSTOMERS] [RUNS]
# Defaults: 1000000 uploads (about 7.7 M lake rows), 90 days, 50 customers, 5 runs.
# The lake is kept under $IMAGELAKE_CACHE/bench-reporting/UPLOADS-DAYS-CUSTOMERS for re-runs.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
uploads=${1:-1000000}
days=${2:-90}
customers=${3:-50}
runs=${4:-5}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$IMAGELAKE_CACHE/target}
python=${IMAGELAKE_TEST_PYTHON:-$IMAGELAKE_PYTHON}
data=$IMAGELAKE_CACHE/bench-reporting/$uploads-$days-$customers
lake=$data/store/objects/lake
if [[ ! -f $data/.complete ]]; then
    rm -rf "$data"
    mkdir -p "$lake"
    log "generating the lake: $uploads uploads, $days days, $customers customers"
    "$python" tests/peers/reports_lake.py "$lake" --uploads "$uploads" --days "$days" --customers "$customers" \
        | tee "$data/generated.json" >&2
    touch "$data/.complete"
fi
files=$(find "$lake" -name '*.parquet' | wc -l)
size=$(du -sh "$lake" | cut -f1)
log "lake: $(cat "$data/generated.json"), $files files, $size"
cargo build --release --quiet --workspace --tests
log "service (router in-process, JSON answers), $runs runs per report"
IMAGELAKE_BENCH_DATA_DIR=$data IMAGELAKE_BENCH_RUNS=$runs \
    cargo test --release --quiet --workspace --test bench -- --ignored --nocapture 2>/dev/null \
    | grep '^{' | sed 's/^/service /'
log "bare query (Python duckdb $("$python" -c 'import duckdb; print(duckdb.__version__)'), same views and SQL), $runs runs per report"
"$python" tests/peers/reports_bench.py "$lake" --runs "$runs" 2>/dev/null | sed 's/^/bare /'
