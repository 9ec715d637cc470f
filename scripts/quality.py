#!/usr/bin/env python3
"""quality.py REF_DIR TEST_DIR [--json | --tsv] — SSIMULACRA 2 of resized images
against their sources.

REF_DIR holds the sources (the benchmark corpus); TEST_DIR the images a tool made
from them, named {stem}.{ext} or {stem}.{anything}.{ext} after the source's
{stem}.{ext} (imagelake's {stem}.{preset}.{ext}, vips' %s.avif). For every test
image the reference is the SOURCE resized to the test image's exact size here,
with one high-quality filter for every tool: Pillow's LANCZOS (a full Lanczos-3
convolution, widened by the reduction factor, no DCT-domain shortcut), in sRGB
as decoded (the space thumbnailers resize in), with alpha premultiplied by
Pillow, after the EXIF orientation is applied and any non-sRGB ICC profile is
converted to sRGB. The test image is decoded by Pillow (AVIF through its own
libavif), or, for a format Pillow cannot read, converted to PNG by `vips copy`.
References are cached (see --ref-cache), so scoring several runs over the same
corpus costs the decode and resize of each source once.

The metric is SSIMULACRA 2.1, ported to numpy/scipy from libjxl's
tools/ssimulacra2.cc: XYB, six scales downscaled in linear RGB, SSIM without the
luma denominator, ringing and blurring edge maps, 1- and 4-norms, the same 108
weights and the same final mapping; the Gaussian blur is libjxl's recursive one
(Charalampidis 2016, sigma 1.5, zero-padded borders), not an exact Gaussian.
A source with alpha is scored as the tool does: both images blended on a dark
(0.1) and a light (0.9) background, the worse score kept. Scores: 100 is
identical; about 90 very high quality, 70 high, 50 medium, 30 low.

Output: mean score (and median, 10th percentile, worst file), total bytes of the
test images, and bits per pixel (8 * bytes / pixels of the test images).
--json prints every file's score too; --tsv prints one line for scripts:
"count<TAB>mean<TAB>bytes<TAB>bpp". --self-test [IMAGE] checks the metric
(identical images score 100; stronger JPEG compression scores lower).

Needs numpy, scipy and Pillow (scripts/requirements-test.txt; run it with the
project venv's python, $IMAGELAKE_CACHE/venv/bin/python).
"""

import argparse
import concurrent.futures
import hashlib
import io
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image, ImageCms, ImageOps
from scipy.signal import lfilter

Image.MAX_IMAGE_PIXELS = None  # sources are trusted benchmark files

IMAGE_EXTS = {".avif", ".heic", ".heif", ".jpg", ".jpeg", ".png", ".webp", ".gif", ".tif", ".tiff", ".jxl"}
# Bump when the way references are made changes, so cached ones are not reused.
REF_VERSION = "lanczos-srgb-1"

# --------------------------------------------------------------------------
# SSIMULACRA 2.1 (libjxl tools/ssimulacra2.cc, April 2023 version)
# --------------------------------------------------------------------------

K_C2 = 0.0009
NUM_SCALES = 6

# Opsin absorbance (lib/jxl/cms/opsin_params.h), float32 as in libjxl.
_M = np.array(
    [
        [0.30, 1.0 - 0.078 - 0.30, 0.078],
        [0.23, 1.0 - 0.078 - 0.23, 0.078],
        [0.24342268924547819, 0.20476744424496821, 1.0 - 0.24342268924547819 - 0.20476744424496821],
    ],
    dtype=np.float32,
).astype(np.float64)
_BIAS = float(np.float32(0.0037930732552754493))
_CBRT_BIAS = np.cbrt(_BIAS)

