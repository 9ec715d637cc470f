#!/usr/bin/env bash
# bench-huge.sh [--quick] [--vips-only] [DIR] — benchmark the image pipeline against
# libvips on huge images (issue 13), one core, wall time and peak memory.
#
# Fixtures: scripts/huge-fixtures.sh DIR (default $IMAGELAKE_CACHE/huge-fixtures).
# Measured: giga.jpg (>= 1 GP JPEG), big.png (>= 300 MP PNG), big-tiled.tif (>= 300 MP
# tiled TIFF); extra rows, when present: big-interlaced.png, max.webp (16383x16383).
#
# Every command runs pinned to CPU 0 (`taskset -c 0`, so `imagelake process` uses one
# thread; libvips with VIPS_CONCURRENCY=1), under `/usr/bin/time -f '%e %M'` for wall
# time and peak RSS (of the whole process tree), and `timeout` (TIMEOUT s). Each
# measurement runs 3 times (1 with --quick): the table shows the median wall time and
# the largest peak RSS of the runs. The file is read once before its runs (page cache).
#
#   (a) one variant, the `medium` preset (fit 400x300, JPEG q80):
#       imagelake   imagelake process --variants medium --out OUT FILE
#       libvips     VIPS_CONCURRENCY=1 vipsthumbnail FILE -s 400x300 -o OUT/%s.medium.jpg[Q=80]
#   (b) the four default presets: thumb 120x120 cover (centre crop) WebP q80, small
#       160x120 WebP q80, medium 400x300 JPEG q80, web 2048x2048 WebP q80 (contain,
#       never upscaled):
#       imagelake   imagelake process --out OUT FILE           (all four, one process)
#       libvips x4  four `vips thumbnail FILE ... --size down` runs, each from FILE
#                   (one process per output; wall = their sum, RSS = the largest)
#       libvips chained  `vips thumbnail` FILE to the web size, then thumb, small and
#                   medium from that web WebP: what imagelake does inside (the smaller
#                   variants are derived from the largest), as four processes.
#
# Every output is checked after every run: each expected file exists, has the
# expected format and the expected size (imagelake's rounding, +-1 px for libvips'),
# so the outputs of all tools are comparable and a tool that failed cannot look fast.
# A tool that fails (exit status, timeout, signal, wrong output) gets a FAILED row with
# the reason: for imagelake the error code it prints (e.g. image_too_large); the
# script goes on.
#
# Reading the tables: `wall x` and `RSS x` are imagelake / that libvips row (below 1x:
# imagelake faster / smaller). Targets, judged on each libvips row: `fast` imagelake's
# wall <= libvips'; `RSS<2x` imagelake's peak RSS < 2x libvips'; and on imagelake's
# row `<512` its peak RSS < 512 MiB. PASS or MISS; MISS also when imagelake failed.
#
# Options: --quick one run per measurement; --vips-only libvips rows only (no build).
# Knobs: BENCH_BIN=PATH uses that imagelake binary instead of building it;
# MAX_PIXELS=N sets [processor] max_pixels in the benchmark's config (default: the
# built-in default); TIMEOUT=S per run (default 1800); RUNS=N instead of 3.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT=$(cd "$IMAGELAKE_SCRIPTS_DIR/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$IMAGELAKE_CACHE/target}

usage() { sed -n '2,/^set -euo pipefail$/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

RUNS=${RUNS:-3}
VIPS_ONLY=0
DIR=""
for arg in "$@"; do
    case $arg in
    --quick) RUNS=1 ;;
    --vips-only) VIPS_ONLY=1 ;;
    -h | --help) usage && exit 0 ;;
    -*) die "unknown option $arg (see --help)" ;;
    *) [[ -z $DIR ]] || die "one DIR only (see --help)"; DIR=$arg ;;
    esac
done
DIR=${DIR:-$IMAGELAKE_CACHE/huge-fixtures}
TIMEOUT=${TIMEOUT:-1800}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"

