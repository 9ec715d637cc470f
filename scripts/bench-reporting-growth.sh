#!/usr/bin/env bash
# Reporting cost growth: the same one-day report (yesterday, a whole closed day) on a lake
# of 2 days and on a lake of 366 days with the same uploads per day, both compacted and
# aggregated, through the service (reporting/tests/bench.rs). The target is at most 1.5x.
#   scripts/bench-reporting-growth.sh [UPLOADS_PER_DAY] [CUSTOMERS] [RUNS]
# Defaults: 10000 uploads a day (about 87 000 lake rows a day), 200 customers, 5 runs.
# The lakes are kept under $IMAGELAKE_CACHE/bench-reporting/growth-*.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
per_day=${1:-10000}
customers=${2:-200}
runs=${3:-5}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$IMAGELAKE_CACHE/target}
cargo build --release --quiet --workspace --bins --tests
bin=$CARGO_TARGET_DIR/release/imagelake
range="$(date -u -d yesterday +%F)T00:00:00Z,$(date -u +%F)T00:00:00Z"
for days in 2 366; do
    data=$IMAGELAKE_CACHE/bench-reporting/growth-$per_day-$customers-$days-$(date -u +%F)
    if [[ ! -f $data/.complete ]]; then
        rm -rf "$data"
        mkdir -p "$data"
        log "generating $days days of $per_day uploads"
        (cd "$data" && export IMAGELAKE_DATA_DIR=$data && "$bin" lake generate --images $((per_day * days)) \
            --customers "$customers" --days "$days" && "$bin" lake compact && "$bin" lake aggregate) >"$data/generated.txt"
        touch "$data/.complete"
    fi
    # Days whose aggregates an upgrade of the SQL made stale are made again (the others are
    # current and skipped), so that the report reads aggregates, as in production.
    (cd "$data" && IMAGELAKE_DATA_DIR=$data "$bin" lake aggregate) >"$data/aggregated.txt"
    log "$days-day lake: $(awk '/ rows$/ {n += $2} END {print n}' "$data/generated.txt") rows; one-day report $range"
    IMAGELAKE_BENCH_DATA_DIR=$data IMAGELAKE_BENCH_RUNS=$runs IMAGELAKE_BENCH_RANGE=$range IMAGELAKE_BENCH_RANGE_LABEL=one-day \
        cargo test --release --quiet --workspace --test bench -- --ignored --nocapture 2>"$data/service.err" |
        grep '^{' | grep -v '"range": "all"' | sed "s/^/$days-days /"
done
