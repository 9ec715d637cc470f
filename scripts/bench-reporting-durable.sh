#!/usr/bin/env bash
# Today's reports on a day of facts written the way the processor writes them: every
# processed image's upload, job and variant facts through `LakeWriter::write_durable`
# (lakegen/examples/durable_day.rs), from CONCURRENCY tasks, so the day is the processor's
# small files. Then every report over today through the service (reporting/tests/bench.rs,
# cold start included), before and after the lifecycle's hourly compaction of the current
# day's writer files, and today's summary right after a new file (the refresh that takes it
# in). The target is under 1 s after the compaction.
#   scripts/bench-reporting-durable.sh [IMAGES] [CONCURRENCY] [RUNS] [PARTS]
# Defaults: 100000 images, 2 tasks (the processor's default: one job per CPU, 2 here), 5 runs,
# 1 part. With PARTS > 1 the day is written a slice at a time (as PARTS hours would be) with
# the compaction after each slice, as the lifecycle runs it every hour; "before" is then the
# moment before the last slice's compaction: the earlier slices compacted, the last one in
# small files. IMAGELAKE_BENCH_BEFORE_RUNS (default RUNS) sets the runs before it.
# The lake is written afresh under $IMAGELAKE_CACHE/bench-reporting/durable-IMAGES.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
images=${1:-100000}
concurrency=${2:-2}
runs=${3:-5}
parts=${4:-1}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$IMAGELAKE_CACHE/target}
cargo build --release --quiet --workspace --example durable_day --tests
bin=$CARGO_TARGET_DIR/release/examples/durable_day
data=$IMAGELAKE_CACHE/bench-reporting/durable-$images
rm -rf "$data"
mkdir -p "$data"
range="$(date -u +%F)T00:00:00Z,$(date -u -d tomorrow +%F)T00:00:00Z"
bench() {
    IMAGELAKE_BENCH_DATA_DIR=$data IMAGELAKE_BENCH_RUNS=$2 IMAGELAKE_BENCH_RANGE=$range IMAGELAKE_BENCH_RANGE_LABEL=today \
        IMAGELAKE_BENCH_RAW_ONLY=1 IMAGELAKE_BENCH_NEW_FILE=1 cargo test --release --quiet --workspace --test bench -- --ignored --nocapture \
        2>"$data/service-$1.err" | grep '^{' | grep -v '"range": "all"' | sed "s/^/$1 /"
}
for ((part = 0; part < parts; part++)); do
    log "writing $images images' facts through write_durable ($concurrency tasks), part $((part + 1)) of $parts"
    "$bin" write "$data" "$images" "$concurrency" "$part" "$parts"
    if ((part == parts - 1)); then
        bench before "${IMAGELAKE_BENCH_BEFORE_RUNS:-$runs}"
    fi
    log "the hourly compaction of today's writer files"
    "$bin" compact "$data"
done
bench after "$runs"