apt_ensure libvips-tools time util-linux # vipsthumbnail and vipsheader, /usr/bin/time, taskset

# The presets benchmarked are the defaults; check they have not drifted.
# name width height fit ext (the output file's extension; its loader is checked too).
PRESETS=(
    "thumb 120 120 cover webp"
    "small 160 120 contain webp"
    "medium 400 300 contain jpg"
    "web 2048 2048 contain webp"
)
for line in \
    '{ name = "thumb",  width = 120,  height = 120,  format = "webp", fit = "cover", quality = 80 }' \
    '{ name = "small",  width = 160,  height = 120,  format = "webp", quality = 80 }' \
    '{ name = "medium", width = 400,  height = 300,  format = "jpeg", quality = 80 }' \
    '{ name = "web",    width = 2048, height = 2048, format = "webp", quality = 80 }'; do
    grep -qF "$line" "$ROOT/docs/config.example.toml" ||
        die "the default presets changed (no longer: $line); update this script"
done

BENCH=""
if ((!VIPS_ONLY)); then
    # BENCH_BIN=path skips the build and uses that imagelake binary.
    BENCH=${BENCH_BIN:-}
    if [[ -z $BENCH ]]; then
        log "building imagelake (release)"
        (cd "$ROOT" && cargo build --release -p imagelake --bin imagelake) >&2
        BENCH=$CARGO_TARGET_DIR/release/imagelake
    fi
    [[ -x $BENCH ]] || die "no imagelake binary at $BENCH"
fi

[[ -x $IMAGELAKE_SCRIPTS_DIR/huge-fixtures.sh ]] || die "missing $IMAGELAKE_SCRIPTS_DIR/huge-fixtures.sh"
log "fixtures in $DIR (scripts/huge-fixtures.sh)"
"$IMAGELAKE_SCRIPTS_DIR/huge-fixtures.sh" "$DIR" >&2
DIR=$(cd "$DIR" && pwd)
FILES=()
for name in giga.jpg big.png big-tiled.tif; do
    [[ -s $DIR/$name ]] || die "scripts/huge-fixtures.sh made no $DIR/$name"
    FILES+=("$DIR/$name")
done
for name in big-interlaced.png max.webp; do
    if [[ -s $DIR/$name ]]; then FILES+=("$DIR/$name"); else warn "no $DIR/$name: its extra row is left out"; fi
done

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
OUT=$WORK/out
RESULTS=$WORK/results.tsv
: >"$RESULTS"

# A config of its own, so that no IMAGELAKE_* variable or ./data changes the job.
{
    printf 'data_dir = "%s"\n' "$WORK/data"
    [[ -z ${MAX_PIXELS:-} ]] || printf '[processor]\nmax_pixels = %s\n' "$MAX_PIXELS"
} >"$WORK/bench.toml"
IL_ENV=(env)
while read -r v; do IL_ENV+=("--unset=$v"); done < <(compgen -e | grep '^IMAGELAKE_' || true)

# expect_size SRC_W SRC_H BOX_W BOX_H FIT -> "W H": imagelake's pipeline::target_size
# (contain: fit inside, rounded to the nearest pixel; cover: the box; never upscaled).
expect_size() {
    awk -v sw="$1" -v sh="$2" -v bw="$3" -v bh="$4" -v fit="$5" 'BEGIN {
        if (fit == "cover") { print (sw < bw ? sw : bw), (sh < bh ? sh : bh); exit }
        if (sw <= bw && sh <= bh) { print sw, sh; exit }
        if (sw * bh >= sh * bw) { h = int((sh * bw + int(sw / 2)) / sw); print bw, (h < 1 ? 1 : h) }
        else { w = int((sw * bh + int(sh / 2)) / sh); print (w < 1 ? 1 : w), bh }
    }'
}

