#!/usr/bin/env bash
# format-fixtures.sh [DIR] — build the test images of the issue "formats and colour"
# (AVIF/HEIC/BMP input, ICC profiles converted to sRGB, animation) into DIR (default
# $IMAGELAKE_CACHE/format-fixtures) and print DIR. All small (at most 1280 px on the long
# side but the bomb's logical screen; ~5 MB in all):
#
#   p3.jpg             1280x960 photo (FreshFlower.jpg of the corpus) over a strip of 14
#                      saturated patches, grey and white, converted to Display P3, with a
#                      Display P3 ICC profile (v4 matrix/TRC like Apple's, written here:
#                      Debian has none); patches 12-13 are P3 red and green themselves, out
#                      of sRGB's gamut
#   adobergb.jpg       the same in Adobe RGB (1998) (colord's AdobeRGB1998.icc embedded)
#   adobergb.webp      the same pixels, lossless WebP with an ICCP chunk
#   cmyk.jpg           the same photo in CMYK (Ghostscript's default_cmyk.icc, "Artifex CMYK
#                      SWOP", perceptual), profile embedded; written as Photoshop does: an
#                      Adobe APP14 marker (transform 0) and inverted samples (255 - ink)
#   cmyk-noprofile.jpg CMYK, no profile (the inverse of the naive formula of the photo)
#   p3-16bit.png       1024x768 16-bit RGB PNG with an iCCP chunk (Display P3): smooth
#                      gradients and four shallow ramps that band at 8 bits
#   iphone.heic        iPhone-style HEIC: HEVC 4:2:0, stored 1280x960 (landscape) with an
#                      irot (angle 3: 270 degrees anticlockwise) and EXIF orientation 6, so
#                      it displays 960x1280, upright (one coded image, not the 512x512
#                      tile grid of a real iPhone photo)
#   iphone-upright.png what iphone.heic shows (960x1280 sRGB PNG, before HEVC)
#   p3.heic            HEVC of the P3 pixels, with the ICC profile (colr prof: heif-enc 1.15
#                      keeps the profile of its PNG or JPEG input)
#   photo.avif         AV1 4:2:0 of the sRGB photo (heif-enc -A, libaom), nclx colr
#   photo.bmp          640x480 24-bit BMP (BI_RGB, bottom-up) of the sRGB photo
#   anim20.gif         20 frames of 300x200, each different (anim20.json says how)
#   anim20.webp        the same animation, lossless animated WebP
#   anim20.json        frame count, size, duration and each frame's background colour
#   bomb.gif           10,000 frames on a 1000x1000 logical screen, ~230 kB: the first frame
#                      covers the canvas, each other one is one pixel, not disposed, so a
#                      decoder composing whole frames does 10^10 pixels of work (libvips
#                      8.14's libnsgif stops at 4096 frames: "Excessive number of frames")
#   p3.icc             the Display P3 profile itself
#   MANIFEST           name, sha256, bytes and what it is, one line each
#
# iphone.heic: heif-enc 1.15.1 does not turn a JPEG's EXIF orientation into irot/imir (it
# copies the EXIF, orientation 6 included, and stores the pixels as they are), so the
# irot property is added to the file afterwards (ipco gets the box, ipma the association
# of the primary item, meta/iprp/ipco grow, iloc's file offsets move). This is checked:
# the boxes are read back (ispe 1280x960, irot 3, hvcC chroma 4:2:0, EXIF orientation 6),
# and `heif-convert` (libheif applies irot) must give 960x1280 within a mean CIEDE2000 of
# 2 of iphone-upright.png. Beware: heif-convert copies the EXIF, orientation 6 included,
# into its PNG although the pixels are already upright.
#
# Also checked: reading p3.jpg, adobergb.jpg, adobergb.webp and p3-16bit.png's values as
# sRGB (no conversion) is off by a mean CIEDE2000 over 2 (3.3, 4.7, 4.7, 2.4), measured
# with scripts/colour_check.py; the CMYK files, the BMP's depth and bomb.gif's frames.
#
# Deterministic (Pillow, LittleCMS, x265 and libaom give the same bytes run after run) and
# cached: DIR/STAMP holds this script's sha256, and a run with the same script and every
# file present returns at once. Anything else builds everything again in a temporary
# directory and moves the files in, STAMP last. A lock (DIR/.lock) serialises runs.
# Needs the project's venv with Pillow and numpy (scripts/requirements-test.txt, built by
# scripts/install.sh), the corpus (scripts/corpus.sh) and Debian's libheif-examples,
# colord-data and libgs-common, which it installs when missing. ~15 s from nothing.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIR=${1:-$IMAGELAKE_CACHE/format-fixtures}
CORPUS=${IMAGELAKE_TEST_CORPUS:-$IMAGELAKE_CACHE/corpus} # as scripts/test names it
PHOTO_NAME=FreshFlower.jpg # saturated: see the naive errors above
ADOBE_ICC=/usr/share/color/icc/colord/AdobeRGB1998.icc
CMYK_ICC=/usr/share/color/icc/ghostscript/default_cmyk.icc
CHECKER=$IMAGELAKE_SCRIPTS_DIR/colour_check.py
STAMP="imagelake format fixtures, script sha256 $(sha256_of "${BASH_SOURCE[0]}")"
declare -A WHAT=(
    [p3.jpg]="JPEG, Display P3 pixels and ICC profile (v4 matrix/TRC), 1280x960"
    [adobergb.jpg]="JPEG, Adobe RGB (1998) pixels and ICC profile, 1280x960"
    [adobergb.webp]="lossless WebP, Adobe RGB (1998) pixels, ICCP chunk, 1280x960"
    [cmyk.jpg]="CMYK JPEG, Adobe APP14 (inverted), default_cmyk.icc embedded, 1280x960"
    [cmyk-noprofile.jpg]="CMYK JPEG, Adobe APP14 (inverted), no profile, 1280x960"
    [p3-16bit.png]="16-bit RGB PNG, Display P3 iCCP, smooth gradients, 1024x768"
    [iphone.heic]="HEIC, HEVC 4:2:0, stored 1280x960 + irot 3 + EXIF orientation 6: shows 960x1280"
    [iphone-upright.png]="what iphone.heic shows: 960x1280 sRGB PNG"
    [p3.heic]="HEIC, HEVC 4:2:0, Display P3 pixels, colr prof (ICC), 1280x960"
    [photo.avif]="AVIF, AV1 4:2:0 (libaom), sRGB, colr nclx, 1280x960"
    [photo.bmp]="24-bit BMP (BI_RGB, bottom-up), sRGB, 640x480"
    [anim20.gif]="animated GIF, 20 different frames, 300x200, 100 ms, loop forever"
    [anim20.webp]="animated lossless WebP, the same 20 frames, 300x200"
    [anim20.json]="sidecar of anim20.*: frame count, size, duration, background per frame"
    [bomb.gif]="GIF bomb: 10000 frames on a 1000x1000 screen (first full, then 1 px each)"
    [p3.icc]="the Display P3 ICC profile of p3.*"
)
FIXTURES=(p3.jpg adobergb.jpg adobergb.webp cmyk.jpg cmyk-noprofile.jpg p3-16bit.png
    iphone.heic iphone-upright.png p3.heic photo.avif photo.bmp anim20.gif anim20.webp
    anim20.json bomb.gif p3.icc)

