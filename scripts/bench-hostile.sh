#!/usr/bin/env bash
# Hostile-load benchmark (issue 17): `imagelake serve` on the embedded default; NORMAL
# (20) clients upload a corpus photograph and read its record, first alone, then while
# SLOW (200) clients hold uploads whose bodies trickle a byte every 5 s (a key each) and
# FLOODS (50) clients ask /readyz without pause; then, with STALLERS (default 100) set,
# while that many clients send 8 MB of an upload and stall. Prints, per phase, the normal
# clients' p50/p99 and errors, what the hostile clients got, and the server's peak RSS.
#   scripts/bench-hostile.sh            SECONDS_PER_PHASE=30 NORMAL=20 SLOW=200 FLOODS=50 STALLERS=100
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$IMAGELAKE_CACHE/target}
export STALLERS=${STALLERS:-100}
slow=${SLOW:-200}
corpus=$(scripts/corpus.sh "$IMAGELAKE_CACHE/corpus" | tail -1)
image=$(find "$corpus" -maxdepth 1 -type f -name '*.jpg' -size -300k -size +50k | sort | head -1)
[[ -n $image ]] || die "no corpus JPEG between 50 and 300 KB"
# The same build as scripts/test (all targets), so that one set of artifacts serves both.
cargo build --release --quiet --workspace --all-targets --locked
bin=$CARGO_TARGET_DIR/release/imagelake
work=$(mktemp -d)
trap '[[ -n ${pid:-} ]] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
port=$(free_port)
key_entry() { printf '[[keys]]\nsha256 = "%s"\ncustomer = "%s"\nrole = "uploader"\n' "$(printf '%s' "$1" | sha256sum | cut -d' ' -f1)" "$2"; }
normal_key=ilk_normal_$(random_hex 16)
{
    printf 'listen = "127.0.0.1:%s"\ndata_dir = "%s"\n' "$port" "$work/data"
    key_entry "$normal_key" normal
} >"$work/config.toml"
slow_keys=()
for i in $(seq 1 "$slow"); do
    k=ilk_slow${i}_$(random_hex 8)
    slow_keys+=("$k")
    key_entry "$k" hostile >>"$work/config.toml"
done
IMAGELAKE_LOG=warn "$bin" serve --config "$work/config.toml" >"$work/server.out" 2>&1 &
pid=$!
wait_for_port 127.0.0.1 "$port" 60
log "normal clients upload $(basename "$image") ($(stat -c %s "$image") bytes)"
SERVER_PID=$pid python3 scripts/hostile_load.py 127.0.0.1 "$port" "$normal_key" "$(IFS=,; echo "${slow_keys[*]}")" "$image"
echo "server limits: defaults (docs/config.example.toml); refusals: $(curl -s "http://127.0.0.1:$port/metrics" | grep '^imagelake_refused_total' | tr '\n' ' ')"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1); $(date -u +%Y-%m-%dT%H:%MZ)"