WEIGHTS = np.array([
    0.0, 0.0007376606707406586, 0.0, 0.0, 0.0007793481682867309, 0.0, 0.0,
    0.0004371155730107379, 0.0, 1.1041726426657346, 0.00066284834129271,
    0.00015231632783718752, 0.0, 0.0016406437456599754, 0.0, 1.8422455520539298,
    11.441172603757666, 0.0, 0.0007989109436015163, 0.000176816438078653, 0.0,
    1.8787594979546387, 10.94906990605142, 0.0, 0.0007289346991508072,
    0.9677937080626833, 0.0, 0.00014003424285435884, 0.9981766977854967,
    0.00031949755934435053, 0.0004550992113792063, 0.0, 0.0, 0.0013648766163243398,
    0.0, 0.0, 0.0, 0.0, 0.0, 7.466890328078848, 0.0, 17.445833984131262,
    0.0006235601634041466, 0.0, 0.0, 6.683678146179332, 0.00037724407979611296,
    1.027889937768264, 225.20515300849274, 0.0, 0.0, 19.213238186143016,
    0.0011401524586618361, 0.001237755635509985, 176.39317598450694, 0.0, 0.0,
    24.43300999870476, 0.28520802612117757, 0.0004485436923833408, 0.0, 0.0, 0.0,
    34.77906344483772, 44.835625328877896, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0008680556573291698, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0005313191874358747, 0.0,
    0.00016533814161379112, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0004179171803251336,
    0.0017290828234722833, 0.0, 0.0020827005846636437, 0.0, 0.0, 8.826982764996862,
    23.19243343998926, 0.0, 95.1080498811086, 0.9863978034400682, 0.9834382792465353,
    0.0012286405048278493, 171.2667255897307, 0.9807858872435379, 0.0, 0.0, 0.0,
    0.0005130064588990679, 0.0, 0.00010854057858411537,
])  # fmt: skip
assert WEIGHTS.shape == (108,)


def _recursive_gaussian(sigma=1.5):
    """CreateRecursiveGaussian (libjxl gauss_blur.cc): radius N and, for the
    three cosine terms k=1,3,5, the coefficients of o[n] = n2*in[n] - d1*o[n-1] - o[n-2]."""
    radius = math.floor(3.2795 * sigma + 0.2546 + 0.5)  # (57), std::round
    pi_div_2r = math.pi / (2.0 * radius)
    omega = [pi_div_2r, 3.0 * pi_div_2r, 5.0 * pi_div_2r]
    p = [1.0 / math.tan(0.5 * omega[0]), -1.0 / math.tan(0.5 * omega[1]), 1.0 / math.tan(0.5 * omega[2])]
    r = [p[0] * p[0] / math.sin(omega[0]), -p[1] * p[1] / math.sin(omega[1]), p[2] * p[2] / math.sin(omega[2])]
    rho = [math.exp(-0.5 * sigma * sigma * w * w) / radius for w in omega]
    d13 = p[0] * r[1] - r[0] * p[1]
    d35 = p[1] * r[2] - r[1] * p[2]
    d51 = p[2] * r[0] - r[2] * p[0]
    zeta15, zeta35 = d35 / d13, d51 / d13
    a = np.array([p, r, [zeta15, zeta35, 1.0]])
    gamma = np.array([1.0, radius * radius - sigma * sigma, zeta15 * rho[0] + zeta35 * rho[1] + rho[2]])
    beta = np.linalg.solve(a, gamma)  # (53)
    assert abs(beta @ np.array(p) - 1.0) < 1e-12  # (39): the weights are normalised
    # libjxl stores the coefficients as float32.
    n2 = [float(np.float32(-beta[i] * math.cos(omega[i] * (radius + 1.0)))) for i in range(3)]
    d1 = [float(np.float32(-2.0 * math.cos(omega[i]))) for i in range(3)]
    return int(radius), n2, d1


_RADIUS, _N2, _D1 = _recursive_gaussian(1.5)


_N2_32 = [np.array([v], dtype=np.float32) for v in _N2]
_A_32 = [np.array([1.0, v, 1.0], dtype=np.float32) for v in _D1]


