#!/usr/bin/env bash
# One large upload (default 5 GiB) into `imagelake serve`, three ways, on the embedded
# default (local directory) and on Garage (scripts/servers.sh), in one run:
#   post    a plain `POST /v1/images` of the whole file (`curl -T FILE`: streamed from disk);
#   tus     tus 1.0 at /v1/uploads, PATCHes of CHUNK_MIB (default 64) MiB, each streamed
#           from disk (scripts/bench_upload.py tus);
#   direct  Garage only: POST /v1/uploads/direct, plain PUTs of the parts to their
#           presigned URLs (streamed from disk), complete (scripts/bench_upload.py direct).
# The input is a real RGB PNG (level-0 deflate, so its size is its pixel count; more pixels
# than [processor] max_pixels, so processing fails with image_too_large after the upload),
# made once by scripts/bench_upload.py png and cached in $IMAGELAKE_CACHE/bench-upload.
# Each upload gets a fresh server process (so its VmHWM, read from /proc/PID/status right
# after the upload is acknowledged, is that upload's peak RSS), with its own data directory
# and S3 prefix; the image is deleted and the server stopped after it. Prints a markdown
# table (throughput in MB/s = 10^6 bytes/s, peak RSS in MB) on stdout, then the machine.
#   scripts/bench-upload.sh [SIZE_GIB] [local|garage]     (default: 5, both backends)
# Environment: CHUNK_MIB (64), METHODS ("post tus direct").
# Disk: the input (SIZE_GIB, kept), plus at most one upload's copy at a time on the local
# backend; Garage's blocks of the deleted uploads are freed with the servers at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
size_gib=${1:-5}
backends=${2:-local garage}
chunk_mib=${CHUNK_MIB:-64}
methods=${METHODS:-post tus direct}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$IMAGELAKE_CACHE/target}
[[ $size_gib =~ ^[0-9]+$ && $size_gib -gt 0 ]] || die "SIZE_GIB must be a whole number of GiB, not '$size_gib'"
[[ $backends != *s3* ]] || backends=${backends//s3/garage} # the old spelling
command -v curl >/dev/null || die "curl is needed"
[[ -x $IMAGELAKE_PYTHON ]] || scripts/install.sh >&2
# The same build as scripts/test (all targets), so that one set of artifacts serves both.
cargo build --release --quiet --workspace --all-targets --locked
work=$(mktemp -d)
# A copy of the binary: the shared target directory may be rebuilt from another clone
# while the benchmark runs.
cp "$CARGO_TARGET_DIR/release/imagelake" "$work/imagelake"
bin=$work/imagelake
pid=''
servers=''
stop_server() {
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    local t0=$SECONDS
    while kill -0 "$pid" 2>/dev/null && ((SECONDS - t0 < 30)); do sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=''
}
cleanup() {
    stop_server
    [[ -z $servers ]] || scripts/servers.sh stop "$servers" >&2 || true
    rm -rf "$work"
}
trap cleanup EXIT

# The input: a PNG of SIZE_GIB GiB (a few KB more: headers and block framing).
cache=$IMAGELAKE_CACHE/bench-upload
input=$cache/input-${size_gib}gib.png
mkdir -p "$cache"
if [[ ! -s $input ]]; then
    log "writing $input (once; kept for the next run)"
    "$IMAGELAKE_PYTHON" scripts/bench_upload.py png "$input" $((size_gib << 30))
fi
bytes=$(stat -c %s "$input")

if [[ $backends == *garage* ]]; then
    # Its own fresh directory: PostgreSQL (started too) cannot enter ours (mode 0700).
    servers=$(scripts/servers.sh start)
    # shellcheck disable=SC1091
    source "$servers/env.sh"
fi

key=ilk_bench_$(random_hex 16)
# start_server BACKEND NAME: `imagelake serve` on a fresh data directory (and S3 prefix).
start_server() {
    local backend=$1 name=$2 cfg
    port=$(free_port 1)
    cfg=$work/$name.toml
    cat >"$cfg" <<TOML
listen = "127.0.0.1:$port"
data_dir = "$work/$name"
[ingest]
max_upload_bytes = "$((size_gib + 1))GiB"
[processor]
concurrency = 1
[[keys]]
sha256 = "$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)"
customer = "bench"
role = "uploader"
TOML
    local env=(IMAGELAKE_LOG=warn)
    if [[ $backend == garage ]]; then
        env+=(AWS_ACCESS_KEY_ID="$IMAGELAKE_TEST_S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$IMAGELAKE_TEST_S3_SECRET_KEY"
            IMAGELAKE_STORAGE__BACKEND=s3 IMAGELAKE_STORAGE__BUCKET="$IMAGELAKE_TEST_S3_BUCKET"
            IMAGELAKE_STORAGE__ENDPOINT="$IMAGELAKE_TEST_S3_ENDPOINT" IMAGELAKE_STORAGE__REGION="$IMAGELAKE_TEST_S3_REGION"
            IMAGELAKE_STORAGE__FORCE_PATH_STYLE=true IMAGELAKE_STORAGE__PREFIX="bench-$name-$(random_hex 4)")
    fi
    env "${env[@]}" "$bin" serve --config "$cfg" >"$work/$name.out" 2>&1 &
    pid=$!
    wait_for_port 127.0.0.1 "$port" 60 || { cat "$work/$name.out" >&2; die "$name: the server did not start"; }
}

rows=()
# field FILE KEY: a value of a JSON file ('' when absent or null).
field() { "$IMAGELAKE_PYTHON" -c 'import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print("" if v is None else v)' "$@"; }
# bench BACKEND METHOD: one upload; appends a table row.
bench() {
    local backend=$1 method=$2 name=$1-$2 base out hwm_kb image what
    start_server "$backend" "$name"
    base=http://127.0.0.1:$port
    log "$name: $bytes bytes"
    out=$work/$name.json
    case $method in
        post)
            local t0 t1 status
            t0=$(now)
            status=$(curl -sS -o "$work/$name.answer" -w '%{http_code}' -X POST -H "Authorization: Bearer $key" \
                -H "Content-Type: image/png" -T "$input" "$base/v1/images")
            t1=$(now)
            hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
            [[ $status == 202 ]] || { cat "$work/$name.answer" >&2; die "$name: POST answered $status"; }
            printf '{"seconds": %s, "image": "%s"}\n' "$(((t1 - t0) / 1000000)).$(printf '%06d' $(((t1 - t0) % 1000000)))" \
                "$(field "$work/$name.answer" id)" >"$out"
            what="plain POST (curl -T)"
            ;;
        tus)
            "$IMAGELAKE_PYTHON" scripts/bench_upload.py tus "$base" "$key" "$input" $((chunk_mib << 20)) >"$out" ||
                { tail -20 "$work/$name.out" >&2; die "$name failed"; }
            hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
            what="tus, $chunk_mib MiB PATCHes"
            ;;
        direct)
            "$IMAGELAKE_PYTHON" scripts/bench_upload.py direct "$base" "$key" "$input" >"$out" ||
                { tail -20 "$work/$name.out" >&2; die "$name failed"; }
            hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
            what="direct to S3, $(field "$out" parts) parts of $(($(field "$out" part_size) >> 20)) MiB"
            ;;
    esac
    rows+=("$("$IMAGELAKE_PYTHON" -c 'import json,sys
secs, n, kb = json.load(open(sys.argv[1]))["seconds"], int(sys.argv[4]), int(sys.argv[5])
print(f"| {sys.argv[2]} | {sys.argv[3]} | {secs:.1f} | {n / secs / 1e6:.0f} | {kb / 1024:.0f} |")' \
        "$out" "$backend" "$what" "$bytes" "$hwm_kb")")
    log "$name: ${rows[-1]}"
    # Free the space now rather than at the end (the original, the processor's copy).
    image=$(field "$out" image)
    image=${image##*/}
    if [[ -n $image ]]; then
        curl -sS -o /dev/null -X DELETE -H "Authorization: Bearer $key" "$base/v1/images/$image" || true
    fi
    stop_server
    rm -rf "${work:?}/$name"
}

for backend in $backends; do
    for method in $methods; do
        [[ $method != direct || $backend == garage ]] || continue
        bench "$backend" "$method"
    done
done

echo
echo "Upload of $bytes bytes ($size_gib GiB PNG) into \`imagelake serve\`; one server process per row."
echo
echo "| backend | method | seconds | MB/s | server peak RSS (MB) |"
echo "|---|---|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(free -g | awk '/^Mem/ {print $2}') GiB; load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ)"
echo "command: scripts/bench-upload.sh $size_gib \"$backends\" (CHUNK_MIB=$chunk_mib METHODS=\"$methods\")"
