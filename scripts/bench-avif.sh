#!/usr/bin/env bash
# bench-avif.sh [CORPUS] — benchmark AVIF variants against libvips on two cores
# (issue 16).
#
# The job: every image of the corpus that both tools read (JPEG, PNG, WebP) fitted
# into 512x512 (never upscaled) and written as AVIF: libheif + libaom, quality
# AVIF_Q, libaom speed AVIF_SPEED, 8-bit, 4:2:0, no metadata. Each tool runs it on
# two cores (`taskset -c 0,1`), wrapped in `/usr/bin/time` for wall time and peak RSS:
#
#   imagelake   imagelake process --variants avif512 --jobs 2 --out OUT FILES...
#               with the preset { name = "avif512", width = 512, height = 512,
#               format = "avif", quality = Q, speed = S }
#   vips-xargs  VIPS_CONCURRENCY=1 vips thumbnail F OUT/STEM.avif[Q=Q,effort=E,
#               subsample-mode=on,strip] 512 --height 512 --size down
#               once per image, two at a time (xargs -P2): as used from a shell
#   vips-2proc  VIPS_CONCURRENCY=1 vipsthumbnail FILES -s '512x512>' -o OUT/%s.avif[...]
#               two processes at once, each given half the files (balanced by pixel
#               count): libvips without a process start per image
#
# Like for like: libvips 8.14's heifsave sets libaom's speed to 9 - effort, so
# E = 9 - S; it writes 8-bit for 8-bit input and, with subsample-mode=on, 4:2:0 at
# any Q (its default switches to 4:4:4 at Q >= 90; imagelake always writes 4:2:0);
# `strip` drops the EXIF/XMP/ICC it would otherwise copy (imagelake writes none; both
# write an nclx colour box). One difference remains that no option changes: libheif
# runs libaom with 4 threads for libvips (its default; vips has no knob for it), with
# 1 thread per job for imagelake.
#
# Then every output directory is scored with scripts/quality.py: SSIMULACRA2 against
# the source resized to the same size by one reference filter (Pillow LANCZOS), the
# output bytes, and bits per pixel. A warm-up pass reads every file first so that the
# page cache is equally hot for all tools.
#
# CORPUS defaults to $IMAGELAKE_CACHE/corpus, built by scripts/corpus.sh.
# Knobs:
#   AVIF_Q=N        AVIF quality 1-100 (default 50); a list ("40 50 60") runs each
#   AVIF_SPEED=N    libaom speed 0-9 (default 8); a list runs each (with each Q).
#                   The defaults: on this corpus decoding and resizing alone take
#                   libvips ~6.6 CPU-s for 58 images, so 13 images/s on two cores
#                   leaves little for the encoder; speed 8 fits (~8.2 CPU-s at Q50),
#                   speed 7 does not (~9.5), and speed 9 saves ~10% more CPU for
#                   ~15% more bytes at a lower SSIMULACRA2
#   TOOLS="..."     which rows to run (default "imagelake vips-xargs vips-2proc");
#                   without imagelake nothing is built
#   REPEAT=N        run each tool N times and keep the fastest run
#   QUALITY=0       skip the SSIMULACRA2 scoring
#   BENCH_BIN=PATH  use an already built imagelake binary instead of building it
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT=$(cd "$IMAGELAKE_SCRIPTS_DIR/.." && pwd)
CORPUS=${1:-$IMAGELAKE_CACHE/corpus}
REPEAT=${REPEAT:-1}
QUALITY=${QUALITY:-1}
read -r -a QS <<<"${AVIF_Q:-50}"
read -r -a SPEEDS <<<"${AVIF_SPEED:-8}"
read -r -a TOOL_LIST <<<"${TOOLS:-imagelake vips-xargs vips-2proc}"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$IMAGELAKE_CACHE/target}

for q in "${QS[@]}"; do
    if ! [[ $q =~ ^[0-9]+$ ]] || ((q < 1 || q > 100)); then die "AVIF_Q must be 1-100, not $q"; fi