def _blur_axis(x, axis):
    """One pass of libjxl's FastGaussian along `axis` (-1: rows, -2: columns) of a
    float32 array: input in[n] = x[n-N-1] + x[n+N-1] (zero outside the image),
    three second-order recursions from zero state at n = -N+1, outputs from n = 0."""
    n = _RADIUS
    length = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (2 * n, n - 1)
    xp = np.pad(x, pad)
    m = length + n - 1
    lo = [slice(None)] * x.ndim
    hi = [slice(None)] * x.ndim
    lo[axis] = slice(0, m)
    hi[axis] = slice(2 * n, 2 * n + m)
    u = xp[tuple(lo)] + xp[tuple(hi)]
    out = lfilter(_N2_32[0], _A_32[0], u, axis=axis)
    out += lfilter(_N2_32[1], _A_32[1], u, axis=axis)
    out += lfilter(_N2_32[2], _A_32[2], u, axis=axis)
    keep = [slice(None)] * x.ndim
    keep[axis] = slice(n - 1, None)
    return out[tuple(keep)]


def _blur(x):
    """FastGaussian over the last two axes (H, W) of a float32 array: rows, then columns."""
    return _blur_axis(_blur_axis(x, -1), -2)


def _srgb_to_linear(v):
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _linear_to_positive_xyb(lin):
    """Planar (3, H, W) linear sRGB to planar XYB, made positive as MakePositiveXYB."""
    r, g, b = lin
    m0, m1, m2 = (
        np.cbrt(np.maximum(_M[c, 0] * r + _M[c, 1] * g + _M[c, 2] * b + _BIAS, 0.0)) - _CBRT_BIAS for c in range(3)
    )
    x = 0.5 * (m0 - m1)
    y = 0.5 * (m0 + m1)
    return np.stack([x * 14.0 + 0.42, y + 0.01, (m2 - y) + 0.55]).astype(np.float32)


def _downsample2(lin):
    """Downsample(in, 2, 2) of a planar image: 2x2 box average, the last row and
    column replicated for odd sizes."""
    _, h, w = lin.shape
    if h % 2:
        lin = np.concatenate([lin, lin[:, -1:]], axis=1)
    if w % 2:
        lin = np.concatenate([lin, lin[:, :, -1:]], axis=2)
    return 0.25 * (lin[:, 0::2, 0::2] + lin[:, 1::2, 0::2] + lin[:, 0::2, 1::2] + lin[:, 1::2, 1::2])


def _means(a):
    """Per-plane 1-norm and 4-norm of (3, H, W), summed in double as libjxl does."""
    return a.mean(axis=(1, 2), dtype=np.float64), ((a.astype(np.float64) ** 4).mean(axis=(1, 2))) ** 0.25


def _scale_norms(img1, img2):
    """avg_ssim (6) and avg_edgediff (12) of one scale, as SSIMMap and EdgeDiffMap."""
    s11, s22, s12, mu1, mu2 = _blur(np.stack([img1 * img1, img2 * img2, img1 * img2, img1, img2]))
    num_m = 1.0 - (mu1 - mu2) ** 2
    num_s = 2.0 * (s12 - mu1 * mu2) + K_C2
    denom_s = (s11 - mu1 * mu1) + (s22 - mu2 * mu2) + K_C2
    d = np.maximum(1.0 - num_m * num_s / denom_s, 0.0)
    avg_ssim = np.empty(6)
    avg_ssim[0::2], avg_ssim[1::2] = _means(d)
    d1 = (1.0 + np.abs(img2 - mu2)) / (1.0 + np.abs(img1 - mu1)) - 1.0
    avg_edge = np.empty(12)
    avg_edge[0::4], avg_edge[1::4] = _means(np.maximum(d1, 0.0))  # ringing, blockiness
    avg_edge[2::4], avg_edge[3::4] = _means(np.maximum(-d1, 0.0))  # blurring, smoothing
    return avg_ssim, avg_edge