# verify SRC PRESET_NAMES: check every output of SRC for those presets in $OUT.
# Sets V_DIMS ("120x120 160x107 ...") or V_ERR (and returns 1).
verify() {
    local src=$1 names=$2 stem sw sh p name bw bh fit ext f w h ew eh loader want
    stem=${src##*/}
    stem=${stem%.*}
    sw=$(vipsheader -f width "$src")
    sh=$(vipsheader -f height "$src")
    V_DIMS="" V_ERR=""
    for p in "${PRESETS[@]}"; do
        read -r name bw bh fit ext <<<"$p"
        [[ " $names " == *" $name "* ]] || continue
        f=$OUT/$stem.$name.$ext
        [[ -s $f ]] || { V_ERR="no $name output ($stem.$name.$ext)"; return 1; }
        if ! w=$(vipsheader -f width "$f" 2>/dev/null) || ! h=$(vipsheader -f height "$f" 2>/dev/null) ||
            ! loader=$(vipsheader -f vips-loader "$f" 2>/dev/null); then
            V_ERR="$name output unreadable"
            return 1
        fi
        want=webpload
        [[ $ext == jpg ]] && want=jpegload
        [[ $loader == "$want" ]] || { V_ERR="$name output is $loader, not $want"; return 1; }
        read -r ew eh < <(expect_size "$sw" "$sh" "$bw" "$bh" "$fit")
        if ((w < ew - 1 || w > ew + 1 || h < eh - 1 || h > eh + 1)); then
            V_ERR="$name output is ${w}x$h, expected ${ew}x$eh"
            return 1
        fi
        V_DIMS+="${V_DIMS:+ }${w}x$h"
    done
}

# failure_reason LOG RC TIMEFILE SRC: one line saying why a run failed.
failure_reason() {
    local logf=$1 rc=$2 timef=$3 src=$4 line sig
    if ((rc == 124)); then
        echo "timeout after ${TIMEOUT} s"
        return
    fi
    sig=$(sed -n 's/.*terminated by signal \([0-9]*\).*/\1/p' "$timef" | head -1)
    if [[ -z $sig ]] && ((rc > 128 && rc < 160)); then sig=$((rc - 128)); fi
    if [[ -n $sig ]]; then
        case $sig in
        9) echo "killed by signal 9 (SIGKILL: out of memory?)" ;;
        6) echo "aborted (signal 6): $(grep -v '^\s*$' "$logf" | tail -1 | cut -c1-120)" ;;
        *) echo "killed by signal $sig" ;;
        esac
        return
    fi
    # imagelake process prints "FILE: code: message" for a file that failed.
    line=$(grep -m1 -F -- "$src: " "$logf" || true)
    if [[ -n $line ]]; then
        line=${line#"$src: "}
        echo "${line%%:*} (${line#*: })" | cut -c1-160
        return
    fi
    echo "exit $rc: $(grep -v '^\s*$' "$logf" | tail -1 | cut -c1-140)"
}

