#!/usr/bin/env bash
# Load benchmark: `imagelake serve` on the embedded default, `wrk` (Debian) with
# CONNECTIONS concurrent clients (default 200) uploading corpus photographs for DURATION
# (default 5m), every tenth request a metadata read (scripts/load.lua). Prints wrk's
# throughput, p50/p90/p99 latency, errors, and the server's peak RSS (VmHWM).
#   scripts/bench-load.sh [DURATION] [CONNECTIONS] [MAX_IMAGE_BYTES]
# Disk: every accepted upload is stored with its variants; at a few hundred uploads per
# second a 5-minute run writes tens of GB, so the images are the corpus files under
# MAX_IMAGE_BYTES (default 256 KiB) and the data directory is removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
duration=${1:-5m}
conns=${2:-200}
max_bytes=${3:-262144}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$IMAGELAKE_CACHE/target}
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
corpus=$(scripts/corpus.sh "$IMAGELAKE_CACHE/corpus" | tail -1)
mapfile -t images < <(find "$corpus" -maxdepth 1 -type f \( -name '*.jpg' -o -name '*.png' \) -size -"$((max_bytes / 1024))"k -size +10k | sort)
((${#images[@]})) || die "no corpus image under $max_bytes bytes"
cargo build --release --quiet --workspace --bins
bin=$CARGO_TARGET_DIR/release/imagelake
work=$(mktemp -d)
trap '[[ -n ${pid:-} ]] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
key=ilk_load_$(random_hex 16)
port=$(free_port)
cat >"$work/config.toml" <<TOML
listen = "127.0.0.1:$port"
data_dir = "$work/data"
[[keys]]
sha256 = "$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)"
customer = "load"
role = "uploader"
TOML
IMAGELAKE_LOG=warn "$bin" serve --config "$work/config.toml" >"$work/server.out" 2>&1 &
pid=$!
wait_for_port 127.0.0.1 "$port" 60
log "wrk: $conns connections, $duration, ${#images[@]} images ($(du -ch "${images[@]}" | tail -1 | cut -f1))"
wrk -t2 -c"$conns" -d"$duration" --timeout 30s -s scripts/load.lua "http://127.0.0.1:$port" -- "$key" "${images[@]}" |
    tee "$work/wrk.out" | grep -E '^LOAD|Requests/sec|Non-2xx|Socket errors'
hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
echo "server peak RSS: $((hwm_kb / 1024)) MB; stored: $(du -sh "$work/data" | cut -f1)"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1); $(date -u +%Y-%m-%dT%H:%MZ)"