def _score(scales):
    ssim = 0.0
    i = 0
    for c in range(3):
        for avg_ssim, avg_edge in scales:
            for n in range(2):
                ssim += WEIGHTS[i] * abs(avg_ssim[c * 2 + n])
                ssim += WEIGHTS[i + 1] * abs(avg_edge[c * 4 + n])
                ssim += WEIGHTS[i + 2] * abs(avg_edge[c * 4 + n + 2])
                i += 3
    ssim *= 0.9562382616834844
    ssim = 2.326765642916932 * ssim - 0.020884521182843837 * ssim**2 + 6.248496625763138e-05 * ssim**3
    return 100.0 - 10.0 * ssim**0.6276336467831387 if ssim > 0 else 100.0


def _ssimulacra2_rgb(orig, dist):
    """Score of two HxWx3 float arrays holding sRGB-encoded values in 0..1."""
    # Planar float32, as libjxl's Image3F.
    lin1, lin2 = (np.ascontiguousarray(_srgb_to_linear(a).transpose(2, 0, 1), dtype=np.float32) for a in (orig, dist))
    scales = []
    for scale in range(NUM_SCALES):
        # As ComputeSSIMULACRA2: the size test is on the previous scale.
        if scale:
            if lin1.shape[1] < 8 or lin1.shape[2] < 8:
                break
            lin1, lin2 = _downsample2(lin1), _downsample2(lin2)
        scales.append(_scale_norms(_linear_to_positive_xyb(lin1), _linear_to_positive_xyb(lin2)))
    return _score(scales)


def ssimulacra2(orig, dist, orig_alpha=None, dist_alpha=None):
    """SSIMULACRA 2.1 of `dist` against `orig` (HxWx3 sRGB floats in 0..1, alphas
    HxW in 0..1 or None), as libjxl's ssimulacra2 tool: when the original has
    alpha, both are blended on 0.1 and on 0.9 grey and the lower score is kept."""
    if orig.shape != dist.shape:
        raise ValueError(f"size mismatch: {orig.shape} vs {dist.shape}")
    if orig.shape[0] < 8 or orig.shape[1] < 8:
        raise ValueError("images must be at least 8x8")
    if orig_alpha is None:
        return _ssimulacra2_rgb(orig, dist)
    opaque = orig_alpha.min() >= 1.0 and (dist_alpha is None or dist_alpha.min() >= 1.0)
    scores = []
    for bg in (0.1,) if opaque else (0.1, 0.9):  # blending on any bg is a no-op when opaque
        o = orig_alpha[..., None] * orig + (1.0 - orig_alpha[..., None]) * bg
        d = dist if dist_alpha is None else dist_alpha[..., None] * dist + (1.0 - dist_alpha[..., None]) * bg
        scores.append(_ssimulacra2_rgb(o, d))
    return min(scores)


# --------------------------------------------------------------------------
# Decoding, references, pairing
# --------------------------------------------------------------------------


def _has_alpha(im):
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info)


def _to_srgb(im):
    """Apply the EXIF orientation, convert a non-sRGB ICC profile to sRGB, and
    return an RGB or RGBA image."""
    im = ImageOps.exif_transpose(im)
    alpha = _has_alpha(im)
    icc = im.info.get("icc_profile")
    im = im.convert("RGBA" if alpha else "RGB")
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            desc = ImageCms.getProfileDescription(src).strip()
        except (OSError, ImageCms.PyCMSError):
            src, desc = None, ""
        if src is not None and not desc.startswith("sRGB"):
            rgb = ImageCms.profileToProfile(
                im.convert("RGB"), src, ImageCms.createProfile("sRGB"), renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC
            )
            if alpha:
                rgb.putalpha(im.getchannel("A"))
            im = rgb
    return im


def _open_any(path):
    """Open with Pillow; for a format it cannot read, let vips convert it to PNG."""
    try:
        im = Image.open(path)
        im.load()
        return im
    except Exception:  # noqa: BLE001 - any Pillow failure falls back to vips
        vips = shutil.which("vips")
        if not vips:
            raise
        with tempfile.TemporaryDirectory() as tmp:
            png = os.path.join(tmp, "x.png")
            subprocess.run([vips, "copy", path, png], check=True, capture_output=True)
            im = Image.open(png)
            im.load()
            return im


