#!/usr/bin/env bash
# Metadata database benchmark (BENCHMARKS.md, "Metadata database"), on SQLite (embedded)
# and PostgreSQL (a throwaway cluster from scripts/servers.sh), in one run:
#   1. the listing: `GET /v1/images?limit=20` of a customer with IMAGES images, through
#      `imagelake ingest` (wrk, one connection, WRK_DURATION each), on the first page and
#      on the page after the middle image; and `list_images` alone (meta_bench list);
#   2. the upload path: `create_image` + `job_sent` (meta_bench commit), then the
#      previous version's three fsynced object writes (the anchor), then both alternating;
#   3. the anchor of 1: the previous version's listing (object-store keys, then the
#      record objects) on a local store holding the same IMAGES (meta_bench oldlist).
#   scripts/bench-metadata.sh [IMAGES] [OTHER_IMAGES]
# IMAGES defaults to 1000000; OTHER_IMAGES (default: IMAGES) belong to 99 other
# customers, so the tables hold both. Environment: WRK_DURATION (15s), COMMITS (2000),
# LIST_RUNS (2000), OLD_RUNS (50), OLD_MAX_SECONDS (600).
# Disk: about 1.5 KB per image in each database; the old store's 2 x IMAGES files (4 KiB
# each for the records) are kept in $IMAGELAKE_CACHE/bench-metadata/old-IMAGES for the
# next run; everything else is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
images=${1:-1000000}
other=${2:-$images}
duration=${WRK_DURATION:-15s}
commits=${COMMITS:-2000}
list_runs=${LIST_RUNS:-2000}
old_runs=${OLD_RUNS:-50}
old_max=${OLD_MAX_SECONDS:-600}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$IMAGELAKE_CACHE/target}
apt_ensure wrk
command -v curl >/dev/null || die "curl is needed"
cargo build --release --quiet --workspace --bins --examples
bin=$CARGO_TARGET_DIR/release/imagelake
mb=$CARGO_TARGET_DIR/release/examples/meta_bench
base=$IMAGELAKE_CACHE/bench-metadata
mkdir -p "$base"
work=$(mktemp -d "$base/run.XXXXXX")
results=$work/results.txt
pg_run=''
pid=''
cleanup() {
    if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    if [[ -n $pg_run ]]; then scripts/servers.sh stop "$pg_run" || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
: >"$results"
log "$(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1); $images images for 'bench', $other for 99 others"

pg_run=$(IMAGELAKE_ONLY_POSTGRES=1 scripts/servers.sh start)
# shellcheck source=/dev/null
source "$pg_run/env.sh"
pg_url=$IMAGELAKE_TEST_DATABASE_URL
psql_bin="$(pg_bindir)/psql"

# to_ms VALUE: wrk's "1.23ms" / "456.00us" / "1.20s" in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
        else { sub(/s$/, "", v); printf "%.3f", v * 1000 } }'
}

# http BACKEND URL: `imagelake ingest` on the database URL; wrk on two pages.
http() {
    local backend=$1 url=$2 port key cfg q page out p50 p99 rps
    port=$(free_port 1)
    key=ilk_bench_$(random_hex 16)
    cfg=$work/$backend.toml
    cat >"$cfg" <<TOML
listen = "127.0.0.1:$port"
data_dir = "$work/$backend-data"
# One key stands for every user of the benchmark: no per-key rate limit.
[http]
rate_limit = 0
[database]
url = "$url"
[[keys]]
sha256 = "$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)"
customer = "bench"
role = "uploader"
TOML
    IMAGELAKE_LOG=warn "$bin" ingest --config "$cfg" >"$work/$backend-ingest.out" 2>&1 &
    pid=$!
    wait_for_port 127.0.0.1 "$port" 120 || { cat "$work/$backend-ingest.out" >&2; die "ingest on $backend did not start"; }
    for page in first middle; do
        q="limit=20"
        [[ $page == first ]] || q+="&cursor=$cursor_middle"
        # The page is what the API answers: 20 records with their variants, a next cursor.
        curl -fsS -H "Authorization: Bearer $key" "http://127.0.0.1:$port/v1/images?$q" |
            jq -e '(.items | length) == 20 and (.items[0].variants | length) == 4 and (.next_cursor | length) == 32' >/dev/null ||
            die "$backend: GET /v1/images?$q is not a full page"
        out=$work/wrk-$backend-$page.out
        wrk -t1 -c1 -d"$duration" --latency -H "Authorization: Bearer $key" "http://127.0.0.1:$port/v1/images?$q" >"$out"
        ! grep -q 'Non-2xx\|Socket errors' "$out" || { cat "$out" >&2; die "$backend: errors under wrk"; }
        p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
        p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
        rps=$(awk '/^Requests\/sec/ {print $2}' "$out")
        echo "RESULT http backend=$backend page=$page images=$images n=$(awk '/requests in/ {print $1}' "$out") p50_ms=$p50 p99_ms=$p99 rps=$rps load=$(cut -d' ' -f1 /proc/loadavg)" |
            tee -a "$results"
    done
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=''
}