ready() {
    local f
    [[ -f $DIR/STAMP && $(<"$DIR/STAMP") == "$STAMP" && -f $DIR/MANIFEST ]] || return 1
    for f in "${FIXTURES[@]}"; do [[ -f $DIR/$f ]] || return 1; done
}

# need PACKAGE PATH...: apt-get install PACKAGE when a PATH is missing (a path starting
# with / is a file, anything else a command).
need() {
    local pkg=$1 p
    shift
    for p in "$@"; do
        if [[ $p == /* && -e $p ]] || { [[ $p != /* ]] && command -v "$p" >/dev/null; }; then
            continue
        fi
        log "installing $pkg"
        apt-get install -y -qq "$pkg" >/dev/null 2>&1 ||
            { apt-get update -qq && apt-get install -y -qq "$pkg" >/dev/null; }
        return
    done
}

# heif NAME ARGS...: heif-enc ARGS into $OUT/NAME, its chatter in a log shown on failure.
heif() {
    local name=$1
    shift
    heif-enc "$@" -o "$OUT/$name" >"$WORK/heif-enc.log" 2>&1 ||
        { tail -n 20 "$WORK/heif-enc.log" >&2; die "heif-enc failed for $name"; }
}

libheif_version() { heif-enc --help 2>&1 | sed -n 's/.*libheif version: //p' | head -1; }

main() {
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    if ready; then
        printf '%s\n' "$DIR"
        exit 0
    fi
    exec 9>"$DIR/.lock"
    flock 9
    if ready; then # made by the run we waited for
        printf '%s\n' "$DIR"
        exit 0
    fi

    need libheif-examples heif-enc heif-convert
    need colord-data "$ADOBE_ICC"
    need libgs-common "$CMYK_ICC"
    PY=$IMAGELAKE_PYTHON
    "$PY" -c 'import PIL, numpy' 2>/dev/null ||
        die "$PY lacks Pillow or numpy: run scripts/install.sh (scripts/requirements-test.txt pins them)"
    "$IMAGELAKE_SCRIPTS_DIR/corpus.sh" "$CORPUS" >/dev/null
    local photo=$CORPUS/$PHOTO_NAME start f
    [[ -f $photo ]] || die "no $photo in the corpus (scripts/corpus.sh)"

    WORK=$(mktemp -d)
    OUT=$DIR/.tmp-$$
    trap 'rm -rf "$WORK" "$OUT"' EXIT
    rm -rf "$DIR"/.tmp-* # left by runs that were killed (we hold the lock)
    mkdir -p "$OUT"
    start=$(now)
    write_tools "$WORK/fixtures.py"

    log "photo fixtures from $PHOTO_NAME (Pillow $("$PY" -c 'import PIL; print(PIL.__version__)'), LittleCMS)"
    "$PY" "$WORK/fixtures.py" images "$photo" "$OUT" "$ADOBE_ICC" "$CMYK_ICC"
    log "anim20.gif, anim20.webp, bomb.gif"
    "$PY" "$WORK/fixtures.py" anim "$OUT"
    "$PY" "$WORK/fixtures.py" bomb "$OUT/bomb.gif"
    log "HEIC and AVIF (libheif $(libheif_version): x265, libaom)"
    heif iphone-noirot.heic -q 80 -p chroma=420 "$OUT/iphone-src.jpg"
    "$PY" "$WORK/fixtures.py" irot "$OUT/iphone-noirot.heic" "$OUT/iphone.heic" 3
    heif p3.heic -q 80 -p chroma=420 "$OUT/p3-src.png"
    heif photo.avif -A -q 80 -p chroma=420 "$OUT/photo-src.png"

    log "checking the fixtures"
    "$PY" "$WORK/fixtures.py" verify "$OUT" "$WORK" "$CHECKER"

    {
        printf '# %s\n' "$STAMP"
        printf "# made from the corpus's %s (sha256 %s) with Pillow %s and libheif %s\n" \
            "$PHOTO_NAME" "$(sha256_of "$photo")" \
            "$("$PY" -c 'import PIL; print(PIL.__version__)')" "$(libheif_version)"
        printf '# name\tsha256\tbytes\twhat it is\n'
        for f in "${FIXTURES[@]}"; do
            printf '%s\t%s\t%s\t%s\n' "$f" "$(sha256_of "$OUT/$f")" "$(stat -c %s "$OUT/$f")" "${WHAT[$f]}"
        done
    } >"$OUT/MANIFEST"
    rm -f "$DIR/STAMP"
    for f in "${FIXTURES[@]}" MANIFEST; do mv -f "$OUT/$f" "$DIR/$f"; done
    rm -rf "$OUT" # the intermediate files (*-src.*, iphone-noirot.heic)
    printf '%s\n' "$STAMP" >"$DIR/.tmp-$$-STAMP"
    mv -f "$DIR/.tmp-$$-STAMP" "$DIR/STAMP" # last: the mark of a complete set
    log "format fixtures ready in $DIR ($(du -sh --exclude=.lock "$DIR" | cut -f1)) after $(elapsed "$start")"
    printf '%s\n' "$DIR"
}

# write_tools FILE: the Python half of this script (Pillow, numpy; run by the venv's
# python): fixture makers and checks, one subcommand each.
write_tools() {
    cat >"$1" <<'PY'
"""The Python half of scripts/format-fixtures.sh: python3 fixtures.py COMMAND ARGS..."""
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
from PIL import Image, ImageCms

W, H = 1280, 960  # every photo fixture: a 1280x800 photo above a 1280x160 strip of patches
PATCHES = [  # sRGB; saturated, so that a missing conversion shows (then two neutrals)
    (255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 255, 255), (255, 0, 255), (255, 255, 0),
    (255, 128, 0), (128, 0, 255), (0, 255, 128), (255, 0, 128), (0, 128, 255), (128, 255, 0),
    (200, 30, 30), (30, 160, 60), (128, 128, 128), (255, 255, 255),
]
# Written in the wide space itself over patches 12 and 13 of p3.*/adobergb.*: colours out
# of sRGB's gamut, which a conversion clips.
NATIVE = [(255, 0, 0), (0, 255, 0)]
NATIVE_AT = 12
RELATIVE = ImageCms.Intent.RELATIVE_COLORIMETRIC
PERCEPTUAL = ImageCms.Intent.PERCEPTUAL


# --- a Display P3 ICC profile, v4 matrix/TRC, like Apple's "Display P3" -------------------
def s15(v):
    return struct.pack(">i", round(v * 65536))


def xyz_tag(x, y, z):
    return b"XYZ \0\0\0\0" + s15(x) + s15(y) + s15(z)


def mluc_tag(text):
    s = text.encode("utf-16-be")
    return b"mluc\0\0\0\0" + struct.pack(">II2s2sII", 1, 12, b"en", b"US", len(s), 28) + s


def p3_profile():
    """The colorants are Apple's (P3 primaries, D65 white, Bradford-adapted to D50; they
    agree with a fresh computation to 1e-5), the curves sRGB's (parametric type 3)."""
    trc = b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + b"".join(
        s15(v) for v in (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045))
    chad = [[1.04788208, 0.0229187, -0.05021667],
            [0.02958679, 0.99047852, -0.01707458],
            [-0.00924683, 0.01507568, 0.75167847]]  # Bradford D65 -> D50
    tags = [
        (b"desc", mluc_tag("Display P3 (imagelake test fixture)")),
        (b"cprt", mluc_tag("No copyright, use freely")),
        (b"wtpt", xyz_tag(0.96420288, 1.0, 0.8249054)),
        (b"rXYZ", xyz_tag(0.51512146, 0.24119568, -0.00105286)),
        (b"gXYZ", xyz_tag(0.29197693, 0.69224548, 0.04188538)),
        (b"bXYZ", xyz_tag(0.15710449, 0.06657410, 0.78407288)),
        (b"rTRC", trc), (b"gTRC", trc), (b"bTRC", trc),
        (b"chad", b"sf32\0\0\0\0" + b"".join(s15(v) for row in chad for v in row)),
    ]
    start = 128 + 4 + 12 * len(tags)
    table, data, placed = struct.pack(">I", len(tags)), b"", {}
    for sig, body in tags:
        if body not in placed:  # the three TRCs share one copy, as in Apple's profile
            placed[body] = start + len(data)
            data += body + b"\0" * (-len(body) % 4)
        table += struct.pack(">4sII", sig, placed[body], len(body))
    header = struct.pack(">I4sI4s4s4s6H4s4sI4s4sQI", start + len(data), b"lcms", 0x04000000,
                         b"mntr", b"RGB ", b"XYZ ", 2024, 1, 1, 0, 0, 0, b"acsp", b"APPL", 0,
                         b"\0" * 4, b"\0" * 4, 0, 0)
    header += s15(0.9642) + s15(1.0) + s15(0.8249) + b"lcms" + b"\0" * 44
    profile = bytearray(header + table + data)
    # Profile ID: MD5 of the profile with flags, intent and ID zeroed (they are).
    profile[84:100] = hashlib.md5(bytes(profile)).digest()
    return bytes(profile)


# --- the photo fixtures ---------------------------------------------------------------
def base_image(photo):
    """1280x960 sRGB: the photo (centre crop to 16:10, Lanczos) over the strip of patches."""
    im = Image.open(photo).convert("RGB")
    w, h = im.size
    cw, ch = min(w, h * 16 // 10), min(h, w * 10 // 16)
    box = ((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)
    out = Image.new("RGB", (W, H))
    out.paste(im.resize((W, 800), Image.Resampling.LANCZOS, box=box), (0, 0))
    for i, c in enumerate(PATCHES):
        out.paste(c, (i * 80, 800, i * 80 + 80, H))
    return out


def portrait_image(photo):
    """960x1280 sRGB, upright: a 3:4 centre crop of the photo."""
    im = Image.open(photo).convert("RGB")
    w, h = im.size
    cw = min(w, h * 3 // 4)
    ch = cw * 4 // 3
    box = ((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)
    return im.resize((960, 1280), Image.Resampling.LANCZOS, box=box)


def to_profile(im, profile_bytes, mode="RGB", intent=RELATIVE):
    srgb = ImageCms.createProfile("sRGB")
    dst = ImageCms.ImageCmsProfile(io.BytesIO(profile_bytes))
    return ImageCms.profileToProfile(im, srgb, dst, renderingIntent=intent, outputMode=mode)


def with_native(im):
    im = im.copy()
    for i, c in enumerate(NATIVE):
        x = (NATIVE_AT + i) * 80
        im.paste(c, (x, 800, x + 80, H))
    return im


def naive_cmyk(im):
    """The inverse of the naive formula R = 255 (1 - C) (1 - K): K = 1 - max(R, G, B)."""
    rgb = np.asarray(im, dtype=np.float64) / 255
    k = 1 - rgb.max(axis=2)
    d = np.where(k < 1, 1 - k, 1)
    cmy = (1 - rgb - k[..., None]) / d[..., None]
    cmyk = np.concatenate([cmy, k[..., None]], axis=2)
    return Image.fromarray(np.round(cmyk * 255).astype(np.uint8), "CMYK")


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png16(path, rgb16, icc, icc_name):
    """A 16-bit RGB PNG (Pillow writes none) with an iCCP chunk; filter Sub on every row."""
    h, w, _ = rgb16.shape
    rows = rgb16.astype(">u2").view(np.uint8).reshape(h, w * 6)
    sub = rows.copy()
    sub[:, 6:] = rows[:, 6:] - rows[:, :-6]  # uint8 arithmetic wraps, as PNG wants
    raw = np.concatenate([np.ones((h, 1), np.uint8), sub], axis=1).tobytes()
    data = (b"\x89PNG\r\n\x1a\n"
            + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + png_chunk(b"iCCP", icc_name.encode() + b"\0\0" + zlib.compress(icc, 9))
            + png_chunk(b"IDAT", zlib.compress(raw, 9))
            + png_chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(data)


def gradients16():
    """1024x768 smooth P3 content: a hue sweep from 80% to 45% saturation (top half) and
    four shallow ramps (bottom half: orange-red, green, grey, cyan) that each span ~10
    levels of 8 bits over 1024 px, so that 8 bits show bands where 16 bits do not. Not
    fully saturated: P3's primaries clip to sRGB's, which would hide a missing conversion."""
    w, h = 1024, 768
    u = np.linspace(0, 1, w)[None, :]
    v = np.linspace(0, 1, h // 2)[:, None]
    hue = u * 6
    # Piecewise-linear HSV at V=1, saturation falling from 0.8 to 0.45 down the top half.
    r = np.clip(np.abs(hue - 3) - 1, 0, 1)
    g = np.clip(2 - np.abs(hue - 2), 0, 1)
    b = np.clip(2 - np.abs(hue - 4), 0, 1)
    s = 0.8 - 0.35 * v
    top = np.stack([1 - s * (1 - c) for c in (r, g, b)], axis=2)
    bands = []
    ramp = np.linspace(0, 0.04, w)[None, :]
    for base, channels in (((0.80, 0.20, 0.10), (0,)), ((0.20, 0.60, 0.20), (1,)),
                           ((0.30, 0.30, 0.30), (0, 1, 2)), ((0.20, 0.60, 0.60), (2,))):
        band = np.broadcast_to(np.array(base), (h // 8, w, 3)).copy()
        for c in channels:
            band[:, :, c] += ramp
        bands.append(band)
    img = np.concatenate([top] + bands, axis=0)
    return np.round(img * 65535).astype(np.uint16)


def exif_bytes(orientation):
    exif = Image.Exif()
    exif[0x010F] = "Apple"  # Make
    exif[0x0110] = "iPhone (imagelake test fixture)"  # Model
    exif[0x0112] = orientation
    exif[0x0131] = "imagelake scripts/format-fixtures.sh"  # Software
    return exif.tobytes()


def cmd_images(photo, out, adobe_icc, cmyk_icc):
    """Everything Pillow writes, and the inputs of heif-enc (the *-src.* files)."""
    p3 = p3_profile()
    with open(f"{out}/p3.icc", "wb") as f:
        f.write(p3)
    adobe = open(adobe_icc, "rb").read()
    cmyk = open(cmyk_icc, "rb").read()
    base = base_image(photo)
    base.save(f"{out}/photo-src.png")
    base.resize((640, 480), Image.Resampling.LANCZOS).save(f"{out}/photo.bmp")

    p3img = with_native(to_profile(base, p3))
    p3img.save(f"{out}/p3.jpg", quality=92, icc_profile=p3)
    p3img.save(f"{out}/p3-src.png", icc_profile=p3)
    adobeimg = with_native(to_profile(base, adobe))
    adobeimg.save(f"{out}/adobergb.jpg", quality=92, icc_profile=adobe)
    adobeimg.save(f"{out}/adobergb.webp", lossless=True, exact=True, icc_profile=adobe)
    # Pillow writes CMYK JPEGs as Photoshop does: an Adobe APP14 marker (transform 0) and
    # inverted samples (stored 255 - ink), and inverts again when it reads any CMYK JPEG.
    to_profile(base, cmyk, "CMYK", PERCEPTUAL).save(f"{out}/cmyk.jpg", quality=92,
                                                    icc_profile=cmyk)
    naive_cmyk(base).save(f"{out}/cmyk-noprofile.jpg", quality=92)
    write_png16(f"{out}/p3-16bit.png", gradients16(), p3, "Display P3")

    # iPhone-style: landscape pixels (the upright portrait turned 90 degrees anticlockwise)
    # and EXIF orientation 6 (display turned 90 degrees clockwise).
    upright = portrait_image(photo)
    upright.save(f"{out}/iphone-upright.png")
    upright.transpose(Image.Transpose.ROTATE_90).save(
        f"{out}/iphone-src.jpg", quality=95, exif=exif_bytes(6))


# --- animations -----------------------------------------------------------------------
def anim_frames():
    """20 frames of 300x200, palette images: a background of its own colour per frame, a
    white 60x60 square moving right and a black bar at the bottom as long as the frame's
    number, so every frame differs from every other one everywhere a decoder looks."""
    palette = []
    for i in range(20):
        hue = i / 20 * 6
        rgb = [np.clip(abs(hue - 3) - 1, 0, 1), np.clip(2 - abs(hue - 2), 0, 1),
               np.clip(2 - abs(hue - 4), 0, 1)]
        palette.append(tuple(int(round(40 + 180 * c)) for c in rgb))
    colours = palette + [(255, 255, 255), (0, 0, 0)]
    flat = [c for rgb in colours for c in rgb]
    flat += [0] * (768 - len(flat))
    frames = []
    for i in range(20):
        a = np.full((200, 300), i, np.uint8)
        x = 10 + i * 11
        a[70:130, x:x + 60] = 20
        a[190:200, 0:(i + 1) * 15] = 21
        im = Image.fromarray(a, "P")
        im.putpalette(flat)
        frames.append(im)
    return frames, palette


def cmd_anim(out):
    frames, palette = anim_frames()
    frames[0].save(f"{out}/anim20.gif", save_all=True, append_images=frames[1:],
                   duration=100, loop=0)
    rgb = [f.convert("RGB") for f in frames]
    rgb[0].save(f"{out}/anim20.webp", save_all=True, append_images=rgb[1:], duration=100,
                loop=0, lossless=True)
    for name in ("anim20.gif", "anim20.webp"):  # read back: 20 exact frames
        im = Image.open(f"{out}/{name}")
        assert im.n_frames == 20 and im.size == (300, 200), (name, im.n_frames, im.size)
        for i in range(20):
            im.seek(i)
            got = np.asarray(im.convert("RGB"))
            assert np.array_equal(got, np.asarray(rgb[i])), f"{name}: frame {i} differs"
    info = {
        "frames": 20, "width": 300, "height": 200, "duration_ms": 100, "loop": 0,
        "files": ["anim20.gif", "anim20.webp"],
        "background": [list(c) for c in palette],
        "note": "frame i: background[i] everywhere but a white 60x60 square at "
                "x=10+11i, y=70 and a black bar 15(i+1) px wide on rows 190-199; "
                "pixel (2,2) shows background[i]",
    }
    with open(f"{out}/anim20.json", "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")


# --- a GIF decompression bomb ---------------------------------------------------------
def lzw_gif(pixels, min_code_size):
    """GIF LZW (giflib's encoder: same code widths, clear code when the table is full)."""
    clear, eoi = 1 << min_code_size, (1 << min_code_size) + 1
    out, acc, nacc = bytearray(), 0, 0
    bits, running, max1 = min_code_size + 1, eoi + 1, 1 << (min_code_size + 1)
    table = {}

    def emit(code):
        nonlocal acc, nacc, bits, max1
        acc |= code << nacc
        nacc += bits
        while nacc >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nacc -= 8
        if running >= max1 and code <= 4095:
            bits += 1
            max1 = 1 << bits

    emit(clear)
    it = iter(pixels)
    cur = next(it)
    for p in it:
        key = (cur, p)
        if key in table:
            cur = table[key]
            continue
        emit(cur)
        cur = p
        if running >= 4095:
            emit(clear)
            running, bits, max1 = eoi + 1, min_code_size + 1, 1 << (min_code_size + 1)
            table.clear()
        else:
            table[key] = running
            running += 1
    emit(cur)
    emit(eoi)
    if nacc:
        out.append(acc & 0xFF)
    blocks = bytearray([min_code_size])
    for i in range(0, len(out), 255):
        blocks += bytes([len(out[i:i + 255])]) + out[i:i + 255]
    return bytes(blocks + b"\0")


def cmd_bomb(path, frames=10000, size=1000):
    """A size x size logical screen of `frames` frames: the first covers the canvas (black),
    each other one is a single white pixel somewhere else, not disposed. A decoder that
    composes the whole canvas per frame does frames x size^2 pixels of work (10^10) and,
    if it keeps the frames, needs 4 MB each (40 GB); the file is about 230 kB."""
    head = b"GIF89a" + struct.pack("<HHBBB", size, size, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    head += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\0\0\0"
    gce = b"\x21\xf9\x04\x04" + struct.pack("<H", 2) + b"\0\0"  # do not dispose, 20 ms
    parts = [head, gce, b"\x2c" + struct.pack("<HHHHB", 0, 0, size, size, 0),
             lzw_gif([0] * (size * size), 2)]
    dot = lzw_gif([1], 2)
    for i in range(1, frames):
        x, y = (i * 7919) % size, (i * 104729) % size
        parts += [gce, b"\x2c" + struct.pack("<HHHHB", x, y, 1, 1, 0), dot]
    with open(path, "wb") as f:
        f.write(b"".join(parts) + b"\x3b")


# --- HEIF boxes -----------------------------------------------------------------------
def boxes(data, start, end):
    """(type, offset, header size, size) of the boxes in data[start:end]."""
    off = start
    while off < end:
        size, kind = struct.unpack(">I4s", data[off:off + 8])
        hdr = 8
        if size == 1:
            size, hdr = struct.unpack(">Q", data[off + 8:off + 16])[0], 16
        elif size == 0:
            size = end - off
        yield kind, off, hdr, size
        off += size


def find(data, path, start=0, end=None):
    """The first box along path (a list of types); meta is a full box (4 more bytes)."""
    end = len(data) if end is None else end
    for kind, off, hdr, size in boxes(data, start, end):
        if kind == path[0]:
            if len(path) == 1:
                return off, hdr, size
            body = off + hdr + (4 if kind == b"meta" else 0)
            return find(data, path[1:], body, off + size)
    raise KeyError(b"/".join(path))


def read_ipma(data, off, hdr, size):
    version, flags = data[off + hdr], int.from_bytes(data[off + hdr + 1:off + hdr + 4], "big")
    p = off + hdr + 4
    count = struct.unpack(">I", data[p:p + 4])[0]
    p += 4
    entries = []
    for _ in range(count):
        if version < 1:
            item = struct.unpack(">H", data[p:p + 2])[0]
            p += 2
        else:
            item = struct.unpack(">I", data[p:p + 4])[0]
            p += 4
        n = data[p]
        p += 1
        assoc = []
        for _ in range(n):
            if flags & 1:
                v = struct.unpack(">H", data[p:p + 2])[0]
                p += 2
                assoc.append((bool(v & 0x8000), v & 0x7FFF))
            else:
                assoc.append((bool(data[p] & 0x80), data[p] & 0x7F))
                p += 1
        entries.append((item, assoc))
    return version, flags, entries


def write_ipma(version, flags, entries):
    body = bytes([version]) + flags.to_bytes(3, "big") + struct.pack(">I", len(entries))
    for item, assoc in entries:
        body += struct.pack(">H" if version < 1 else ">I", item) + bytes([len(assoc)])
        for essential, index in assoc:
            if flags & 1:
                body += struct.pack(">H", (0x8000 if essential else 0) | index)
            else:
                body += bytes([(0x80 if essential else 0) | index])
    return struct.pack(">I", 8 + len(body)) + b"ipma" + body


def iloc_shift(data, off, hdr, size, after, delta):
    """A copy of the iloc box with every file offset >= after moved by delta."""
    box = bytearray(data[off:off + size])
    p = hdr
    version = box[p]
    p += 4
    offset_size, length_size = box[p] >> 4, box[p] & 15
    base_size, index_size = box[p + 1] >> 4, (box[p + 1] & 15 if version in (1, 2) else 0)
    p += 2
    n = 2 if version < 2 else 4
    count = int.from_bytes(box[p:p + n], "big")
    p += n

    def field(pos, n):
        return int.from_bytes(box[pos:pos + n], "big") if n else 0

    def shift(pos, n):
        v = field(pos, n)
        if n and v >= after:
            box[pos:pos + n] = (v + delta).to_bytes(n, "big")

    for _ in range(count):
        p += 2 if version < 2 else 4  # item_ID
        method = 0
        if version in (1, 2):
            method = box[p + 1] & 15
            p += 2
        p += 2  # data_reference_index
        base = field(p, base_size)
        if method == 0:
            shift(p, base_size)
        p += base_size
        extents = struct.unpack(">H", box[p:p + 2])[0]
        p += 2
        for _ in range(extents):
            p += index_size
            if method == 0 and base == 0:
                shift(p, offset_size)
            p += offset_size + length_size
    return bytes(box)


def cmd_irot(src, dst, angle):
    """Copy a HEIF file adding an irot property (angle x 90 degrees anticlockwise) to its
    primary item: the irot box goes at the end of ipco, its association at the end of the
    item's list (after the descriptive properties, as the spec orders them), not marked
    essential (as in Apple's files). Box sizes and iloc's file offsets are fixed up."""
    data = open(src, "rb").read()
    meta = find(data, [b"meta"])
    pitm = find(data, [b"meta", b"pitm"])
    primary = struct.unpack(">H", data[pitm[0] + pitm[1] + 4:pitm[0] + pitm[1] + 6])[0]
    ipco = find(data, [b"meta", b"iprp", b"ipco"])
    ipco_children = list(boxes(data, ipco[0] + ipco[1], ipco[0] + ipco[2]))
    if any(kind == b"irot" for kind, _, _, _ in ipco_children):
        raise SystemExit(f"{src} already has an irot")

    def rebuild(box, replace):  # box (off, hdr, size) with some children replaced
        off, hdr, size = box
        kind = data[off + 4:off + 8]
        assert hdr == 8, "64-bit box sizes are not expected here"
        pre = 4 if kind == b"meta" else 0
        body = data[off + 8:off + 8 + pre]
        for child, coff, _, csize in boxes(data, off + 8 + pre, off + size):
            body += replace.get(child, data[coff:coff + csize])
        body += replace.get(b"+", b"")
        return struct.pack(">I", 8 + len(body)) + kind + body

    irot = struct.pack(">I4sB", 9, b"irot", int(angle) & 3)
    version, flags, entries = read_ipma(data, *find(data, [b"meta", b"iprp", b"ipma"]))
    entries = [(item, assoc + [(False, len(ipco_children) + 1)] if item == primary else assoc)
               for item, assoc in entries]
    iprp = rebuild(find(data, [b"meta", b"iprp"]),
                   {b"ipco": rebuild(ipco, {b"+": irot}),
                    b"ipma": write_ipma(version, flags, entries)})
    delta = len(iprp) - find(data, [b"meta", b"iprp"])[2]
    meta_end = meta[0] + meta[2]
    iloc = iloc_shift(data, *find(data, [b"meta", b"iloc"]), meta_end, delta)
    new_meta = rebuild(meta, {b"iprp": iprp, b"iloc": iloc})
    assert len(new_meta) == meta[2] + delta
    with open(dst, "wb") as f:
        f.write(data[:meta[0]] + new_meta + data[meta_end:])


def exif_orientation(item):
    """Orientation from a HEIF Exif item (4-byte offset to the TIFF header, then TIFF)."""
    tiff = item[4 + struct.unpack(">I", item[:4])[0]:]
    if tiff.startswith(b"Exif\0\0"):
        tiff = tiff[6:]
    exif = Image.Exif()
    exif.load(tiff)
    return exif.get(0x0112)


def cmd_heif_info(path):
    """JSON: ispe, irot, imir, colr kinds, HEVC chroma format and EXIF orientation."""
    data = open(path, "rb").read()
    ipco = find(data, [b"meta", b"iprp", b"ipco"])
    info = {"colr": []}
    for kind, off, hdr, size in boxes(data, ipco[0] + ipco[1], ipco[0] + ipco[2]):
        body = data[off + hdr:off + size]
        if kind == b"ispe":
            info["ispe"] = list(struct.unpack(">II", body[4:12]))
        elif kind == b"irot":
            info["irot"] = body[0] & 3
        elif kind == b"imir":
            info["imir"] = body[0] & 1
        elif kind == b"colr":
            info["colr"].append(body[:4].decode())
        elif kind == b"hvcC":
            info["chroma"] = {0: "4:0:0", 1: "4:2:0", 2: "4:2:2", 3: "4:4:4"}[body[16] & 3]
        elif kind == b"av1C":
            b2 = body[2]
            info["chroma"] = "4:0:0" if b2 & 0x10 else ("4:2:0" if b2 & 0x08 and b2 & 0x04
                                                          else "4:2:2" if b2 & 0x08 else "4:4:4")
    # The Exif item: find its infe, then its extent in iloc (version 0/1, one extent).
    iinf = find(data, [b"meta", b"iinf"])
    ver = data[iinf[0] + iinf[1]]
    start = iinf[0] + iinf[1] + 4 + (2 if ver == 0 else 4)
    exif_id = None
    for kind, off, hdr, size in boxes(data, start, iinf[0] + iinf[2]):
        if kind == b"infe" and data[off + hdr] >= 2:
            item = struct.unpack(">H", data[off + hdr + 4:off + hdr + 6])[0]
            if data[off + hdr + 8:off + hdr + 12] == b"Exif":
                exif_id = item
    if exif_id is not None:
        off, hdr, size = find(data, [b"meta", b"iloc"])
        box = data[off:off + size]
        p = hdr
        version = box[p]
        osz, lsz, bsz = box[p + 4] >> 4, box[p + 4] & 15, box[p + 5] >> 4
        isz = box[p + 5] & 15 if version else 0
        count = struct.unpack(">H", box[p + 6:p + 8])[0]
        p += 8
        for _ in range(count):
            item = struct.unpack(">H", box[p:p + 2])[0]
            p += 2 + (2 if version else 0) + 2
            base = int.from_bytes(box[p:p + bsz], "big")
            p += bsz
            n = struct.unpack(">H", box[p:p + 2])[0]
            p += 2
            for _ in range(n):
                p += isz
                eo = int.from_bytes(box[p:p + osz], "big")
                el = int.from_bytes(box[p + osz:p + osz + lsz], "big")
                p += osz + lsz
                if item == exif_id:
                    info["exif_orientation"] = exif_orientation(data[base + eo:base + eo + el])
    print(json.dumps(info))


def checker_mean(checker, source, variant, *options):
    """Mean CIEDE2000 from scripts/colour_check.py --json."""
    run = subprocess.run([sys.executable, checker, source, variant, "--json", *options],
                         check=True, capture_output=True, text=True)
    return json.loads(run.stdout)["mean"]


def cmd_verify(out, work, checker):
    """Check that the fixtures are what MANIFEST says; print one line per check."""
    def ok(what, cond, detail=""):
        print(f"  {'ok  ' if cond else 'FAIL'} {what}{': ' + detail if detail else ''}",
              file=sys.stderr)
        if not cond:
            raise SystemExit(f"fixture check failed: {what}")

    info = json.loads(subprocess.run([sys.executable, __file__, "heif-info", f"{out}/iphone.heic"],
                                     check=True, capture_output=True, text=True).stdout)
    ok("iphone.heic boxes: ispe 1280x960, irot 3, HEVC 4:2:0, EXIF orientation 6",
       info.get("ispe") == [1280, 960] and info.get("irot") == 3
       and info.get("chroma") == "4:2:0" and info.get("exif_orientation") == 6, json.dumps(info))
    decoded = f"{work}/iphone-decoded.png"
    subprocess.run(["heif-convert", f"{out}/iphone.heic", decoded], check=True,
                   capture_output=True)
    size = Image.open(decoded).size
    mean = checker_mean(checker, f"{out}/iphone-upright.png", decoded)
    ok("heif-convert iphone.heic is upright (960x1280, the portrait original)",
       size == (960, 1280) and mean < 2, f"{size[0]}x{size[1]}, mean dE00 {mean:.2f}")
    info = json.loads(subprocess.run([sys.executable, __file__, "heif-info", f"{out}/p3.heic"],
                                     check=True, capture_output=True, text=True).stdout)
    ok("p3.heic keeps the ICC profile (colr prof)", "prof" in info["colr"], json.dumps(info))
    info = json.loads(subprocess.run([sys.executable, __file__, "heif-info", f"{out}/photo.avif"],
                                     check=True, capture_output=True, text=True).stdout)
    ok("photo.avif: AV1 4:2:0, 1280x960",
       info.get("chroma") == "4:2:0" and info.get("ispe") == [W, H], json.dumps(info))
    for name in ("p3.jpg", "adobergb.jpg", "adobergb.webp", "p3-16bit.png"):
        # The file's own values read as sRGB against its correct conversion: the error of
        # a pipeline without colour management.
        mean = checker_mean(checker, f"{out}/{name}", f"{out}/{name}")
        ok(f"{name}: values read as sRGB are off", mean > 2, f"mean dE00 {mean:.2f}")
    im = Image.open(f"{out}/cmyk.jpg")
    ok("cmyk.jpg: CMYK, Adobe APP14, ICC", im.mode == "CMYK" and "adobe" in im.info
       and len(im.info.get("icc_profile") or b"") > 100000)
    im = Image.open(f"{out}/cmyk-noprofile.jpg")
    ok("cmyk-noprofile.jpg: CMYK, Adobe APP14, no ICC", im.mode == "CMYK"
       and "adobe" in im.info and not im.info.get("icc_profile"))
    with open(f"{out}/photo.bmp", "rb") as f:
        head = f.read(30)
    ok("photo.bmp: 24-bit BMP", head[:2] == b"BM" and struct.unpack("<H", head[28:30])[0] == 24)
    im = Image.open(f"{out}/bomb.gif")
    size = os.path.getsize(f"{out}/bomb.gif")
    ok("bomb.gif: 10000 frames of 1000x1000, under 15 MB",
       im.n_frames == 10000 and im.size == (1000, 1000) and size < 15_000_000, f"{size} bytes")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"images": cmd_images, "anim": cmd_anim, "bomb": cmd_bomb, "irot": cmd_irot,
     "heif-info": cmd_heif_info, "verify": cmd_verify}[cmd](*args)


if __name__ == "__main__":
    main()
PY
}

main "$@"
