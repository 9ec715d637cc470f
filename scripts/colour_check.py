#!/usr/bin/env python3
"""colour_check.py — an independent colour reference for imagelake's format tests.

    colour_check.py SOURCE VARIANT [--json] [--naive] [--naive-cmyk]
                    [--cmyk-profile ICC] [--intent auto|perceptual|relative]
                    [--reference PNG] [--cover]
    colour_check.py --selftest

Answers "does VARIANT (an sRGB rendition of SOURCE made by imagelake, or by any other
tool) show the colours of SOURCE?", without libvips, with Pillow and LittleCMS only:

 1. SOURCE is decoded with Pillow (JPEG, PNG, WebP, GIF (first frame), BMP, TIFF, AVIF
    with a Pillow built with libavif, as the pinned wheels are). Pillow reads 16-bit RGB
    PNGs at 8 bits (the high byte of each sample), which adds at most ~0.5 to a mean
    CIEDE2000; 16-bit grey is scaled to 8 bits here.
 2. It is converted to sRGB with LittleCMS (Pillow's ImageCms) from its embedded ICC
    profile, with the relative colorimetric intent for RGB and grey profiles (matrix/TRC
    profiles have no other) and perceptual for CMYK (--intent overrides). An RGB image
    without a profile is taken as sRGB. CMYK: Pillow always inverts CMYK JPEG samples
    (Adobe's convention: Photoshop, Pillow and libvips all write 255 - ink with an Adobe
    APP14 marker), so the values it gives are ink amounts, 255 = full ink. A CMYK image
    without a profile needs --naive-cmyk (the naive formula R = 255 (1 - C)(1 - K),
    G = 255 (1 - M)(1 - K), B = 255 (1 - Y)(1 - K), ink in 0..1) or --cmyk-profile ICC.
    --naive ignores every embedded profile: RGB values are read as sRGB values and CMYK
    goes through the naive formula; it shows how far off a pipeline without colour
    management is.
 3. The EXIF orientation is applied (Pillow's exif_transpose). Pillow cannot read HEIC:
    give --reference PNG, an upright decode of SOURCE (`heif-convert SOURCE ref.png`;
    libheif applies irot/imir). The PNG is then used in place of SOURCE, with its own ICC
    profile if it has one, and its EXIF orientation is NOT applied: heif-convert copies
    the HEIC's EXIF, orientation tag included, into the PNG although the pixels are
    already rotated, so applying it again would turn the image twice.
 4. The sRGB reference is resized to VARIANT's exact size with Pillow's Lanczos filter
    (in gamma-encoded sRGB, like most resizers); --cover first crops it, centred, to
    VARIANT's aspect ratio (for a cover-fit preset). Alpha is flattened onto white, in
    both images. VARIANT's pixel values are taken as sRGB whatever profile it carries
    (reported, not used): producing sRGB is what is being checked. An animated VARIANT is
    compared by its first frame.
 5. CIEDE2000 (Sharma, Wu and Dalal 2005, implemented here with numpy) per pixel, from
    sRGB (IEC 61966-2-1) -> linear -> XYZ (D65) -> CIELAB (D65 white). --selftest checks
    the formula on all 34 pairs of Sharma et al.'s table to 1e-4.

Prints the mean and the 99th percentile of the per-pixel CIEDE2000, or with --json one
line {"mean":..,"p99":..,"width":..,"height":.., and informative "max", "intent",
"source_profile", "variant_profile"}. A mean under ~2 is a match for 8-bit lossy output;
a missing conversion from Display P3 or Adobe RGB gives several units. Exit status: 0
whatever the score (the caller decides), 2 when an input cannot be read or used, 1 when
--selftest fails.
"""

import argparse
import io
import json
import sys

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

INTENTS = {
    "perceptual": ImageCms.Intent.PERCEPTUAL,
    "relative": ImageCms.Intent.RELATIVE_COLORIMETRIC,
}
INTENT_NAMES = {"perceptual": "perceptual", "relative": "relative colorimetric"}

# sRGB (IEC 61966-2-1) linear RGB -> XYZ, D65. The white is the sum of the rows, so that
# sRGB white is exactly L* = 100, a* = b* = 0.
SRGB_TO_XYZ = np.array([
    [0.4124, 0.3576, 0.1805],
    [0.2126, 0.7152, 0.0722],
    [0.0193, 0.1192, 0.9505],
])
WHITE_D65 = SRGB_TO_XYZ.sum(axis=1)

