#!/usr/bin/env bash
# huge-fixtures.sh DIR — generate the huge images of issue 13 (tests/huge_images.rs,
# scripts/bench-huge.sh) into DIR with libvips, and print DIR.
#
#   giga.jpg            40000x25000 (1 GP) baseline JPEG, Q=85
#   big.png             20000x15000 (300 MP) RGB 8-bit PNG, not interlaced
#   big-interlaced.png  the same pixels, Adam7 interlaced
#   big-tiled.tif       the same pixels, tiled TIFF (256x256 tiles, deflate)
#   max.webp            16383x16383 (WebP's largest) lossy WebP, Q=80
#   bomb.png            15800x15800 16-bit RGB PNG of zeros, about 1.5 MB (zlib level 9)
#
# and, for every file but the bomb, a reference of each default preset made by libvips:
# DIR/ref/<stem>.<preset>.png (lossless PNG), where <preset> is
#   thumb   vips thumbnail SRC OUT 120 --height 120 --crop centre --size down (cover)
#   small   vips thumbnail SRC OUT 160 --height 120 --size down                (contain)
#   medium  vips thumbnail SRC OUT 400 --height 300 --size down
#   web     vips thumbnail SRC OUT 2048 --height 2048 --size down
#
# The content is deterministic and smooth (no detail near the Nyquist frequency, no
# noise), so that a downscale can be compared with the reference: red grows left to
# right and green top to bottom, each with a slanted low-frequency wave, and blue has
# wide rings around an off-centre point (a wrong crop, flip or channel order shows).
# It is computed with vips arithmetic on a small base image (at most 4000x3000, in a
# temp directory) and blown up to its final size by one vips operation whose output is
# the file itself (`vips zoom`, integer factors; `vips resize` for WebP's 16383), so the
# big images are streamed to their encoder, never held whole. Exceptions, inherent to
# the formats' encoders: libvips holds an interlaced PNG (900 MB) and a WebP (1.3 GB)
# whole while it writes them.
#
# Idempotent and resumable: existing files are kept; each file is written under a
# temporary name and renamed when complete, so an interrupted run never leaves half a
# file; DIR/VERSION records the recipe, and a change of recipe (RECIPE below) makes
# everything again. A lock (DIR/.lock) lets concurrent runs wait for one another.
# About 90 s on 2 cores from nothing (per-file timings are logged on stderr), 95 MB in
# all: smooth content compresses far better than a photograph (17 MB for the 1 GP
# JPEG), so these files test memory and streaming, not decoding speed.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIR=${1:?usage: huge-fixtures.sh DIR}
# Bump when any recipe below changes (content, size, encoder options, references).
RECIPE=1
STAMP="imagelake huge fixtures, recipe $RECIPE"
FIXTURES=(giga.jpg big.png big-interlaced.png big-tiled.tif max.webp bomb.png)
# The default presets: name width height, and whether it is `cover` (thumb).
PRESETS=(
    "thumb 120 120 cover"
    "small 160 120 contain"
    "medium 400 300 contain"
    "web 2048 2048 contain"
)

apt_ensure libvips-tools

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
exec 9>"$DIR/.lock"
flock 9
# Under the lock, temporary files are those of runs that were killed.
rm -f "$DIR"/.tmp-* "$DIR"/ref/.tmp-*

WORK=$(mktemp -d)
cleanup() {
    rm -rf "$WORK"
    rm -f "$DIR"/.tmp-$$-* "$DIR"/ref/.tmp-$$-*
}
trap cleanup EXIT

if [[ ! -f $DIR/VERSION || $(cat "$DIR/VERSION") != "$STAMP" ]]; then
    if [[ -f $DIR/VERSION ]]; then log "recipe changed ($(head -1 "$DIR/VERSION") -> $STAMP): making everything again"; fi
    for f in "${FIXTURES[@]}"; do rm -f "${DIR:?}/$f"; done
    rm -rf "${DIR:?}/ref"
    printf '%s\n' "$STAMP" >"$DIR/.tmp-$$-VERSION"
    mv -f "$DIR/.tmp-$$-VERSION" "$DIR/VERSION"
fi
mkdir -p "$DIR/ref"

# --- the base images ------------------------------------------------------------------
# Small helpers over .v files in $WORK (vips's own format: no encoding, mmapped).
# A leading space keeps a negative number from being read as an option.
lin() { vips linear "$WORK/$1.v" "$WORK/$2.v" " $3" " $4"; } # lin IN OUT A B: A*IN + B
add() { vips add "$WORK/$1.v" "$WORK/$2.v" "$WORK/$3.v"; }
mul() { vips multiply "$WORK/$1.v" "$WORK/$2.v" "$WORK/$3.v"; }
fn() { vips math "$WORK/$1.v" "$WORK/$2.v" "$3"; } # sin, cos: of degrees
calc() { awk "BEGIN { printf \"%.17g\", $1 }"; }

