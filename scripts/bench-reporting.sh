#!/usr/bin/env bash
# Reporting benchmark: `imagelake lake generate` writes a synthetic lake and `imagelake lake
# compact` compacts it, then the median latency of every report is measured through the
# reporting router (DuckDB in-process, views and rollups, JSON encoding) next to the same
# SQL run by Python's duckdb on the same files with the rollups built at the same
# watermark, in the same run. Both sides print how long their rollups took to build.
#   scripts/bench-reporting.sh [UPLOADS] [DAYS] [CUSTOMERS] [RUNS]
# Defaults: 1000000 uploads (about 8.7 M lake rows), 90 days, 200 customers, 5 runs; the
# 100-million-row lake is `scripts/bench-reporting.sh 11500000 90 200 3`.
# The lake is kept under $IMAGELAKE_CACHE/bench-reporting/gen-UPLOADS-CUSTOMERS-DAYS.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
uploads=${1:-1000000}
days=${2:-90}
customers=${3:-200}
runs=${4:-5}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$IMAGELAKE_CACHE/target}
python=${IMAGELAKE_TEST_PYTHON:-$IMAGELAKE_PYTHON}
data=$IMAGELAKE_CACHE/bench-reporting/gen-$uploads-$customers-$days
lake=$data/store/objects/lake
cargo build --release --quiet --workspace --bins --tests
if [[ ! -f $data/.complete ]]; then
    rm -rf "$data"
    mkdir -p "$data"
    log "generating the lake: $uploads uploads, $days days, $customers customers"
    (cd "$data" && export IMAGELAKE_DATA_DIR=$data && "$CARGO_TARGET_DIR/release/imagelake" lake generate \
        --images "$uploads" --customers "$customers" --days "$days" &&
        "$CARGO_TARGET_DIR/release/imagelake" lake compact) | tee "$data/generated.txt" >&2
    touch "$data/.complete"
fi
files=$(find "$lake" -name '*.parquet' | wc -l)
size=$(du -sh "$lake" | cut -f1)
log "lake: $(grep -c rows "$data/generated.txt") tables, $(awk '/ rows$/ {n += $2} END {print n}' "$data/generated.txt") rows, $files files, $size"
log "service (router in-process, JSON answers), $runs runs per report"
IMAGELAKE_BENCH_DATA_DIR=$data IMAGELAKE_BENCH_RUNS=$runs \
    cargo test --release --quiet --workspace --test bench -- --ignored --nocapture 2>"$data/service.err" \
    | tee "$data/service.out" | grep '^{' | sed 's/^/service /' || die "the service side failed: see $data/service.out and $data/service.err"
watermark=$(grep -o '"watermark": "[^"]*"' "$data/service.out" | cut -d'"' -f4)
log "bare query (Python duckdb $("$python" -c 'import duckdb; print(duckdb.__version__)'), same views, rollups at $watermark and SQL), $runs runs per report"
"$python" tests/peers/reports_bench.py "$lake" --runs "$runs" --watermark "$watermark" 2>/dev/null | sed 's/^/bare /'
