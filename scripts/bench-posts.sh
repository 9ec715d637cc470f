#!/usr/bin/env bash
# Posts and comments benchmark (BENCHMARKS.md, "Posts and comments"), on SQLite (embedded)
# and PostgreSQL (a throwaway cluster from scripts/servers.sh), in one run. For each:
#   1. seed one customer ('bench') with POSTS published posts (their images processed,
#      two variants each) and COMMENTS comments, skewed over the posts (posts_bench seed);
#   2. the database's part of a page alone (posts_bench list);
#   3. `imagelake ingest` on that database; `GET /v1/posts?limit=20` (newest first) and
#      `&order=comments`, each on the first page and on DEEP_PAGES pages from the middle
#      of the listing (following next_cursor), at exactly LIST_RATE requests/s for
#      LIST_SECONDS, latency from each request's due time (posts_bench load: open loop);
#   4. `POST /v1/posts/{id}/comments` at WRITE_RATE/s for WRITE_SECONDS (open loop), the
#      server killed (SIGKILL), every 201-acknowledged comment looked up in the database
#      (posts_bench verify); then the same with MAX_CONCURRENCY connections sending back
#      to back (the most it takes), killed and verified again.
#   scripts/bench-posts.sh [POSTS] [COMMENTS]        (defaults 1000000 10000000)
# Environment: LIST_RATE (100), LIST_SECONDS (30), DEEP_PAGES (50), LIST_RUNS (300),
# WRITE_RATE (1000), WRITE_SECONDS (60), MAX_CONCURRENCY (64), BACKENDS ("sqlite postgres").
# The seeded SQLite database is kept in $IMAGELAKE_CACHE/bench-posts/POSTS-COMMENTS for the
# next run (copied, so each run starts from the same data); PostgreSQL is seeded each run.
# Disk at the default sizes: 4.0 GB for SQLite (and as much for the copy kept), 5.8 GB for
# PostgreSQL; the per-second timelines of the comment writes stay in $IMAGELAKE_CACHE/bench-posts.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
posts=${1:-1000000}
comments=${2:-10000000}
list_rate=${LIST_RATE:-100}
list_seconds=${LIST_SECONDS:-30}
deep_pages=${DEEP_PAGES:-50}
list_runs=${LIST_RUNS:-300}
write_rate=${WRITE_RATE:-1000}
write_seconds=${WRITE_SECONDS:-60}
max_conc=${MAX_CONCURRENCY:-64}
backends=${BACKENDS:-sqlite postgres}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$IMAGELAKE_CACHE/target}
command -v python3 >/dev/null || die "python3 is needed (scripts/lib.sh free_port)"
cargo build --release --quiet --workspace --bins --examples
bin=$CARGO_TARGET_DIR/release/imagelake
pb=$CARGO_TARGET_DIR/release/examples/posts_bench
base=$IMAGELAKE_CACHE/bench-posts
cache=$base/$posts-$comments
mkdir -p "$base"
work=$(mktemp -d "$base/run.XXXXXX")
results=$work/results.txt
pg_run=''
pid=''
stop_server() {
    if [[ -n $pid ]]; then kill "-${1:-TERM}" "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    pid=''
}
cleanup() {
    stop_server KILL
    if [[ -n $pg_run ]]; then scripts/servers.sh stop "$pg_run" || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
: >"$results"
log "$(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1); $posts posts, $comments comments for 'bench'"

if [[ $backends == *postgres* ]]; then
    pg_run=$(IMAGELAKE_ONLY_POSTGRES=1 scripts/servers.sh start)
    # shellcheck source=/dev/null
    source "$pg_run/env.sh"
    pg_url=$IMAGELAKE_TEST_DATABASE_URL
    psql_bin="$(pg_bindir)/psql"
fi

# start_server BACKEND URL: `imagelake ingest` on the database, with an uploader key.
start_server() {
    local backend=$1 url=$2 cfg
    port=$(free_port 1)
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
    IMAGELAKE_LOG=warn "$bin" ingest --config "$cfg" >>"$work/$backend-ingest.out" 2>&1 &
    pid=$!
    wait_for_port 127.0.0.1 "$port" 120 || { cat "$work/$backend-ingest.out" >&2; die "ingest on $backend did not start"; }
}

# verify BACKEND URL PART: every acknowledged comment of PART is in the database.
verify() {
    local line
    line=$("$pb" verify --url "$2" --acked "$work/acked-$1-$3.txt")
    echo "$line backend=$1 part=$3" | tee -a "$results"
    [[ $line == *" missing=0 wrong_post=0 "* && $line == *" count_mismatch=0 "* ]] || warn "$1 $3: acknowledged comments not all readable: $line"
}

for backend in $backends; do
    key=ilk_bench_$(random_hex 16)
    seed_out=$work/seed-$backend.out
    posts_file=$work/posts-$backend.txt
    if [[ $backend == sqlite ]]; then
        url="sqlite://$work/sqlite.db"
        if [[ -f $cache/done ]]; then
            log "sqlite: the seeded database from $cache"
            cp "$cache/sqlite.db" "$work/sqlite.db"
            cp "$cache/seed.out" "$seed_out"
            cp "$cache/posts.txt" "$posts_file"
        else
            log "sqlite: seeding"
            "$pb" seed --url "$url" --posts "$posts" --comments "$comments" --posts-out "$posts_file" | tee "$seed_out"
            # The seed ends with a TRUNCATE checkpoint: the file alone holds the database.
            rm -rf "$cache" && mkdir -p "$cache"
            [[ ! -s $work/sqlite.db-wal ]] || die "sqlite: WAL not checkpointed after seeding"
            cp "$work/sqlite.db" "$cache/sqlite.db" && cp "$seed_out" "$cache/seed.out" && cp "$posts_file" "$cache/posts.txt"
            touch "$cache/done"
        fi
    else
        url=$pg_url
        log "postgres: seeding"
        "$pb" seed --url "$url" --posts "$posts" --comments "$comments" --posts-out "$posts_file" | tee "$seed_out"
        # After a bulk load autovacuum vacuums and analyzes the tables within minutes: do it
        # now, and checkpoint, so neither runs during the measurements (as bench-metadata.sh).
        "$psql_bin" -X -q "$pg_url" -c "VACUUM ANALYZE"
        "$psql_bin" -X -q "$pg_url" -c "CHECKPOINT"
    fi
    grep '^RESULT seed' "$seed_out" | sed "s/\$/ backend_run=$backend/" >>"$results"
    newest_mid=$(sed -n 's/^cursor_newest_middle=//p' "$seed_out")
    comments_mid=$(sed -n 's/^cursor_comments_middle=//p' "$seed_out")
    log "$backend: database size $(if [[ $backend == sqlite ]]; then du -ch "$work"/sqlite.db* | tail -1 | cut -f1; else du -sh "$pg_run/pg" | cut -f1; fi)"

    log "$backend: the database's part of a page (list_posts + post_views), $list_runs runs a page"
    "$pb" list --url "$url" --newest-cursor "$newest_mid" --comments-cursor "$comments_mid" --runs "$list_runs" | tee -a "$results"

    start_server "$backend" "$url"
    for order in newest comments; do
        if [[ $order == newest ]]; then mid=$newest_mid; else mid=$comments_mid; fi
        "$pb" paths --base "http://127.0.0.1:$port" --key "$key" --order "$order" --pages 1 >"$work/paths-$order-first.txt"
        "$pb" paths --base "http://127.0.0.1:$port" --key "$key" --order "$order" --pages "$deep_pages" --cursor "$mid" \
            >"$work/paths-$order-deep.txt"
        for page in first deep; do
            log "$backend: GET /v1/posts order=$order $page page(s) ($(wc -l <"$work/paths-$order-$page.txt") paths), $list_rate/s for ${list_seconds}s"
            "$pb" load --base "http://127.0.0.1:$port" --key "$key" --name list --label "backend=$backend order=$order page=$page " \
                --paths "$work/paths-$order-$page.txt" --rate "$list_rate" --seconds "$list_seconds" | tee -a "$results"
        done
    done

    log "$backend: comments at $write_rate/s for ${write_seconds}s (open loop)"
    "$pb" load --base "http://127.0.0.1:$port" --key "$key" --name comments --label "backend=$backend part=rate " \
        --comment-posts "$posts_file" --rate "$write_rate" --seconds "$write_seconds" --acked "$work/acked-$backend-rate.txt" \
        --timeline "$base/timeline-$backend-rate.txt" | tee -a "$results"
    # The seconds with the worst latency (the whole timeline stays in $base).
    sort -t= -k4 -g -r "$base/timeline-$backend-rate.txt" | head -5 | sed 's/^/   second /' 
    stop_server KILL
    verify "$backend" "$url" rate

    start_server "$backend" "$url"
    log "$backend: comments, $max_conc connections back to back for ${write_seconds}s (the most it takes)"
    "$pb" load --base "http://127.0.0.1:$port" --key "$key" --name comments --label "backend=$backend part=max " \
        --comment-posts "$posts_file" --rate 0 --concurrency "$max_conc" --seconds "$write_seconds" \
        --acked "$work/acked-$backend-max.txt" | tee -a "$results"
    stop_server KILL
    verify "$backend" "$url" max
    if [[ $backend == sqlite ]]; then rm -f "$work"/sqlite.db*; fi
done

echo
echo "== summary"
grep '^RESULT' "$results"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(free -g | awk '/^Mem/ {print $2}') GiB$(
    [[ -n $pg_run ]] && echo "; PostgreSQL $("$psql_bin" -X -A -t "$pg_url" -c 'SHOW server_version')"
); load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ)"
