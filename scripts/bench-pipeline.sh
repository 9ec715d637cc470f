#!/usr/bin/env bash
# bench-pipeline.sh [CORPUS] — benchmark the image pipeline against libvips and
# ImageMagick on one core.
#
# The reference job: every JPEG in the corpus fitted into 400x300 and written as
# JPEG quality 80. Each tool runs it pinned to CPU 0 (`taskset -c 0`), wrapped in
# `/usr/bin/time` for wall time and peak RSS:
#
#   imagelake   imagelake process --variants medium --out OUT FILES...
#               (the configured `medium` preset: fit 400x300, JPEG quality 80)
#   libvips     VIPS_CONCURRENCY=1 vipsthumbnail F -s 400x300 -o OUT/%s.jpg[Q=80,strip]
#               (once per image, and once more with all images in one process)
#   ImageMagick convert F -thumbnail 400x300 -strip -quality 80 OUT   (OMP_NUM_THREADS=1)
#
# Metadata is stripped on every side (imagelake writes none; `strip` and `-strip` drop
# the EXIF, XMP and ICC profile the others would copy), so the output bytes compare
# like for like. Each tool's outputs are then scored with scripts/quality.py:
# SSIMULACRA2 (mean over the images) against the source resized to the same size by
# one reference filter (Pillow LANCZOS), and bits per pixel.
#
# vipsthumbnail and convert are started once per image (that is how they are used
# from a shell); the process start cost is part of their figures. A warm-up pass
# reads every file first so that the page cache is equally hot for all three.
#
# CORPUS defaults to $IMAGELAKE_CACHE/corpus, built by scripts/corpus.sh.
# Extra knobs: REPEAT=N runs each tool N times and keeps the fastest run;
# BENCH_BIN=PATH uses an already built imagelake binary instead of building it;
# QUALITY=0 skips the SSIMULACRA2 scoring.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT=$(cd "$IMAGELAKE_SCRIPTS_DIR/.." && pwd)
CORPUS=${1:-$IMAGELAKE_CACHE/corpus}
REPEAT=${REPEAT:-1}
QUALITY=${QUALITY:-1}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$IMAGELAKE_CACHE/target}

"$IMAGELAKE_SCRIPTS_DIR/corpus.sh" "$CORPUS" >/dev/null

# vipsthumbnail, the real ImageMagick (/usr/local/bin/convert may be a stand-in),
# /usr/bin/time and taskset.
apt_ensure libvips-tools imagemagick time util-linux
CONVERT=/usr/bin/convert
[[ -x $CONVERT ]] || CONVERT=$(command -v convert)

# The scorer needs numpy, scipy and Pillow from the project venv (requirements-test.txt).
if ((QUALITY)) && ! "$IMAGELAKE_PYTHON" -c 'import numpy, scipy, PIL' 2>/dev/null; then
    log "setting up the python venv for scripts/quality.py"
    IMAGELAKE_SKIP_GARAGE=1 IMAGELAKE_SKIP_CHROMIUM=1 IMAGELAKE_SKIP_POSTGRES=1 IMAGELAKE_SKIP_HAPROXY=1 \
        IMAGELAKE_SKIP_TUS_JS=1 "$IMAGELAKE_SCRIPTS_DIR/install.sh" >&2
fi

# BENCH_BIN=path skips the build and uses that imagelake binary.
BENCH=${BENCH_BIN:-}
if [[ -z $BENCH ]]; then
    log "building imagelake (release)"
    (cd "$ROOT" && cargo build --release --workspace --bins) >&2
    BENCH=$CARGO_TARGET_DIR/release/imagelake
fi
# The reference job is the default `medium` preset; check it has not drifted.
grep -q '{ name = "medium", width = 400,  height = 300,  format = "jpeg", quality = 80 }' \
    "$ROOT/docs/config.example.toml" || die "the medium preset is no longer 400x300 JPEG q80"