done
for s in "${SPEEDS[@]}"; do [[ $s =~ ^[0-9]$ ]] || die "AVIF_SPEED must be 0-9, not $s"; done
for t in "${TOOL_LIST[@]}"; do
    case $t in imagelake | vips-xargs | vips-2proc) ;; *) die "unknown tool $t (imagelake, vips-xargs, vips-2proc)" ;; esac
done
want() { [[ " ${TOOL_LIST[*]} " == *" $1 "* ]]; }

"$IMAGELAKE_SCRIPTS_DIR/corpus.sh" "$CORPUS" >/dev/null

apt_ensure libvips-tools time util-linux # vipsthumbnail, /usr/bin/time, taskset

# The scorer needs numpy, scipy and Pillow from the project venv (requirements-test.txt).
if ((QUALITY)) && ! "$IMAGELAKE_PYTHON" -c 'import numpy, scipy, PIL' 2>/dev/null; then
    log "setting up the python venv for scripts/quality.py"
    IMAGELAKE_SKIP_GARAGE=1 IMAGELAKE_SKIP_CHROMIUM=1 IMAGELAKE_SKIP_POSTGRES=1 IMAGELAKE_SKIP_HAPROXY=1 \
        IMAGELAKE_SKIP_TUS_JS=1 "$IMAGELAKE_SCRIPTS_DIR/install.sh" >&2
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
RESULTS=$WORK/results.tsv

# libvips must write AVIF (libheif with an AV1 encoder).
vips black "$WORK/probe.avif[Q=50]" 16 16 >/dev/null 2>&1 || die "this libvips cannot write AVIF (libheif with libaom needed)"

if want imagelake; then
    # BENCH_BIN=path skips the build and uses that imagelake binary.
    BENCH=${BENCH_BIN:-}
    if [[ -z $BENCH ]]; then
        log "building imagelake (release)"
        (cd "$ROOT" && cargo build --release --workspace --bins) >&2
        BENCH=$CARGO_TARGET_DIR/release/imagelake
    fi
    [[ -x $BENCH ]] || die "no imagelake binary at $BENCH"
fi