def _arrays(im):
    a = np.asarray(im, dtype=np.float64) / 255.0
    if a.shape[-1] == 4:
        return a[..., :3], a[..., 3]
    return a, None


def _reference(src, size, cache_dir):
    """The source resized to `size` (w, h) with LANCZOS in sRGB; cached as PNG."""
    st = os.stat(src)
    key = hashlib.sha1(f"{os.path.abspath(src)}|{st.st_size}|{st.st_mtime_ns}|{size}|{REF_VERSION}".encode()).hexdigest()[:16]
    cached = None
    if cache_dir:
        stem = os.path.splitext(os.path.basename(src))[0]
        cached = os.path.join(cache_dir, f"{stem}.{size[0]}x{size[1]}.{key}.png")
        if os.path.exists(cached):
            return Image.open(cached)
    im = _to_srgb(Image.open(src))
    ref = im.resize(size, Image.Resampling.LANCZOS)
    if cached:
        os.makedirs(cache_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".png")
        os.close(fd)
        ref.save(tmp, compress_level=1)
        os.replace(tmp, cached)  # atomic: parallel runs may write the same file
    return ref


def _score_pair(test, src, cache_dir):
    dist_im = _to_srgb(_open_any(test))
    size = dist_im.size
    sw, sh = _to_srgb_size(src)
    w, h = size
    # A fitted image keeps the aspect ratio up to rounding; a crop would be
    # compared with a squashed reference, so refuse it.
    if abs(w * sh / sw - h) > 1.5 and abs(h * sw / sh - w) > 1.5:
        raise ValueError(f"{os.path.basename(test)}: {w}x{h} is not the aspect ratio of its source {sw}x{sh} (cropped?)")
    ref_im = _reference(src, size, cache_dir)
    orig, orig_alpha = _arrays(ref_im.convert("RGBA" if _has_alpha(ref_im) else "RGB"))
    dist, dist_alpha = _arrays(dist_im)
    score = ssimulacra2(orig, dist, orig_alpha, dist_alpha)
    return {
        "file": os.path.basename(test),
        "source": os.path.basename(src),
        "width": w,
        "height": h,
        "bytes": os.path.getsize(test),
        "alpha": dist_alpha is not None,
        "ssimulacra2": round(score, 4),
    }


def _to_srgb_size(src):
    im = Image.open(src)
    w, h = im.size
    if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated by 90 degrees
        w, h = h, w
    return w, h


def pair_files(ref_dir, test_dir):
    """[(test_path, source_path)], and test files without a source."""
    stems = {}
    for name in os.listdir(ref_dir):
        path = os.path.join(ref_dir, name)
        root, ext = os.path.splitext(name)
        if ext.lower() in IMAGE_EXTS and os.path.isfile(path) and not name.startswith("."):
            stems[root] = path
    pairs, unmatched = [], []
    for name in sorted(os.listdir(test_dir)):
        path = os.path.join(test_dir, name)
        if name.startswith(".") or not os.path.isfile(path) or os.path.splitext(name)[1].lower() not in IMAGE_EXTS:
            continue
        parts = name.split(".")
        # Longest stem first: {stem}.{ext}, then {stem}.{anything}.{ext}, ...
        src = next((stems[".".join(parts[:k])] for k in range(len(parts) - 1, 0, -1) if ".".join(parts[:k]) in stems), None)
        if src:
            pairs.append((path, src))
        else:
            unmatched.append(name)
    return pairs, unmatched


def summarise(results):
    scores = [r["ssimulacra2"] for r in results]
    total_bytes = sum(r["bytes"] for r in results)
    pixels = sum(r["width"] * r["height"] for r in results)
    worst = min(results, key=lambda r: r["ssimulacra2"])
    return {
        "metric": "SSIMULACRA2 (2.1, libjxl port, recursive Gaussian)",
        "reference": "source resized to each test image's size with Pillow LANCZOS in sRGB",
        "count": len(results),
        "mean": round(statistics.fmean(scores), 3),
        "median": round(statistics.median(scores), 3),
        "p10": round(float(np.percentile(scores, 10)), 3),
        "min": worst["ssimulacra2"],
        "min_file": worst["file"],
        "bytes": total_bytes,
        "pixels": pixels,
        "bpp": round(8.0 * total_bytes / pixels, 4) if pixels else 0.0,
    }


