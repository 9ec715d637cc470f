#!/usr/bin/env bash
# Load benchmark: the same request mix on two layouts, one after the other in one run,
# both on Garage, the SQS server and PostgreSQL (scripts/servers.sh):
#   multi   the multi-process deployment of scripts/deploy.sh: two `imagelake ingest`
#           behind HAProxy, two `processor`, one `reporting`, two `lifecycle`;
#   single  one `imagelake serve` (every service in one process) with the same backends
#           and configuration (`deploy.sh single`), no load balancer.
# `wrk` (Debian) with CONNECTIONS concurrent clients (default 200) uploading corpus
# photographs for DURATION (default 5m), every tenth request a metadata read
# (scripts/load.lua). For each layout it prints wrk's throughput, p50/p90/p99 latency and
# errors; then, when the load stops, the uploads accepted, processed and still waiting
# (the processing backlog); then how long the backlog took to drain (waiting up to
# DRAIN_TIMEOUT seconds, default 1800), and the peak RSS of the processes.
#   scripts/bench-load.sh [DURATION] [CONNECTIONS] [MAX_IMAGE_BYTES]
#   LAYOUTS="multi single" (default: both, in that order)
# The servers are started in a temporary directory and stopped at the end, unless the
# environment already names them (servers.sh's env.sh sourced).
# Disk: every accepted upload is stored with its variants, so the images are the corpus
# files under MAX_IMAGE_BYTES (default 256 KiB); each layout's data is under its own S3
# prefix and database, removed with the servers when this script started them.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
duration=${1:-5m}
conns=${2:-200}
max_bytes=${3:-262144}
layouts=${LAYOUTS:-multi single}
drain_timeout=${DRAIN_TIMEOUT:-1800}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$IMAGELAKE_CACHE/target}
apt_ensure wrk
corpus=$(scripts/corpus.sh "$IMAGELAKE_CACHE/corpus" | tail -1)
mapfile -t images < <(find "$corpus" -maxdepth 1 -type f \( -name '*.jpg' -o -name '*.png' \) -size -"$((max_bytes / 1024))"k -size +10k | sort)
((${#images[@]})) || die "no corpus image under $max_bytes bytes"
cargo build --release --quiet --workspace --bins
work=$(mktemp -d)
# A copy of the binary: the shared target directory may be rebuilt from another clone
# while the benchmark runs.
cp "$CARGO_TARGET_DIR/release/imagelake" "$work/imagelake"
export IMAGELAKE_BIN=$work/imagelake
servers=''
cleanup() {
    local d
    for d in "$work"/multi "$work"/single; do
        [[ ! -d $d ]] || scripts/deploy.sh stop "$d" || true
    done
    [[ -z $servers ]] || scripts/servers.sh stop "$servers" || true
    rm -rf "$work"
}
trap cleanup EXIT
if [[ -z ${IMAGELAKE_TEST_S3_ENDPOINT:-} ]]; then
    scripts/install.sh >&2
    servers=$(scripts/servers.sh start "$work/servers")
    # shellcheck disable=SC1091
    source "$servers/env.sh"
fi

# sql DATABASE_URL QUERY: one value.
sql() { "$IMAGELAKE_TEST_PG_BINDIR/psql" -XAtq "$1" -c "$2"; }

# peak_rss_mb DIR: each process's peak RSS (VmHWM) and their sum, in MB.
peak_rss_mb() {
    local name pid kb sum=0 each=''
    for name in $(<"$1/processes"); do
        pid=$(<"$1/$name/pid")
        kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        sum=$((sum + kb)) each+=" $name=$((kb / 1024))"
    done
    echo "$((sum / 1024)) MB in all ($each )"
}

# bench LAYOUT: start the layout, load it, measure the backlog and its drain, stop it.
bench() {
    local layout=$1 dir=$work/$1 url db pending processed accepted t0 drained
    if [[ $layout == multi ]]; then
        url=$(scripts/deploy.sh start "$dir")
    else
        url=$(scripts/deploy.sh single "$dir")
    fi
    # shellcheck disable=SC1091
    source "$dir/deploy.env"
    db=$IMAGELAKE_DEPLOY_DATABASE_URL
    log "$layout: wrk, $conns connections, $duration, ${#images[@]} images ($(du -ch "${images[@]}" | tail -1 | cut -f1)) -> $url"
    wrk -t2 -c"$conns" -d"$duration" --timeout 30s -s scripts/load.lua "$url" -- "$IMAGELAKE_DEPLOY_KEY" "${images[@]}" |
        tee "$work/$layout.wrk" | grep -E '^LOAD|Requests/sec|Non-2xx|Socket errors' | sed "s/^/$layout: /"
    local q="SELECT count(*) FROM images WHERE customer = 'deploy'"
    accepted=$(sql "$db" "$q")
    processed=$(sql "$db" "$q AND status = 'processed'")
    pending=$(sql "$db" "$q AND status IN ('uploaded', 'processing')")
    echo "$layout: at the end of the load: accepted=$accepted processed=$processed backlog=$pending"
    t0=$SECONDS
    while ((pending > 0 && SECONDS - t0 < drain_timeout)); do
        sleep 1
        pending=$(sql "$db" "$q AND status IN ('uploaded', 'processing')")
    done
    drained=$((SECONDS - t0))
    if ((pending > 0)); then
        echo "$layout: backlog NOT drained after ${drained} s: $pending still waiting"
    else
        echo "$layout: backlog drained in ${drained} s; failed=$(sql "$db" "$q AND status = 'failed'")"
    fi
    echo "$layout: peak RSS $(peak_rss_mb "$dir"); queue outbox rows now: $(sql "$db" "SELECT count(*) FROM outbox")"
    scripts/deploy.sh stop "$dir"
}

for layout in $layouts; do
    bench "$layout"
done
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1); $(date -u +%Y-%m-%dT%H:%MZ)"
echo "command: scripts/bench-load.sh $duration $conns $max_bytes (LAYOUTS=\"$layouts\")"
