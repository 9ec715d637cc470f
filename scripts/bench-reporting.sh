#!/usr/bin/env bash
# Reporting benchmark: `imagelake lake generate` writes a synthetic lake, `imagelake lake
# compact` compacts it and `imagelake lake aggregate` makes the daily aggregates (timed:
# the full build). Then, in the same run: the service's cold start (open, first request),
# the median and p95 of every report through the reporting router (DuckDB in-process, the
# aggregates and raw facts, JSON encoding), over the whole lake and over a range whose
# edges cut hours; the same SQL in Python's duckdb over the same objects; and the
# incremental cost: one day's aggregates removed and made again.
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
if [[ ! -f $data/.aggregated ]]; then
    log "aggregating every closed day (the full build)"
    start=$(date +%s.%N)
    (cd "$data" && IMAGELAKE_DATA_DIR=$data "$CARGO_TARGET_DIR/release/imagelake" lake aggregate) | tee "$data/aggregated.txt" >&2
    echo "full build: $(echo "$(date +%s.%N) - $start" | bc) s" | tee -a "$data/aggregated.txt" >&2
    touch "$data/.aggregated"
fi
files=$(find "$lake" -name '*.parquet' | wc -l)
size=$(du -sh "$lake" | cut -f1)
log "lake: $(grep -c rows "$data/generated.txt") tables, $(awk '/ rows$/ {n += $2} END {print n}' "$data/generated.txt") rows, $files files, $size"
log "aggregates: $(cat "$data/aggregated.txt" | tr '\n' ' ')"
# A range whose edges cut hours: 09:17 to 16:43, 60 days, ending yesterday.
to_day=$(date -u -d yesterday +%F)
from_day=$(date -u -d "$to_day - 60 days" +%F)
range="${from_day}T09:17:00Z,${to_day}T16:43:00Z"
log "service (router in-process, JSON answers), cold start then $runs runs per report; edges: $range"
IMAGELAKE_BENCH_DATA_DIR=$data IMAGELAKE_BENCH_RUNS=$runs IMAGELAKE_BENCH_RANGE=$range \
    cargo test --release --quiet --workspace --test bench -- --ignored --nocapture 2>"$data/service.err" \
    | tee "$data/service.out" | grep '^{' | sed 's/^/service /' || die "the service side failed: see $data/service.out and $data/service.err"
log "bare query (Python duckdb $("$python" -c 'import duckdb; print(duckdb.__version__)'), the same objects and SQL), $runs runs per report"
"$python" tests/peers/reports_bench.py "$lake" --runs "$runs" --label all 2>/dev/null | sed 's/^/bare /'
"$python" tests/peers/reports_bench.py "$lake" --runs "$runs" --label edges --from "${range%,*}" --to "${range#*,}" 2>/dev/null |
    grep report | sed 's/^/bare /'
# Incremental cost: one day's facts change (its aggregates go, as when a late file lands);
# the next aggregation makes that day alone.
day=$(date -u -d "$to_day - 30 days" +%F)
find "$lake" -path "*/agg_*/dt=$day/*" -delete
log "incremental: $day's aggregates removed; aggregating again"
start=$(date +%s.%N)
(cd "$data" && IMAGELAKE_DATA_DIR=$data "$CARGO_TARGET_DIR/release/imagelake" lake aggregate) | sed 's/^/incremental /'
echo "incremental: $(echo "$(date +%s.%N) - $start" | bc) s (full build: $(grep -o 'full build: .*' "$data/aggregated.txt"))"