mapfile -t FILES < <(find "$CORPUS" -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' -o -iname '*.webp' \) | sort)
((${#FILES[@]})) || die "no JPEG, PNG or WebP in $CORPUS"
N=${#FILES[@]}
cat "${FILES[@]}" >/dev/null # warm the page cache

# vips-2proc: split the files in two lists of about equal pixel count (largest
# first, each to the lighter list); the lists are NUL-separated for xargs -0.
if want vips-2proc; then
    for f in "${FILES[@]}"; do
        printf '%s\t%s\n' "$(($(vipsheader -f width "$f") * $(vipsheader -f height "$f")))" "$f"
    done | sort -t$'\t' -k1,1nr | awk -F'\t' -v a="$WORK/half-0" -v b="$WORK/half-1" '
        { if (sa <= sb) { printf "%s%c", $2, 0 > a; sa += $1 } else { printf "%s%c", $2, 0 > b; sb += $1 } }'
fi

# run NAME Q S CMD...: run CMD under taskset + time, REPEAT times; record the fastest.
# CMD writes its outputs to $WORK/out-NAME-qQ-sS.
run() {
    local name=$1 q=$2 s=$3
    shift 3
    local key=$name-q$q-s$s best_s="" best_kb="" i
    local OUT=$WORK/out-$key
    for ((i = 0; i < REPEAT; i++)); do
        rm -rf "$OUT" && mkdir -p "$OUT"
        /usr/bin/time -f "%e s wall, %M KB peak" -o "$WORK/time-$key" \
            taskset -c 0,1 "$@" >"$WORK/log-$key" 2>&1 ||
            die "$name (Q=$q speed=$s) failed: $(tail -5 "$WORK/log-$key")"
        local sec kb
        sec=$(awk '{print $1}' "$WORK/time-$key")
        kb=$(awk '{print $4}' "$WORK/time-$key")
        log "$name Q=$q speed=$s: $(cat "$WORK/time-$key")"
        if [[ -z $best_s ]] || awk -v a="$sec" -v b="$best_s" 'BEGIN{exit !(a<b)}'; then
            best_s=$sec best_kb=$kb
        fi
    done
    local made
    made=$(find "$OUT" -type f -name '*.avif' | wc -l)
    [[ $made -eq $N ]] || die "$name (Q=$q speed=$s) wrote $made of $N AVIF files"
    local bytes score="-" bpp="-" count
    bytes=$(find "$OUT" -type f -name '*.avif' -printf '%s\n' | awk '{b += $1} END {print b + 0}')
    if ((QUALITY)); then
        read -r count score _ bpp < <("$IMAGELAKE_PYTHON" "$IMAGELAKE_SCRIPTS_DIR/quality.py" --tsv "$CORPUS" "$OUT") ||
            die "scoring $OUT failed"
        [[ $count -eq $N ]] || die "quality.py scored $count of $N files in $OUT"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$q" "$s" "$N" "$best_s" "$best_kb" "$bytes" "$bpp" "$score" >>"$RESULTS"
}

for q in "${QS[@]}"; do
    for s in "${SPEEDS[@]}"; do
        e=$((9 - s))
        opts="Q=$q,effort=$e,subsample-mode=on,strip"
        if want imagelake; then
            # A config of its own, so that no IMAGELAKE_* variable or ./data changes the job.
            cfg=$WORK/bench-q$q-s$s.toml
            printf 'data_dir = "%s"\n\n[processor]\nvariants = [\n  { name = "avif512", width = 512, height = 512, format = "avif", quality = %d, speed = %d },\n]\n' \
                "$WORK/data" "$q" "$s" >"$cfg"
            run imagelake "$q" "$s" env -u IMAGELAKE_CONFIG "$BENCH" --config "$cfg" process --variants avif512 \
                --jobs 2 --out "$WORK/out-imagelake-q$q-s$s" "${FILES[@]}"
        fi
        if want vips-xargs; then
            # One process per image, two at a time.
            # shellcheck disable=SC2016 # the inner script expands its own arguments
            run vips-xargs "$q" "$s" env VIPS_CONCURRENCY=1 bash -c '
                out=$1 opts=$2; shift 2
                printf "%s\0" "$@" | xargs -0 -P2 -I{} sh -c '\''f=$1; b=${f##*/}; exec vips thumbnail "$f" "$2/${b%.*}.avif[$3]" 512 --height 512 --size down'\'' _ {} "$out" "$opts"
            ' _ "$WORK/out-vips-xargs-q$q-s$s" "$opts" "${FILES[@]}"
        fi
        if want vips-2proc; then
            # shellcheck disable=SC2016
            run vips-2proc "$q" "$s" env VIPS_CONCURRENCY=1 bash -c '
                out=$1 opts=$2 h0=$3 h1=$4
                for h in "$h0" "$h1"; do
                    [[ -s $h ]] && xargs -0 sh -c '\''o=$1; shift; exec vipsthumbnail "$@" -s "512x512>" -o "$o"'\'' _ "$out/%s.avif[$opts]" <"$h" &
                done
                wait -n && wait -n
            ' _ "$WORK/out-vips-2proc-q$q-s$s" "$opts" "$WORK/half-0" "$WORK/half-1"
        fi
    done
done

echo
echo "AVIF job: $N images (JPEG, PNG, WebP) from $CORPUS -> fit 512x512 (never upscaled), AVIF 8-bit 4:2:0, no metadata, two cores (taskset -c 0,1)"
printf '%-11s %4s %5s %6s %8s %9s %13s %11s %6s %12s\n' tool Q speed images seconds images/s "peak RSS MiB" "output KiB" bpp SSIMULACRA2
while IFS=$'\t' read -r name q s n sec kb bytes bpp score; do
    awk -v name="$name" -v q="$q" -v s="$s" -v n="$n" -v sec="$sec" -v kb="$kb" -v b="$bytes" -v bpp="$bpp" -v score="$score" 'BEGIN{
        printf "%-11s %4d %5d %6d %8.2f %9.2f %13.1f %11.1f %6s %12s\n", name, q, s, n, sec, (sec > 0 ? n / sec : 0), kb / 1024, b / 1024,
            (bpp == "-" ? "-" : sprintf("%.3f", bpp)), (score == "-" ? "-" : sprintf("%.2f", score)) }'
done <"$RESULTS"
echo "peak RSS: of the largest single process; the vips rows run two processes at once."
echo "SSIMULACRA2: mean over the images (scripts/quality.py; 100 = identical to the source resized by Pillow LANCZOS)."

# Targets (issue 16), per setting: imagelake at least 13 images/s and at least the
# faster libvips row's throughput; and no worse quality per byte. Both libvips rows
# write the same files, so their (bytes, SSIMULACRA2) points over the AVIF_Q list make
# one curve per speed; imagelake's score is compared with that curve's at the same
# bytes (linear between the two nearest libvips points). With one Q, or outside the
# curve, only a point that is better (or worse) on both counts decides.
if want imagelake && { want vips-xargs || want vips-2proc; }; then
    echo
    "$IMAGELAKE_PYTHON" - "$RESULTS" <<'PY'
import sys
from collections import defaultdict

rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
il, vips, curve = {}, {}, defaultdict(dict)
for name, q, s, n, sec, kb, b, bpp, score in rows:
    ips = int(n) / float(sec) if float(sec) > 0 else 0.0
    point = (ips, int(b), None if score == "-" else float(score), name)
    if name == "imagelake":
        il[(int(q), int(s))] = point
    else:
        if (int(q), int(s)) not in vips or ips > vips[(int(q), int(s))][0]:
            vips[(int(q), int(s))] = point
        if point[2] is not None:
            curve[int(s)][int(q)] = (int(b), point[2])

for (q, s), (ips, b, score, _) in sorted(il.items()):
    if (q, s) not in vips:
        continue
    vips_ips, vips_b, vips_score, vips_name = vips[(q, s)]
    fast = "PASS" if ips >= 13 and ips >= vips_ips else "FAIL"
    line = (f"Q={q} speed={s}: imagelake {ips:.2f} images/s, {vips_name} {vips_ips:.2f} "
            f"({ips / vips_ips if vips_ips else 0:.2f}x; target >= 13 and >= 1x): {fast}")
    if score is not None and vips_score is not None:
        pts = sorted(curve[s].values())
        lower = [p for p in pts if p[0] <= b]
        upper = [p for p in pts if p[0] >= b]
        if lower and upper and len(pts) >= 2:
            (b0, s0), (b1, s1) = lower[-1], upper[0]
            at = s0 if b1 == b0 else s0 + (s1 - s0) * (b - b0) / (b1 - b0)
            verdict = "PASS" if score >= at else "FAIL"
            line += (f"; SSIMULACRA2 {score:.2f} at {b / 1024:.1f} KiB, libvips {at:.2f} at the same bytes "
                     f"({score - at:+.2f}): {verdict}")
        else:
            if score >= vips_score and b <= vips_b:
                verdict = "PASS"
            elif score <= vips_score and b >= vips_b:
                verdict = "FAIL"
            else:
                verdict = "undecided: give AVIF_Q a list (e.g. \"40 50 60\") to compare at equal bytes"
            line += (f"; SSIMULACRA2 {score - vips_score:+.2f} at {b / vips_b if vips_b else 0:.3f}x the bytes "
                     f"of libvips at the same Q: {verdict}")
    print(line)
PY
fi
echo
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1); $(date -u +%Y-%m-%dT%H:%MZ)"
# shellcheck disable=SC2016 # ${Version} is dpkg-query's
echo "versions: $(vips --version 2>/dev/null | head -1); $(dpkg-query -W -f='libheif ${Version}' libheif1 2>/dev/null), $(dpkg-query -W -f='libaom ${Version}' libaom3 2>/dev/null)"
