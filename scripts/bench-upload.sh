#!/usr/bin/env bash
# Streams one large upload (default 5 GiB) into `imagelake serve` on the embedded default
# and reports the throughput and the server's peak RSS (VmHWM). The body is a real JPEG
# header followed by filler, sent chunked from a pipe, so neither the client nor the disk
# holds it first. Usage: scripts/bench-upload.sh [SIZE_GIB] [s3]
#   with "s3" as the second argument, the server stores to Garage (scripts/servers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
size_gib=${1:-5}
backend=${2:-local}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$IMAGELAKE_CACHE/target}
cargo build --release --quiet --workspace --bins
bin=$CARGO_TARGET_DIR/release/imagelake
work=$(mktemp -d)
run_dir=""
cleanup() {
    [[ -n ${pid:-} ]] && kill "$pid" 2>/dev/null || true
    [[ -n $run_dir ]] && scripts/servers.sh stop "$run_dir" || true
    rm -rf "$work"
}
trap cleanup EXIT
key=ilk_bench_$(random_hex 16)
port=$(free_port)
hash=$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)
cat > "$work/config.toml" <<TOML
listen = "127.0.0.1:$port"
data_dir = "$work/data"
[ingest]
max_upload_bytes = "$((size_gib + 1))GiB"
[processor]
concurrency = 1
[[keys]]
sha256 = "$hash"
customer = "bench"
role = "uploader"
TOML
if [[ $backend == s3 ]]; then
    run_dir=$(scripts/servers.sh start)
    # shellcheck disable=SC1091
    source "$run_dir/env.sh"
    export AWS_ACCESS_KEY_ID=$IMAGELAKE_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$IMAGELAKE_TEST_S3_SECRET_KEY
    export IMAGELAKE_STORAGE__BACKEND=s3 IMAGELAKE_STORAGE__BUCKET=$IMAGELAKE_TEST_S3_BUCKET
    export IMAGELAKE_STORAGE__ENDPOINT=$IMAGELAKE_TEST_S3_ENDPOINT IMAGELAKE_STORAGE__REGION=$IMAGELAKE_TEST_S3_REGION
    export IMAGELAKE_STORAGE__FORCE_PATH_STYLE=true IMAGELAKE_STORAGE__PREFIX=bench-$(random_hex 4)
fi
# The processor is not under test: keep it from competing for the cores.
IMAGELAKE_LOG=warn "$bin" ingest --config "$work/config.toml" > "$work/server.out" 2>&1 &
pid=$!
wait_for_port 127.0.0.1 "$port" 30
# A JPEG start-of-image and JFIF header, then zeros. `curl -T -` streams stdin (curl's
# --data-binary @- would read it all into memory first).
printf '\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00' > "$work/head.bin"
start=$(date +%s.%N)
status=$( { cat "$work/head.bin"; head -c $((size_gib * 1024 * 1024 * 1024)) /dev/zero; } |
    curl -s -o "$work/answer.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $key" \
         -H "Content-Type: image/jpeg" -H "Transfer-Encoding: chunked" -T - \
         "http://127.0.0.1:$port/v1/images")
end=$(date +%s.%N)
hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
secs=$(echo "$end - $start" | bc -l)
mib_s=$(echo "$size_gib * 1024 / $secs" | bc -l)
echo "status: $status ($(head -c 200 "$work/answer.json"))"
printf 'upload %s GiB (%s backend): %.1f s, %.0f MiB/s, server peak RSS %.0f MB\n' \
    "$size_gib" "$backend" "$secs" "$mib_s" "$(echo "$hwm_kb / 1024" | bc -l)"
[[ $status == 202 ]] || { echo "upload failed" >&2; exit 1; }
(( hwm_kb < 256 * 1024 )) || { echo "peak RSS over 256 MB" >&2; exit 1; }