# Sharma, Wu, Dalal, "The CIEDE2000 color-difference formula: implementation notes,
# supplementary test data, and mathematical observations", Color Res. Appl. 30 (2005),
# table 1: L1 a1 b1 L2 a2 b2 dE00.
SHARMA = [
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]


class InputError(Exception):
    """An input that cannot be read or used: exit status 2."""


# --- colour science ---------------------------------------------------------------------
def srgb_to_lab(rgb8):
    """(..., 3) sRGB values 0..255 -> CIELAB (D65 white)."""
    c = np.asarray(rgb8, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = lin @ SRGB_TO_XYZ.T / WHITE_D65
    eps = (6 / 29) ** 3
    f = np.where(xyz > eps, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16,
                     500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], axis=-1)


def ciede2000(lab1, lab2):
    """CIEDE2000 between two (..., 3) arrays of CIELAB, kL = kC = kH = 1 (Sharma 2005)."""
    L1, a1, b1 = np.moveaxis(np.asarray(lab1, dtype=np.float64), -1, 0)
    L2, a2, b2 = np.moveaxis(np.asarray(lab2, dtype=np.float64), -1, 0)
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    c7 = c_bar ** 7
    g = 0.5 * (1 - np.sqrt(c7 / (c7 + 25.0 ** 7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360  # arctan2(0, 0) = 0, as the paper wants
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    cprod = c1p * c2p
    dlp = L2 - L1
    dcp = c2p - c1p
    dhp = h2p - h1p
    dhp = np.where(dhp > 180, dhp - 360, np.where(dhp < -180, dhp + 360, dhp))
    dhp = np.where(cprod == 0, 0.0, dhp)
    dHp = 2 * np.sqrt(cprod) * np.sin(np.radians(dhp / 2))
    lbp = (L1 + L2) / 2
    cbp = (c1p + c2p) / 2
    hsum = h1p + h2p
    hbp = np.where(np.abs(h1p - h2p) <= 180, hsum / 2,
                   np.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2))
    hbp = np.where(cprod == 0, hsum, hbp)
    t = (1 - 0.17 * np.cos(np.radians(hbp - 30)) + 0.24 * np.cos(np.radians(2 * hbp))
         + 0.32 * np.cos(np.radians(3 * hbp + 6)) - 0.20 * np.cos(np.radians(4 * hbp - 63)))
    dtheta = 30 * np.exp(-(((hbp - 275) / 25) ** 2))
    cbp7 = cbp ** 7
    rc = 2 * np.sqrt(cbp7 / (cbp7 + 25.0 ** 7))
    sl = 1 + 0.015 * (lbp - 50) ** 2 / np.sqrt(20 + (lbp - 50) ** 2)
    sc = 1 + 0.045 * cbp
    sh = 1 + 0.015 * cbp * t
    rt = -np.sin(np.radians(2 * dtheta)) * rc
    return np.sqrt((dlp / sl) ** 2 + (dcp / sc) ** 2 + (dHp / sh) ** 2
                   + rt * (dcp / sc) * (dHp / sh))


def selftest():
    data = np.array(SHARMA)
    got = ciede2000(data[:, 0:3], data[:, 3:6])
    # Symmetric, as the formula is.
    back = ciede2000(data[:, 3:6], data[:, 0:3])
    err = np.abs(got - data[:, 6])
    ok = bool(np.all(err < 1e-4)) and bool(np.allclose(got, back, atol=1e-9))
    white = srgb_to_lab([255, 255, 255])
    red = srgb_to_lab([255, 0, 0])
    # sRGB red in CIELAB (D65) is about (53.24, 80.09, 67.20); the 4-digit matrix of the
    # standard moves it by ~0.02.
    ok = ok and np.allclose(white, [100, 0, 0], atol=1e-9)
    ok = ok and np.allclose(red, [53.24, 80.09, 67.20], atol=0.05)
    for i, (row, g) in enumerate(zip(SHARMA, got), 1):
        flag = "" if abs(g - row[6]) < 1e-4 else "  <-- FAIL"
        print(f"pair {i:2d}: expected {row[6]:.4f} got {g:.6f}{flag}")
    print(f"sRGB white -> Lab {np.round(white, 4).tolist()}, red -> {np.round(red, 2).tolist()}")
    print(f"selftest: {len(SHARMA)} Sharma pairs, max error {err.max():.2e}: "
          f"{'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


# --- images -----------------------------------------------------------------------------
def open_image(path, what):
    try:
        im = Image.open(path)
        im.seek(0)
        im.load()
    except (UnidentifiedImageError, OSError, ValueError, EOFError) as e:
        hint = ""
        if str(path).lower().endswith((".heic", ".heif")):
            hint = " (Pillow cannot read HEIC: pass --reference PNG made with heif-convert)"
        raise InputError(f"cannot read {what} {path}: {e}{hint}") from e
    return im


def profile_of(im):
    icc = im.info.get("icc_profile")
    if not icc:
        return None
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, ImageCms.PyCMSError, TypeError):
        print(f"warning: unreadable embedded ICC profile ({len(icc)} bytes) ignored",
              file=sys.stderr)
        return None


def describe(profile):
    if profile is None:
        return None
    try:
        return ImageCms.getProfileDescription(profile).strip() or "(no description)"
    except ImageCms.PyCMSError:
        return "(no description)"


def to_8bit(im):
    """Pillow's wider modes (16-bit grey, 32-bit integer, float) as 8-bit L."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im, dtype=np.float64)
        scale = 257.0 if a.max(initial=0) > 255 or im.mode.startswith("I;16") else 1.0
        return Image.fromarray(np.clip(np.round(a / scale), 0, 255).astype(np.uint8), "L")
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        return Image.fromarray(np.clip(np.round(a * 255), 0, 255).astype(np.uint8), "L")
    return im


def split_alpha(im):
    """(colour image, alpha or None) for any mode Pillow gives."""
    im = to_8bit(im)
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode == "PA":
        im = im.convert("RGBA")
    elif im.mode == "1":
        im = im.convert("L")
    elif im.mode in ("RGBX", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    elif im.mode == "RGBa":
        im = im.convert("RGBA")
    elif im.mode == "La":
        im = im.convert("LA")
    elif im.mode == "L" and "transparency" in im.info:
        im = im.convert("LA")
    elif im.mode == "RGB" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA"):
        return im.convert(im.mode[:-1]), im.getchannel("A")
    return im, None


def naive_cmyk_to_rgb(im):
    ink = np.asarray(im, dtype=np.float64) / 255.0  # Pillow: 255 = full ink
    k = 1 - ink[..., 3:4]
    rgb = 255 * (1 - ink[..., :3]) * k
    return Image.fromarray(np.clip(np.round(rgb), 0, 255).astype(np.uint8), "RGB")


def source_to_srgb(im, args, from_reference):
    """The sRGB (and alpha) reference of a decoded source, and a dict describing it."""
    profile = None if args.naive else profile_of(im)
    if not from_reference:
        im = ImageOps.exif_transpose(im)
    colour, alpha = split_alpha(im)
    info = {"source_profile": describe(profile), "intent": None}
    space = profile.profile.xcolor_space.strip() if profile is not None else None
    wanted = {"RGB": "RGB", "L": "GRAY", "CMYK": "CMYK"}.get(colour.mode)
    if profile is not None and space != wanted:
        print(f"warning: a {space} profile on a {colour.mode} image is ignored", file=sys.stderr)
        profile, info["source_profile"] = None, None

    if colour.mode == "CMYK" and profile is None:
        if args.naive or args.naive_cmyk:
            info["intent"] = "naive CMYK formula"
            return naive_cmyk_to_rgb(colour), alpha, info
        if not args.cmyk_profile:
            raise InputError("CMYK source without an ICC profile: pass --naive-cmyk or "
                             "--cmyk-profile ICC")
        try:
            profile = ImageCms.getOpenProfile(args.cmyk_profile)
        except (OSError, ImageCms.PyCMSError) as e:
            raise InputError(f"cannot read --cmyk-profile {args.cmyk_profile}: {e}") from e
        info["source_profile"] = f"{describe(profile)} (--cmyk-profile)"

    if profile is None:  # untagged RGB or grey: sRGB
        info["intent"] = "none (sRGB assumed)" if not args.naive else "none (--naive)"
        return colour.convert("RGB"), alpha, info

    intent = args.intent
    if intent == "auto":
        intent = "perceptual" if colour.mode == "CMYK" else "relative"
    info["intent"] = INTENT_NAMES[intent]
    try:
        srgb = ImageCms.createProfile("sRGB")
        out = ImageCms.profileToProfile(colour, profile, srgb, renderingIntent=INTENTS[intent],
                                        outputMode="RGB")
    except ImageCms.PyCMSError as e:
        raise InputError(f"LittleCMS cannot convert the source to sRGB: {e}") from e
    return out, alpha, info


def flatten(colour, alpha):
    """RGB float array, alpha (if any) composited onto white."""
    rgb = np.asarray(colour.convert("RGB"), dtype=np.float64)
    if alpha is None:
        return rgb
    a = np.asarray(alpha, dtype=np.float64)[..., None] / 255.0
    return rgb * a + 255.0 * (1 - a)


def cover_box(size, target):
    """The centred crop of size with target's aspect ratio."""
    w, h = size
    tw, th = target
    if w * th > h * tw:
        cw = h * tw / th
        return ((w - cw) / 2, 0, (w + cw) / 2, h)
    ch = w * th / tw
    return (0, (h - ch) / 2, w, (h + ch) / 2)


def compare(args):
    from_reference = args.reference is not None
    source = open_image(args.reference if from_reference else args.source, "source")
    variant = open_image(args.variant, "variant")
    size = variant.size

    ref_colour, ref_alpha, info = source_to_srgb(source, args, from_reference)
    box = cover_box(ref_colour.size, size) if args.cover else None
    if (not args.cover and abs(ref_colour.size[0] * size[1] - ref_colour.size[1] * size[0])
            > 0.02 * ref_colour.size[0] * size[1]):
        print(f"warning: aspect ratios differ (source {ref_colour.size[0]}x"
              f"{ref_colour.size[1]}, variant {size[0]}x{size[1]}); --cover crops",
              file=sys.stderr)
    ref_colour = ref_colour.resize(size, Image.Resampling.LANCZOS, box=box)
    if ref_alpha is not None:
        ref_alpha = ref_alpha.resize(size, Image.Resampling.LANCZOS, box=box)
    ref = flatten(ref_colour, ref_alpha)

    var_profile = describe(profile_of(variant))
    var_colour, var_alpha = split_alpha(variant)
    if var_colour.mode == "CMYK":
        var_colour = naive_cmyk_to_rgb(var_colour)
    var = flatten(var_colour, var_alpha)

    # Row chunks bound the temporaries (~20 float64 arrays of the chunk).
    de = np.empty(size[1] * size[0])
    step = max(1, 500_000 // size[0])
    for y in range(0, size[1], step):
        chunk = ciede2000(srgb_to_lab(ref[y:y + step]), srgb_to_lab(var[y:y + step]))
        de[y * size[0]:(y + chunk.shape[0]) * size[0]] = chunk.ravel()
    result = {
        "mean": round(float(de.mean()), 4),
        "p99": round(float(np.percentile(de, 99)), 4),
        "width": size[0],
        "height": size[1],
        "max": round(float(de.max()), 4),
        "intent": info["intent"],
        "source_profile": info["source_profile"],
        "variant_profile": var_profile,
    }
    if args.json:
        print(json.dumps(result))
    else:
        src_name = args.source + (f" (decoded: {args.reference})" if from_reference else "")
        print(f"source:    {src_name}, {source.size[0]}x{source.size[1]} {source.mode}, "
              f"profile: {info['source_profile'] or 'none'}")
        print(f"to sRGB:   {info['intent']}")
        print(f"variant:   {args.variant}, {size[0]}x{size[1]} {variant.mode}, "
              f"profile: {var_profile or 'none'} (values taken as sRGB)")
        print(f"CIEDE2000: mean {result['mean']:.3f}  p99 {result['p99']:.3f}  "
              f"max {result['max']:.3f}")
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", nargs="?", help="the original image")
    p.add_argument("variant", nargs="?", help="the sRGB rendition to check")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--naive", action="store_true",
                   help="ignore the source's profile: its values are sRGB (CMYK: naive)")
    p.add_argument("--naive-cmyk", action="store_true",
                   help="CMYK without a profile goes through the naive formula")
    p.add_argument("--cmyk-profile", metavar="ICC", help="profile of CMYK without one")
    p.add_argument("--intent", choices=["auto", "perceptual", "relative"], default="auto",
                   help="rendering intent (auto: perceptual for CMYK, else relative)")
    p.add_argument("--reference", metavar="PNG",
                   help="an upright decode of SOURCE to use instead (HEIC: heif-convert)")
    p.add_argument("--cover", action="store_true",
                   help="crop the reference, centred, to the variant's aspect ratio")
    p.add_argument("--selftest", action="store_true",
                   help="check CIEDE2000 on Sharma et al.'s 34 pairs")
    args = p.parse_args(argv)
    if args.selftest:
        return selftest()
    if not args.source or not args.variant:
        p.error("SOURCE and VARIANT are required (or --selftest)")
    try:
        return compare(args)
    except InputError as e:
        print(f"colour_check: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