# plan BACKEND: how the database answers the middle page's query (the statement of
# core/src/meta/sql/images.rs, LIST_AFTER), and what executing it costs in the database
# itself: SQLite's C library through Python's sqlite3 (median of 500, rows fetched), and
# PostgreSQL's own EXPLAIN ANALYZE execution time (median of 50), without sqlx.
plan() {
    local sql="SELECT i.id, i.customer, i.status, i.content_type, i.format, i.bytes, i.width, i.height, i.sha256,
 i.uploaded_at, i.processed_at, i.error_code, i.error_message, i.exif, i.requested_variants, i.attempts,
 i.callback_url, i.deleted_at, v.name AS v_name, v.format AS v_format, v.width AS v_width, v.height AS v_height,
 v.bytes AS v_bytes, v.created_at AS v_created_at, v.expires_at AS v_expires_at, v.state AS v_state
 FROM (SELECT * FROM images WHERE customer = 'bench' AND id < '$middle_id' AND deleted_at IS NULL
 ORDER BY id DESC LIMIT 21) i LEFT JOIN variants v ON v.image_id = i.id ORDER BY i.id DESC, v.position"
    if [[ $1 == sqlite ]]; then
        python3 - "$work/sqlite.db" "$sql" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
for r in db.execute("EXPLAIN QUERY PLAN " + sys.argv[2]):
    print("  ", r[-1])
times = []
for _ in range(500):
    t = time.perf_counter()
    rows = db.execute(sys.argv[2]).fetchall()
    times.append((time.perf_counter() - t) * 1000)
times.sort()
print(f"   SQLite {sqlite3.sqlite_version} C library (Python): {len(rows)} rows, median {times[len(times) // 2]:.3f} ms")
PY
    else
        "$psql_bin" -X -q -A -t "$pg_url" -c "EXPLAIN $sql" | sed 's/^/   /'
        for _ in $(seq 50); do
            "$psql_bin" -X -q -A -t "$pg_url" -c "EXPLAIN (ANALYZE, TIMING OFF) $sql" | sed -n 's/^Execution Time: \([0-9.]*\) ms/\1/p'
        done | sort -n | awk '{ t[NR] = $1 } END { printf "   PostgreSQL execution time (EXPLAIN ANALYZE): median %.3f ms\n", t[int((NR + 1) / 2)] }'
    fi
}

for backend in sqlite postgres; do
    if [[ $backend == sqlite ]]; then url="sqlite://$work/sqlite.db"; else url=$pg_url; fi
    log "$backend: seeding"
    "$mb" seed --url "$url" --images "$images" --other "$other" | tee "$work/seed-$backend.out" | grep RESULT | tee -a "$results"
    cursor_middle=$(sed -n 's/^cursor_middle=//p' "$work/seed-$backend.out")
    middle_id=$(echo "$cursor_middle" | sed -E 's/(.{8})(.{4})(.{4})(.{4})(.{12})/\1-\2-\3-\4-\5/')
    # After a bulk load PostgreSQL's autovacuum vacuums and analyzes the tables within
    # minutes; do it now (and checkpoint), so that it does not run during the measurements.
    # SQLite has no such thing and the service never runs ANALYZE: left without statistics.
    if [[ $backend == postgres ]]; then
        "$psql_bin" -X -q "$pg_url" -c "VACUUM ANALYZE"
        "$psql_bin" -X -q "$pg_url" -c "CHECKPOINT"
    fi
    log "$backend: GET /v1/images?limit=20 through imagelake ingest (wrk, 1 connection, $duration a page)"
    http "$backend" "$url"
    log "$backend: list_images alone"
    "$mb" list --url "$url" --images "$images" --runs "$list_runs" | tee -a "$results"
    log "$backend: query plan of the middle page"
    plan "$backend"
    log "$backend: upload path (create_image + job_sent; the old three puts; both alternating)"
    "$mb" commit --url "$url" --n "$commits" --store "$work/old-commit-$backend" | tee -a "$results"
    log "$backend: database size $(if [[ $backend == sqlite ]]; then du -ch "$work"/sqlite.db* | tail -1 | cut -f1; else du -sh "$pg_run/pg" | cut -f1; fi)"
done

log "previous version: listing from the local object store ($images images)"
"$mb" oldlist --dir "$base/old-$images" --images "$images" --runs "$old_runs" --max-seconds "$old_max" | tee -a "$results"

# Summary: one line per measurement.
echo
printf '%-8s %-11s %-28s %6s %10s %10s %6s\n' what backend part n p50_ms p99_ms load
awk '$1 == "RESULT" && $2 != "seed" {
    delete f; for (i = 3; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    part = ("page" in f) ? "page=" f["page"] : f["part"]
    printf "%-8s %-11s %-28s %6s %10s %10s %6s\n", $2, f["backend"], part, f["n"], f["p50_ms"], f["p99_ms"], f["load"] }' "$results"
awk '$2 == "seed" { for (i = 3; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    printf "seed %s: %s rows in %s s (%s rows/s)\n", f["backend"], f["rows"], f["seconds"], f["rows_per_s"] }' "$results"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(free -g | awk '/^Mem/ {print $2}') GiB; PostgreSQL $("$psql_bin" -X -A -t "$pg_url" -c 'SHOW server_version'); load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ)"
