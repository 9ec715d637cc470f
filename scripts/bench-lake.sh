#!/usr/bin/env bash
# Lake benchmarks; the figures in BENCHMARKS.md ("## Lake") come from this script.
#   1. encoder throughput: uploads-shaped rows through `lake::encode`, pinned to one core
#      (taskset -c 0), files of 100 000 rows;
#   2. `lake generate` of IMAGES uploads (default 10 000 000) into a fresh local lake:
#      wall time, CPU time, peak memory, rows and bytes per table;
#   3. compaction of every closed day of that lake, and bytes per event after it.
# Environment: ROWS (encoder rows, default 2 000 000), IMAGES, CUSTOMERS (default 10 000),
# DAYS (default 30), OUT (lake directory, default /tmp/imagelake-bench-lake; deleted first),
# TABLES (comma-separated tables to write, default all; the 100-million-row uploads lake is
# `IMAGES=100000000 TABLES=uploads scripts/bench-lake.sh`).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/imagelake/target}
ROWS=${ROWS:-2000000}
IMAGES=${IMAGES:-10000000}
CUSTOMERS=${CUSTOMERS:-10000}
DAYS=${DAYS:-30}
OUT=${OUT:-/tmp/imagelake-bench-lake}
TABLES=${TABLES:-}

cargo build --release --workspace --example lake_bench >&2
bin=$CARGO_TARGET_DIR/release/examples/lake_bench

echo "== machine: $(nproc) cores, $(lscpu | grep 'Model name' | sed 's/.*: *//'), $(date -u +%FT%TZ)"
echo "== encoder, one core (taskset -c 0)"
taskset -c 0 "$bin" encode "$ROWS"

echo "== generate $IMAGES images, $CUSTOMERS customers, $DAYS days into $OUT (tables: ${TABLES:-all})"
rm -rf "$OUT"
/usr/bin/time -f "wall %e s, user %U s, sys %S s, max RSS %M KiB" "$bin" generate "$IMAGES" "$CUSTOMERS" "$DAYS" "$OUT" $TABLES
echo "== on disk"
du -sh "$OUT/objects/lake"
for t in uploads jobs variants deletions downloads usage; do
    [[ -d $OUT/objects/lake/$t ]] || continue
    printf '  %-10s %s\n' "$t" "$(du -sh "$OUT/objects/lake/$t" | cut -f1)"
done