# bench PART SRC TOOL PRESET_NAMES CMD...: run CMD (writing into $OUT) RUNS times
# pinned to CPU 0, verify the outputs of each run, and record one result row:
# part, file, tool, status (ok|FAILED), median wall s, max peak RSS KiB, sizes, reason.
bench() {
    local part=$1 src=$2 tool=$3 names=$4
    shift 4
    local i rc s kb walls=() maxkb=0 status=ok reason="" dims="" file=${src##*/}
    for ((i = 1; i <= RUNS; i++)); do
        rm -rf "$OUT" && mkdir -p "$OUT"
        rc=0
        /usr/bin/time -f '%e %M' -o "$WORK/time" \
            timeout -k 10 "$TIMEOUT" taskset -c 0 "$@" >"$WORK/log" 2>&1 || rc=$?
        read -r s kb < <(tail -1 "$WORK/time")
        if ((rc != 0)); then
            status=FAILED
            reason=$(failure_reason "$WORK/log" "$rc" "$WORK/time" "$src")
            log "($part) $file $tool run $i/$RUNS FAILED after $s s, $((kb / 1024)) MiB: $reason"
            sed 's/^/    /' "$WORK/log" | tail -5 >&2
            walls=("$s") maxkb=$kb
            break
        fi
        if ! verify "$src" "$names"; then
            status=FAILED
            reason="wrong output: $V_ERR"
            log "($part) $file $tool run $i/$RUNS FAILED: $reason"
            walls=("$s") maxkb=$kb
            break
        fi
        dims=$V_DIMS
        walls+=("$s")
        ((kb > maxkb)) && maxkb=$kb
        log "($part) $file $tool run $i/$RUNS: $s s, $((kb / 1024)) MiB, $dims"
    done
    s=$(printf '%s\n' "${walls[@]}" | sort -g | awk '{ v[NR] = $1 } END {
        printf "%.2f", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$part" "$file" "$tool" "$status" "$s" "$maxkb" "$dims" "$reason" >>"$RESULTS"
}

# shellcheck disable=SC2016 # the inner scripts expand their own arguments
VIPS_FOUR='
    set -e
    src=$1 out=$2; stem=${src##*/}; stem=${stem%.*}
    vips thumbnail "$src" "$out/$stem.thumb.webp[Q=80]" 120 --height 120 --size down --crop centre
    vips thumbnail "$src" "$out/$stem.small.webp[Q=80]" 160 --height 120 --size down
    vips thumbnail "$src" "$out/$stem.medium.jpg[Q=80]" 400 --height 300 --size down
    vips thumbnail "$src" "$out/$stem.web.webp[Q=80]" 2048 --height 2048 --size down
'
# shellcheck disable=SC2016
VIPS_CHAINED='
    set -e
    src=$1 out=$2; stem=${src##*/}; stem=${stem%.*}; web=$out/$stem.web.webp
    vips thumbnail "$src" "$web[Q=80]" 2048 --height 2048 --size down
    vips thumbnail "$web" "$out/$stem.thumb.webp[Q=80]" 120 --height 120 --size down --crop centre
    vips thumbnail "$web" "$out/$stem.small.webp[Q=80]" 160 --height 120 --size down
    vips thumbnail "$web" "$out/$stem.medium.jpg[Q=80]" 400 --height 300 --size down
'
ALL="thumb small medium web"

for f in "${FILES[@]}"; do
    log "$f: $(vipsheader "$f" 2>/dev/null | sed 's/^[^:]*: //')"
    cat "$f" >/dev/null # warm the page cache
    # (a) medium only
    if ((!VIPS_ONLY)); then
        bench a "$f" imagelake medium "${IL_ENV[@]}" "$BENCH" --config "$WORK/bench.toml" process \
            --variants medium --out "$OUT" "$f"
    fi
    bench a "$f" vipsthumbnail medium env VIPS_CONCURRENCY=1 vipsthumbnail "$f" -s 400x300 -o "$OUT/%s.medium.jpg[Q=80]"
    # (b) the four presets
    if ((!VIPS_ONLY)); then
        bench b "$f" imagelake "$ALL" "${IL_ENV[@]}" "$BENCH" --config "$WORK/bench.toml" process --out "$OUT" "$f"
    fi
    bench b "$f" "libvips x4" "$ALL" env VIPS_CONCURRENCY=1 bash -c "$VIPS_FOUR" _ "$f" "$OUT"
    bench b "$f" "libvips chained" "$ALL" env VIPS_CONCURRENCY=1 bash -c "$VIPS_CHAINED" _ "$f" "$OUT"
done

# ---- report (stdout) ----
rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]] || rev+=" + uncommitted changes"
how="median wall of $RUNS runs, largest peak RSS"
((RUNS > 1)) || how="1 run (--quick)"

echo
echo "# Huge images: imagelake against libvips, one core (scripts/bench-huge.sh)"
echo
echo "- machine: $(nproc) CPUs (nproc), $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)," \
    "$(free -g | awk '/^Mem:/{print $2}') GiB; every run on CPU 0 (taskset -c 0)"
echo "- $(vips --version 2>/dev/null | head -1) (VIPS_CONCURRENCY=1); imagelake git $rev$( ((VIPS_ONLY)) && echo ' (not run: --vips-only)')"
echo "- $(date -u +%Y-%m-%dT%H:%MZ); $how; fixtures in $DIR"
[[ -z ${MAX_PIXELS:-} ]] || echo "- imagelake config: [processor] max_pixels = $MAX_PIXELS"
echo
echo "| fixture | size | pixels | loader | bytes |"
echo "|---|---|---|---|---|"
for f in "${FILES[@]}"; do
    w=$(vipsheader -f width "$f") h=$(vipsheader -f height "$f")
    printf '| %s | %sx%s | %s MP | %s | %s MB |\n' "${f##*/}" "$w" "$h" "$(awk -v w="$w" -v h="$h" 'BEGIN{printf "%.0f", w*h/1e6}')" \
        "$(vipsheader -f vips-loader "$f")" "$(awk -v b="$(stat -c %s "$f")" 'BEGIN{printf "%.1f", b/1e6}')"
done

table() {
    local part=$1
    echo "| file | tool | wall s | peak RSS MiB | wall x | RSS x | fast | RSS<2x | <512 | outputs |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    awk -F'\t' -v part="$part" -v vo="$VIPS_ONLY" '
    function mib(kb) { return sprintf("%.0f", kb / 1024) }
    function pf(c) { return c ? "PASS" : "MISS" }
    $1 == part {
        if ($3 == "imagelake") { ils[$2] = $4; ilw[$2] = $5; ilk[$2] = $6 }
        n++; row[n] = $0
    }
    END {
        for (i = 1; i <= n; i++) {
            split(row[i], r, "\t")
            file = r[2]; tool = r[3]; ok = (r[4] == "ok")
            if (!ok) {
                printf "| %s | %s **FAILED**: %s (after %s s, %s MiB) | - | - | - | - | %s | %s | %s | - |\n", \
                    file, tool, r[8], r[5], mib(r[6]), \
                    (tool == "imagelake" ? "" : "-"), (tool == "imagelake" ? "" : "-"), (tool == "imagelake" ? "MISS" : "")
                continue
            }
            if (tool == "imagelake") {
                printf "| %s | **imagelake** | **%s** | **%s** | | | | | %s | %s |\n", file, r[5], mib(r[6]), pf(r[6] < 512 * 1024), r[7]
                continue
            }
            if (vo || !(file in ils)) { wx = "-"; rx = "-"; t1 = "-"; t2 = "-" }
            else if (ils[file] != "ok") { wx = "-"; rx = "-"; t1 = "MISS"; t2 = "MISS" }
            else {
                wx = sprintf("%.2fx", ilw[file] / (r[5] > 0 ? r[5] : 0.01))
                rx = sprintf("%.2fx", ilk[file] / (r[6] > 0 ? r[6] : 1))
                t1 = pf(ilw[file] + 0 <= r[5] + 0); t2 = pf(ilk[file] < 2 * r[6])
            }
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | | %s |\n", file, tool, r[5], mib(r[6]), wx, rx, t1, t2, r[7]
        }
    }' "$RESULTS"
}

echo
echo "## (a) medium only: fit 400x300, JPEG q80"
echo
table a
echo
echo "## (b) the four default presets: thumb 120x120 cover WebP, small 160x120 WebP, medium 400x300 JPEG, web 2048x2048 WebP (q80)"
echo
table b
echo
echo "wall x, RSS x: imagelake / that libvips row. Targets: fast = imagelake's wall <= libvips';"
echo "RSS<2x = imagelake's peak RSS < 2x libvips'; <512 = imagelake's peak RSS < 512 MiB."
echo "libvips x4: four vips thumbnail runs from the file (summed wall, largest RSS); chained: web from"
echo "the file, then thumb, small and medium from the web WebP. Outputs: sizes, in preset order."