def self_test(image):
    """Identical images score 100; a JPEG ladder scores lower as quality drops."""
    im = _to_srgb(Image.open(image)).convert("RGB")
    im.thumbnail((512, 512), Image.Resampling.LANCZOS)
    orig, _ = _arrays(im)
    ok = True
    same = ssimulacra2(orig, orig.copy())
    print(f"identical: {same:.4f} (want 100)")
    ok &= abs(same - 100.0) < 1e-9
    prev = 100.0
    for q in (95, 90, 80, 70, 50, 30, 10):
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=q)
        dist, _ = _arrays(Image.open(buf).convert("RGB"))
        s = ssimulacra2(orig, dist)
        print(f"JPEG q{q:<3d} {len(buf.getvalue()):7d} bytes  SSIMULACRA2 {s:7.3f}")
        ok &= s < prev
        prev = s
    shifted = np.clip(orig + 2.0 / 255.0, 0.0, 1.0)
    s = ssimulacra2(orig, shifted)
    print(f"+2/255 brightness: {s:.3f} (want a high score, well above the q50 JPEG)")
    print("self-test", "passed" if ok else "FAILED")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ref_dir", nargs="?", help="the sources (corpus)")
    ap.add_argument("test_dir", nargs="?", help="the resized images to score")
    out = ap.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the summary and every file's score as JSON")
    out.add_argument("--tsv", action="store_true", help="print 'count mean bytes bpp' tab-separated on one line")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel workers (default: all cores)")
    cache = os.path.join(os.environ.get("IMAGELAKE_CACHE", os.path.expanduser("~/.cache/imagelake")), "quality-refs")
    ap.add_argument("--ref-cache", default=cache, help=f"where references are cached (default {cache}; '' disables)")
    ap.add_argument("--self-test", metavar="IMAGE", help="check the metric on IMAGE and exit")
    args = ap.parse_args()

    if args.self_test:
        sys.exit(0 if self_test(args.self_test) else 1)
    if not args.ref_dir or not args.test_dir:
        ap.error("REF_DIR and TEST_DIR are required")

    pairs, unmatched = pair_files(args.ref_dir, args.test_dir)
    if unmatched:
        sys.exit(f"quality.py: no source in {args.ref_dir} for: {' '.join(unmatched)}")
    if not pairs:
        sys.exit(f"quality.py: no image in {args.test_dir}")

    cache_dir = args.ref_cache or None
    try:
        if args.jobs > 1:
            with concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs) as ex:
                results = list(ex.map(_score_pair, *zip(*pairs), [cache_dir] * len(pairs)))
        else:
            results = [_score_pair(t, s, cache_dir) for t, s in pairs]
    except ValueError as e:  # a size that does not fit its source, or a too small image
        sys.exit(f"quality.py: {e}")

    summary = summarise(results)
    if args.json:
        json.dump({**summary, "files": results}, sys.stdout, indent=1)
        print()
    elif args.tsv:
        print(f"{summary['count']}\t{summary['mean']:.3f}\t{summary['bytes']}\t{summary['bpp']:.4f}")
    else:
        print(f"{summary['count']} images in {args.test_dir}, scored against {args.ref_dir}")
        print(
            f"SSIMULACRA2 mean {summary['mean']:.2f}  median {summary['median']:.2f}  "
            f"p10 {summary['p10']:.2f}  min {summary['min']:.2f} ({summary['min_file']})"
        )
        print(
            f"bytes {summary['bytes']} ({summary['bytes'] / 1024:.1f} KiB, "
            f"{summary['bytes'] / summary['count'] / 1024:.1f} KiB per image), "
            f"{summary['bpp']:.3f} bits per pixel over {summary['pixels']} pixels"
        )


if __name__ == "__main__":
    main()