mapfile -t FILES < <(find "$CORPUS" -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.jpeg' \) | sort)
((${#FILES[@]})) || die "no JPEG in $CORPUS"
N=${#FILES[@]}
cat "${FILES[@]}" >/dev/null # warm the page cache

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
RESULTS=$WORK/results.tsv

# run NAME CMD...: run CMD under taskset + time, REPEAT times; record the fastest.
run() {
    local name=$1
    shift
    local best_s="" best_kb="" i
    for ((i = 0; i < REPEAT; i++)); do
        rm -rf "$WORK/out-$name" && mkdir -p "$WORK/out-$name"
        /usr/bin/time -f "%e s wall, %M KB peak" -o "$WORK/time-$name" \
            taskset -c 0 "$@" >"$WORK/log-$name" 2>&1 ||
            die "$name failed: $(tail -5 "$WORK/log-$name")"
        local s kb
        s=$(awk '{print $1}' "$WORK/time-$name")
        kb=$(awk '{print $4}' "$WORK/time-$name")
        log "$name: $(cat "$WORK/time-$name")"
        if [[ -z $best_s ]] || awk -v a="$s" -v b="$best_s" 'BEGIN{exit !(a<b)}'; then
            best_s=$s best_kb=$kb
        fi
    done
    local made
    made=$(find "$WORK/out-$name" -type f | wc -l)
    [[ $made -eq $N ]] || die "$name wrote $made of $N thumbnails"
    printf '%s\t%s\t%s\t%s\n' "$name" "$N" "$best_s" "$best_kb" >>"$RESULTS"
}

# A config of its own, so that no IMAGELAKE_* variable or ./data changes the job.
printf 'data_dir = "%s"\n' "$WORK/data" >"$WORK/bench.toml"
run imagelake env -u IMAGELAKE_CONFIG "$BENCH" --config "$WORK/bench.toml" process --variants medium \
    --out "$WORK/out-imagelake" "${FILES[@]}"

# One process per image, as the tools are normally used; a single shell loops.
# shellcheck disable=SC2016 # the inner scripts expand their own arguments
run vipsthumbnail env VIPS_CONCURRENCY=1 bash -c '
    out=$1; shift
    for f in "$@"; do vipsthumbnail "$f" -s 400x300 -o "$out/%s.jpg[Q=80,strip]"; done
' _ "$WORK/out-vipsthumbnail" "${FILES[@]}"

# vipsthumbnail also takes many files in one process: libvips without the per-image
# process start, the fairest library-to-library comparison.
run vips-1proc env VIPS_CONCURRENCY=1 vipsthumbnail "${FILES[@]}" -s 400x300 -o "$WORK/out-vips-1proc/%s.jpg[Q=80,strip]"

# shellcheck disable=SC2016
run imagemagick env OMP_NUM_THREADS=1 MAGICK_THREAD_LIMIT=1 bash -c '
    convert=$1 out=$2; shift 2
    for f in "$@"; do b=${f##*/}; "$convert" "$f" -thumbnail 400x300 -strip -quality 80 "$out/${b%.*}.jpg"; done
' _ "$CONVERT" "$WORK/out-imagemagick" "${FILES[@]}"

# Output bytes (of the last run; every run writes the same files), and each tool's
# mean SSIMULACRA2 and bits per pixel from scripts/quality.py ("-" with QUALITY=0).
for t in imagelake vipsthumbnail vips-1proc imagemagick; do
    score="-" bpp="-"
    if ((QUALITY)); then
        read -r count score _ bpp < <("$IMAGELAKE_PYTHON" "$IMAGELAKE_SCRIPTS_DIR/quality.py" --tsv "$CORPUS" "$WORK/out-$t") ||
            die "scoring $t's thumbnails failed"
        [[ $count -eq $N ]] || die "quality.py scored $count of $N thumbnails of $t"
    fi
    printf '%s\t%s\t%s\t%s\n' "$t" "$(du -sb "$WORK/out-$t" | awk '{print $1}')" "$bpp" "$score"
done >"$WORK/sizes.tsv"

echo
echo "Reference job: $N JPEGs from $CORPUS -> fit 400x300, JPEG q80, no metadata, one core (taskset -c 0)"
printf '%-14s %7s %9s %9s %14s %12s %6s %12s\n' tool images seconds images/s "peak RSS MiB" "output KiB" bpp SSIMULACRA2
while IFS=$'\t' read -r name n s kb; do
    IFS=$'\t' read -r _ bytes bpp score < <(awk -F'\t' -v t="$name" '$1==t' "$WORK/sizes.tsv")
    awk -v name="$name" -v n="$n" -v s="$s" -v kb="$kb" -v b="$bytes" -v bpp="$bpp" -v score="$score" 'BEGIN{
        printf "%-14s %7d %9.2f %9.2f %14.1f %12.0f %6s %12s\n", name, n, s, (s > 0 ? n / s : 0), kb / 1024, b / 1024,
            (bpp == "-" ? "-" : sprintf("%.3f", bpp)), (score == "-" ? "-" : sprintf("%.2f", score)) }'
done <"$RESULTS"
if ((QUALITY)); then
    echo "SSIMULACRA2: mean over the images (scripts/quality.py; 100 = identical to the source resized by Pillow LANCZOS)."
fi
echo
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1); $(date -u +%Y-%m-%dT%H:%MZ)"
echo "versions: $(vips --version 2>/dev/null | head -1); $("$CONVERT" -version | head -1 | sed 's/ https.*//')"