# base NAME W H: $WORK/base-NAME.v, a W x H sRGB uchar image of the content (once).
# With u = x/W and v = y/H in [0, 1) and d the distance to (0.35, 0.4) in widths:
#   R = 30 + 190 u + 30 sin(360 (1.5 u + v))
#   G = 30 + 190 v + 30 sin(360 (2 v - 0.7 u) + 40)
#   B = 128 + 80 cos(360 d / 0.5)
base() {
    local name=$1 w=$2 h=$3 k
    if [[ -f $WORK/base-$name.v ]]; then return; fi
    k=$(calc "$h / $w")
    vips xyz "$WORK/xy.v" "$w" "$h"
    vips extract_band "$WORK/xy.v" "$WORK/x.v" 0
    vips extract_band "$WORK/xy.v" "$WORK/y.v" 1
    lin x u "$(calc "1 / $w")" 0
    lin y v "$(calc "1 / $h")" 0
    # R
    lin u a 1.5 0; add a v p; lin p p2 360 0; fn p2 s sin; lin s s2 30 0
    lin u g 190 30; add g s2 r
    # G
    lin u a -0.7 0; lin v b 2 0; add a b p; lin p p2 360 40; fn p2 s sin; lin s s2 30 0
    lin v g 190 30; add g s2 gg
    # B: d in widths, so the rings are round
    lin u a 1 -0.35; mul a a a2
    lin v b "$k" "$(calc "-0.4 * $k")"; mul b b b2
    add a2 b2 d2; vips math2_const "$WORK/d2.v" "$WORK/d.v" pow 0.5
    lin d p "$(calc "360 / 0.5")" 0; fn p c cos; lin c bb 80 128
    vips bandjoin "$WORK/r.v $WORK/gg.v $WORK/bb.v" "$WORK/rgb.v"
    vips cast "$WORK/rgb.v" "$WORK/rgb8.v" uchar
    vips copy "$WORK/rgb8.v" "$WORK/base-$name.v" --interpretation srgb
    find "$WORK" -maxdepth 1 -name '*.v' ! -name 'base-*' -delete
}

# --- the fixtures: gen_NAME OUT writes the file to OUT --------------------------------
# (No `&&` chains here: `set -e` does not stop inside them.)
gen_giga() {
    base giga 4000 2500
    vips zoom "$WORK/base-giga.v" "$1[Q=85,strip]" 10 10
}
gen_big() {
    base big 4000 3000
    vips zoom "$WORK/base-big.v" "$1[compression=6,strip]" 5 5
}
gen_big_interlaced() {
    base big 4000 3000
    vips zoom "$WORK/base-big.v" "$1[compression=6,interlace,strip]" 5 5
}
gen_big_tiled() {
    base big 4000 3000
    vips zoom "$WORK/base-big.v" "$1[tile,tile-width=256,tile-height=256,compression=deflate,strip]" 5 5
}
# 2048 x 16383/2048 = 16383 exactly (a dyadic fraction); `vips resize` upsizes with a
# bicubic interpolator. `preset=icon` turns spatial noise shaping off, so the segments
# merge into one and the per-macroblock modes fit VP8's 512 KiB first partition at this
# size: with the default preset libwebp fails at effort <= 2 ("unable to encode") and
# repeats its passes for 3 minutes at 3 and 4.
gen_max() {
    base max 2048 2048
    vips resize "$WORK/base-max.v" "$1[Q=80,preset=icon,effort=2,strip]" 7.99951171875
}
gen_bomb() {
    vips black "$WORK/px.v" 1 1 --bands 3
    vips cast "$WORK/px.v" "$WORK/px16.v" ushort
    vips copy "$WORK/px16.v" "$WORK/px16rgb.v" --interpretation rgb16
    vips embed "$WORK/px16rgb.v" "$1[compression=9,strip]" 0 0 15800 15800
}

size_of() { printf '%.1f MB' "$(calc "$(stat -c %s "$1") / 1000000")"; }

# fixture FILE WIDTH HEIGHT BANDS FORMAT GEN
fixture() {
    local file=$1 w=$2 h=$3 bands=$4 format=$5 gen=$6 stem=${1%.*} t got
    if [[ -f $DIR/$file ]]; then
        log "$file: kept ($(size_of "$DIR/$file"))"
        return
    fi
    rm -f "$DIR/ref/$stem".*.png # made from the file: they go with it
    local tmp=$DIR/.tmp-$$-$file
    t=$(now)
    "$gen" "$tmp"
    got=$(vipsheader "$tmp") # "PATH: 40000x25000 uchar, 3 bands, srgb, jpegload"
    got=${got#"$tmp: "}
    [[ $got == "${w}x$h $format, $bands bands,"* ]] || die "$file: made $got, expected ${w}x$h $format, $bands bands"
    mv -f "$tmp" "$DIR/$file"
    log "$file: ${w}x$h, $(size_of "$DIR/$file") in $(elapsed "$t")"
}

# refs FILE: the four references of FILE (the missing ones).
refs() {
    local file=$1 stem=${1%.*} t made=0 line name w h fit out tmp
    t=$(now)
    for line in "${PRESETS[@]}"; do
        read -r name w h fit <<<"$line"
        out=$DIR/ref/$stem.$name.png
        [[ -f $out ]] && continue
        tmp=$DIR/ref/.tmp-$$-$stem.$name.png
        if [[ $fit == cover ]]; then
            vips thumbnail "$DIR/$file" "$tmp" "$w" --height "$h" --size down --crop centre
        else
            vips thumbnail "$DIR/$file" "$tmp" "$w" --height "$h" --size down
        fi
        mv -f "$tmp" "$out"
        made=$((made + 1))
    done
    ((made == 0)) || log "$file: $made references in $(elapsed "$t")"
}

start=$(now)
fixture giga.jpg 40000 25000 3 uchar gen_giga
fixture big.png 20000 15000 3 uchar gen_big
fixture big-interlaced.png 20000 15000 3 uchar gen_big_interlaced
fixture big-tiled.tif 20000 15000 3 uchar gen_big_tiled
fixture max.webp 16383 16383 3 uchar gen_max
fixture bomb.png 15800 15800 3 ushort gen_bomb
for f in giga.jpg big.png big-interlaced.png big-tiled.tif max.webp; do refs "$f"; done
log "huge fixtures ready in $DIR ($(du -sh "$DIR" | cut -f1)) after $(elapsed "$start")"
printf '%s\n' "$DIR"
