//! Tests of the image pipeline on images generated here.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use image::{DynamicImage, GenericImageView, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

use super::*;

/// A smooth gradient with a red block in the top-left corner (to check orientation).
fn gradient(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        if x < width / 4 && y < height / 4 {
            Rgb([230, 20, 20])
        } else {
            Rgb([(x * 255 / width.max(1)) as u8, (y * 255 / height.max(1)) as u8, 128])
        }
    })
}

fn encode_as(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("test image encodes");
    out.into_inner()
}

fn jpeg_bytes(width: u32, height: u32) -> Vec<u8> {
    encode_as(&DynamicImage::ImageRgb8(gradient(width, height)), ImageFormat::Jpeg)
}

fn png_bytes(width: u32, height: u32) -> Vec<u8> {
    encode_as(&DynamicImage::ImageRgb8(gradient(width, height)), ImageFormat::Png)
}

/// Insert an EXIF APP1 segment carrying `orientation` right after the SOI marker.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes()); // IFD0 offset
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes()); // count
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]); // padding of the value field
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A file in the temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl std::ops::Deref for TempFile {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp_file(name: &str, data: &[u8]) -> TempFile {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "imagelake-pipeline-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, data).unwrap();
    TempFile(path)
}

fn preset(name: &str, width: u32, height: u32, format: OutputFormat) -> Preset {
    Preset::new(name, width, height, format, Fit::Contain, 80)
}

fn decode_variant(v: &RenderedVariant) -> DynamicImage {
    let format = match v.format {
        OutputFormat::Jpeg => ImageFormat::Jpeg,
        OutputFormat::Png => ImageFormat::Png,
        OutputFormat::WebP => ImageFormat::WebP,
        OutputFormat::Avif => {
            let img =
                heif::decode(&mut std::io::Cursor::new(&v.bytes), v.bytes.len() as u64, u64::MAX).expect("AVIF variant decodes");
            assert_eq!((img.width(), img.height()), (v.width, v.height), "{}", v.name);
            return img;
        }
    };
    let img = image::load_from_memory_with_format(&v.bytes, format).expect("variant decodes");
    assert_eq!((img.width(), img.height()), (v.width, v.height), "{}", v.name);
    img
}

/// The variant fits its box, keeps the source's aspect ratio within a pixel, and is
/// not larger than the (upright) source.
fn assert_fits(v: &RenderedVariant, p: &Preset, src: (u32, u32)) {
    assert!(v.width <= p.width && v.height <= p.height, "{} {}x{} outside box", v.name, v.width, v.height);
    assert!(v.width <= src.0 && v.height <= src.1, "{} upscaled", v.name);
    if p.fit == Fit::Cover {
        assert_eq!((v.width, v.height), (p.width.min(src.0), p.height.min(src.1)), "{} cover size", v.name);
        return;
    }
    assert!(v.width == p.width || v.height == p.height || (v.width, v.height) == src, "{} does not fill its box", v.name);
    // The side that does not touch the box is within a pixel of the exact ratio.
    let exact_h = f64::from(v.width) * f64::from(src.1) / f64::from(src.0);
    let exact_w = f64::from(v.height) * f64::from(src.0) / f64::from(src.1);
    let off = (f64::from(v.height) - exact_h).abs().min((f64::from(v.width) - exact_w).abs());
    assert!(off <= 1.0, "{} aspect: {}x{} from {:?}", v.name, v.width, v.height, src);
}

fn render(data: &[u8], presets: &[Preset]) -> Result<(SourceInfo, Vec<RenderedVariant>), PipelineError> {
    render_bytes(data, presets, &Limits::default())
}

fn code_of(r: Result<(SourceInfo, Vec<RenderedVariant>), PipelineError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

#[test]
fn default_presets_fit_their_boxes() {
    let presets = default_presets();
    for (w, h) in [(2000, 1500), (3000, 1000), (900, 2400), (1601, 1201)] {
        let path = temp_file("photo.jpg", &jpeg_bytes(w, h));
        let (info, variants) = render_file(&path, &presets, &Limits::default()).unwrap();
        assert_eq!((info.format, info.width, info.height, info.orientation), ("jpeg", w, h, 1));
        assert_eq!(variants.len(), presets.len());
        for (v, p) in variants.iter().zip(&presets) {
            assert_eq!((v.name.as_str(), v.format), (p.name.as_str(), p.format()));
            assert_fits(v, p, (w, h));
            decode_variant(v);
        }
    }
}

#[test]
fn variant_sizes_are_exact() {
    let (_, v) = render(&jpeg_bytes(2000, 1500), &default_presets()).unwrap();
    let sizes: Vec<_> = v.iter().map(|v| (v.width, v.height)).collect();
    assert_eq!(sizes, vec![(120, 120), (160, 120), (400, 300), (2000, 1500)]);
    let (_, v) = render(&jpeg_bytes(3000, 1000), &default_presets()).unwrap();
    let sizes: Vec<_> = v.iter().map(|v| (v.width, v.height)).collect();
    assert_eq!(sizes, vec![(120, 120), (160, 53), (400, 133), (2048, 683)]);
    let formats: Vec<_> = v.iter().map(|v| v.format).collect();
    use OutputFormat::*;
    assert_eq!(formats, vec![WebP, WebP, Jpeg, WebP]);
}

/// Three bands across the long side: red, green, blue.
fn bands(w: u32, h: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| {
        let t = if w >= h { x * 3 / w } else { y * 3 / h };
        [Rgb([230, 20, 20]), Rgb([20, 230, 20]), Rgb([20, 20, 230])][t as usize]
    });
    encode_as(&DynamicImage::ImageRgb8(img), ImageFormat::Png)
}

#[test]
fn cover_fills_the_box_with_the_centre() {
    let thumb = |name| Preset::new(name, 120, 120, OutputFormat::Png, Fit::Cover, 80);
    // Landscape and portrait, alone and beside a larger contain preset it is cut from.
    for (w, h) in [(600, 200), (200, 600), (1800, 600)] {
        for presets in [vec![thumb("t")], vec![preset("big", 400, 400, OutputFormat::Png), thumb("t")]] {
            let (_, v) = render(&bands(w, h), &presets).unwrap();
            let t = v.iter().find(|v| v.name == "t").unwrap();
            assert_eq!((t.width, t.height), (120, 120), "{w}x{h}");
            let img = decode_variant(t).to_rgb8();
            for (x, y) in [(60, 60), (6, 6), (113, 113), (6, 113), (113, 6)] {
                let p = img.get_pixel(x, y);
                assert!(p[1] > 180 && p[0] < 70 && p[2] < 70, "{w}x{h} at {x},{y}: {p:?} (only the green centre band)");
            }
        }
    }
    // Smaller than the box on one side: cropped on the other, never upscaled.
    let (_, v) = render(&bands(300, 90), &[thumb("t")]).unwrap();
    assert_eq!((v[0].width, v[0].height), (120, 90));
    let (_, v) = render(&bands(60, 50), &[thumb("t")]).unwrap();
    assert_eq!((v[0].width, v[0].height), (60, 50));
}

#[test]
fn every_input_format_renders() {
    let src = DynamicImage::ImageRgb8(gradient(640, 480));
    let cases = [
        (ImageFormat::Jpeg, "jpeg"),
        (ImageFormat::Png, "png"),
        (ImageFormat::WebP, "webp"),
        (ImageFormat::Gif, "gif"),
        (ImageFormat::Tiff, "tiff"),
    ];
    let presets = vec![
        preset("small", 200, 200, OutputFormat::Jpeg),
        preset("png", 320, 320, OutputFormat::Png),
        preset("webp", 100, 100, OutputFormat::WebP),
    ];
    for (format, name) in cases {
        let src = if format == ImageFormat::Gif { DynamicImage::ImageRgba8(src.to_rgba8()) } else { src.clone() };
        let data = encode_as(&src, format);
        let (info, variants) = render(&data, &presets).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((info.format, info.width, info.height), (name, 640, 480));
        for (v, p) in variants.iter().zip(&presets) {
            assert_fits(v, p, (640, 480));
            let img = decode_variant(v);
            // Top-left stays red, bottom-right stays the gradient's end (r, g high).
            let tl = img.get_pixel(2, 2);
            assert!(tl[0] > 180 && tl[1] < 80, "{name}/{}: top-left {tl:?}", v.name);
            let br = img.get_pixel(img.width() - 2, img.height() - 2);
            assert!(br[0] > 200 && br[1] > 200, "{name}/{}: bottom-right {br:?}", v.name);
        }
    }
}

#[test]
fn exif_orientation_6_rotates_the_output() {
    // Stored landscape 600x400; orientation 6 means "rotate 90 degrees clockwise".
    let data = with_exif_orientation(&jpeg_bytes(600, 400), 6);
    let presets = vec![preset("thumb", 400, 300, OutputFormat::Jpeg), preset("big", 1000, 1000, OutputFormat::Png)];
    let (info, variants) = render(&data, &presets).unwrap();
    assert_eq!((info.width, info.height, info.orientation), (600, 400, 6));
    assert_eq!(info.upright_size(), (400, 600));
    assert_eq!((variants[0].width, variants[0].height), (200, 300));
    assert_eq!((variants[1].width, variants[1].height), (400, 600));
    for v in &variants {
        let img = decode_variant(v);
        // The red block was top-left in storage: after a clockwise turn it is top-right.
        let tr = img.get_pixel(img.width() - 3, 2);
        let tl = img.get_pixel(2, 2);
        assert!(tr[0] > 180 && tr[1] < 80, "{}: top-right {tr:?}", v.name);
        assert!(tl[0] < 150, "{}: top-left {tl:?}", v.name);
    }
}

#[test]
fn exif_orientation_3_and_8() {
    let data = with_exif_orientation(&jpeg_bytes(600, 400), 3);
    let (info, v) = render(&data, &[preset("t", 300, 300, OutputFormat::Png)]).unwrap();
    assert_eq!(info.orientation, 3);
    let img = decode_variant(&v[0]);
    assert_eq!((img.width(), img.height()), (300, 200));
    let br = img.get_pixel(img.width() - 3, img.height() - 3);
    assert!(br[0] > 180 && br[1] < 80, "rotated 180: bottom-right {br:?}");

    let data = with_exif_orientation(&jpeg_bytes(600, 400), 8);
    let (_, v) = render(&data, &[preset("t", 300, 300, OutputFormat::Png)]).unwrap();
    let img = decode_variant(&v[0]);
    assert_eq!((img.width(), img.height()), (200, 300));
    let bl = img.get_pixel(2, img.height() - 3);
    assert!(bl[0] > 180 && bl[1] < 80, "rotated 270: bottom-left {bl:?}");
}

#[test]
fn shrink_on_load_keeps_orientation_and_size() {
    // Large enough for a 1/4 DCT shrink towards a 200x150 box.
    let data = with_exif_orientation(&jpeg_bytes(1800, 1200), 6);
    let (_, v) = render(&data, &[preset("t", 200, 150, OutputFormat::Jpeg)]).unwrap();
    assert_eq!((v[0].width, v[0].height), (100, 150));
    let img = decode_variant(&v[0]);
    let tr = img.get_pixel(img.width() - 3, 2);
    assert!(tr[0] > 180 && tr[1] < 80, "top-right {tr:?}");
}

#[test]
fn small_images_are_not_upscaled() {
    let presets = default_presets();
    for data in [png_bytes(120, 90), jpeg_bytes(33, 77)] {
        let (info, variants) = render(&data, &presets).unwrap();
        for (v, p) in variants.iter().zip(&presets) {
            assert_eq!((v.width, v.height), (info.width, info.height), "{}", v.name);
            assert_fits(v, p, (info.width, info.height));
            decode_variant(v);
        }
    }
}

#[test]
fn one_pixel_and_extreme_aspect_ratios() {
    let presets = default_presets();
    for (w, h) in [(1, 1), (5000, 3), (3, 5000)] {
        let (_, variants) = render(&png_bytes(w, h), &presets).unwrap();
        for (v, p) in variants.iter().zip(&presets) {
            assert!(v.width >= 1 && v.height >= 1);
            assert!(v.width <= p.width && v.height <= p.height);
            decode_variant(v);
        }
    }
}

#[test]
fn alpha_is_kept_or_flattened() {
    let img = RgbaImage::from_fn(300, 200, |x, _| if x < 150 { Rgba([0, 0, 255, 0]) } else { Rgba([0, 200, 0, 255]) });
    let data = encode_as(&DynamicImage::ImageRgba8(img), ImageFormat::Png);
    let presets = vec![
        preset("jpg", 150, 150, OutputFormat::Jpeg),
        preset("png", 150, 150, OutputFormat::Png),
        preset("webp", 150, 150, OutputFormat::WebP),
    ];
    let (_, v) = render(&data, &presets).unwrap();
    let jpg = decode_variant(&v[0]);
    let left = jpg.get_pixel(5, 50);
    assert!(left[0] > 240 && left[1] > 240 && left[2] > 240, "transparent -> white: {left:?}");
    for v in &v[1..] {
        let img = decode_variant(v);
        assert!(img.color().has_alpha(), "{} keeps alpha", v.name);
        assert_eq!(img.get_pixel(5, 50)[3], 0, "{}", v.name);
        assert_eq!(img.get_pixel(140, 50)[3], 255, "{}", v.name);
    }
}

#[test]
fn grayscale_and_cmyk_jpegs() {
    let gray = DynamicImage::ImageLuma8(image::GrayImage::from_fn(500, 400, |x, _| image::Luma([(x / 2) as u8])));
    let (_, v) = render(&encode_as(&gray, ImageFormat::Jpeg), &default_presets()).unwrap();
    let medium = v.iter().find(|v| v.name == "medium").unwrap();
    assert_eq!((medium.width, medium.height), (375, 300));
    for v in &v {
        decode_variant(v);
    }

    // CMYK is not on the fast path: it goes through `image`'s decoder.
    let mut cmyk_jpeg = Vec::new();
    let cmyk: Vec<u8> = (0..320 * 240).flat_map(|i| [(i % 255) as u8, 0, 0, 0]).collect();
    jpeg_encoder::Encoder::new(&mut cmyk_jpeg, 90).encode(&cmyk, 320, 240, jpeg_encoder::ColorType::Cmyk).unwrap();
    let (info, v) = render(&cmyk_jpeg, &[preset("t", 160, 160, OutputFormat::Jpeg)]).unwrap();
    assert_eq!((info.format, info.width, info.height), ("jpeg", 320, 240));
    assert_eq!((v[0].width, v[0].height), (160, 120));
    decode_variant(&v[0]);
}

#[test]
fn bad_inputs_give_stable_codes() {
    let jpeg = jpeg_bytes(800, 600);
    let png = png_bytes(800, 600);
    let presets = default_presets();

    assert_eq!(code_of(render(&jpeg[..jpeg.len() / 2], &presets)), "decode_failed", "truncated jpeg");
    assert_eq!(code_of(render(&jpeg[..jpeg.len() - 2], &presets)), "decode_failed", "jpeg without EOI");
    assert_eq!(code_of(render(&jpeg[..300], &presets)), "decode_failed", "jpeg cut in header");
    assert_eq!(code_of(render(&png[..png.len() / 2], &presets)), "decode_failed", "truncated png");
    assert_eq!(code_of(render(&png[..40], &presets)), "decode_failed", "png cut in header");

    let mut state = 0x2545F4914F6CDD1Du64;
    let random: Vec<u8> = (0..10_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    assert_eq!(code_of(render(&random, &presets)), "decode_failed", "random bytes");
    let mut fake_jpeg = vec![0xFF, 0xD8, 0xFF];
    fake_jpeg.extend_from_slice(&random);
    assert_eq!(code_of(render(&fake_jpeg, &presets)), "decode_failed", "jpeg magic + random");

    let empty = temp_file("empty.jpg", b"");
    assert_eq!(code_of(render_file(&empty, &presets, &Limits::default())), "decode_failed", "zero bytes");

    let missing = std::env::temp_dir().join("imagelake-no-such-file.jpg");
    assert_eq!(code_of(render_file(&missing, &presets, &Limits::default())), "io");

    // A BMP file header (recognised by its magic, not accepted).
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&[0x46, 0, 0, 0, 0, 0, 0, 0, 0x36, 0, 0, 0, 0x28, 0, 0, 0]);
    bmp.resize(70, 0);
    assert_eq!(code_of(render(&bmp, &presets)), "unsupported_format", "bmp");
    assert_eq!(code_of(render(b"%PDF-1.7\n...", &presets)), "unsupported_format", "pdf");
}

/// A PNG signature + IHDR (with a correct CRC) declaring `width` x `height`.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&width.to_be_bytes());
    chunk.extend_from_slice(&height.to_be_bytes());
    chunk.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    // A tiny IDAT and IEND so that only the size is wrong.
    out.extend_from_slice(&[0, 0, 0, 0, b'I', b'D', b'A', b'T', 0x35, 0xAF, 0x06, 0x1E]);
    out.extend_from_slice(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]);
    out
}

#[test]
fn oversized_headers_are_refused_before_decoding() {
    let presets = default_presets();
    let err = render(&png_header(100_000, 100_000), &presets).unwrap_err();
    assert_eq!(err.code(), "image_too_large", "{err}");
    // No JPEG header exceeds the default (2^32 > 65535 x 65535): a lower limit.
    let one_gp = Limits { max_pixels: 1_000_000_000, ..Limits::default() };
    let render = |data: &[u8], presets: &[Preset]| render_bytes(data, presets, &one_gp);

    // A JPEG whose SOF claims 60000x60000 (and nothing else).
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08];
    jpeg.extend_from_slice(&60000u16.to_be_bytes());
    jpeg.extend_from_slice(&60000u16.to_be_bytes());
    jpeg.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    jpeg.extend_from_slice(&[0xFF, 0xD9]);
    let err = render(&jpeg, &presets).unwrap_err();
    assert_eq!(err.code(), "image_too_large", "{err}");
    // Same, truncated right after the frame header: still too large, not corrupt.
    assert_eq!(code_of(render(&jpeg[..jpeg.len() - 2], &presets)), "image_too_large");

    // A real image over a lowered pixel limit.
    let limits = Limits { max_pixels: 1000, ..Limits::default() };
    for data in [jpeg_bytes(100, 100), png_bytes(100, 100)] {
        assert_eq!(code_of(render_bytes(&data, &presets, &limits)), "image_too_large");
    }
}

#[test]
fn allocation_limit_gives_decode_limit() {
    let presets = vec![preset("full", 2000, 2000, OutputFormat::Jpeg)];
    let limits = Limits { max_alloc_bytes: 1 << 20, ..Limits::default() };
    // 1000x1000 RGB needs 3 MB decoded; the files themselves are far smaller.
    for data in [png_bytes(1000, 1000), jpeg_bytes(1000, 1000)] {
        assert!(data.len() < 1 << 20);
        assert_eq!(code_of(render_bytes(&data, &presets, &limits)), "decode_limit");
    }
    // A file larger than the limit is refused before it is read.
    let path = temp_file("big.png", &png_bytes(1000, 1000));
    let tiny = Limits { max_alloc_bytes: 100, ..Limits::default() };
    assert_eq!(code_of(render_file(&path, &presets, &tiny)), "decode_limit");
}

#[test]
fn truncations_and_bit_flips_never_panic() {
    let src = DynamicImage::ImageRgb8(gradient(96, 64));
    let presets = vec![preset("t", 40, 40, OutputFormat::Jpeg)];
    for format in [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP, ImageFormat::Gif, ImageFormat::Tiff] {
        let src = if format == ImageFormat::Gif { DynamicImage::ImageRgba8(src.to_rgba8()) } else { src.clone() };
        let data = encode_as(&src, format);
        let step = (data.len() / 97).max(1);
        for cut in (0..data.len()).step_by(step) {
            let r = render(&data[..cut], &presets);
            if matches!(format, ImageFormat::Jpeg | ImageFormat::Png) && cut < data.len() - 12 {
                assert_eq!(code_of(r), "decode_failed", "{format:?} cut at {cut} of {}", data.len());
            } else if let Err(e) = r {
                assert_ne!(e.code(), "io");
            }
        }
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..200 {
            let mut damaged = data.clone();
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let i = (state as usize) % damaged.len();
                damaged[i] ^= 1 << (state >> 61);
            }
            // Any outcome is fine as long as it is a value, not a panic.
            let _ = render(&damaged, &presets);
        }
    }
}

#[test]
fn zero_sized_preset_is_rejected() {
    let err = render(&png_bytes(10, 10), &[preset("bad", 0, 10, OutputFormat::Png)]).unwrap_err();
    assert_eq!(err.code(), "invalid_preset");
}

#[test]
fn presets_and_formats_serialize_lowercase() {
    let p: Preset = serde_json::from_str(r#"{"name":"w","width":10,"height":20,"format":"webp"}"#).unwrap();
    assert_eq!((p.format(), p.quality), (OutputFormat::WebP, 80));
    let json = serde_json::to_string(&default_presets()[2]).unwrap();
    assert!(json.contains(r#""formats":["jpeg"]"#), "{json}");
    let json = serde_json::to_string(&default_presets()[0]).unwrap();
    assert!(json.contains(r#""fit":"cover""#), "{json}");
    assert_eq!(OutputFormat::WebP.extension(), "webp");
    assert_eq!(OutputFormat::Jpeg.content_type(), "image/jpeg");
    assert_eq!(OutputFormat::Png.content_type(), "image/png");
}

#[test]
fn fit_within_rounds_and_never_upscales() {
    assert_eq!(fit_within(4000, 3000, 400, 300), (400, 300));
    assert_eq!(fit_within(3000, 4000, 400, 300), (225, 300));
    assert_eq!(fit_within(100, 50, 400, 300), (100, 50));
    assert_eq!(fit_within(10000, 1, 400, 300), (400, 1));
    assert_eq!(fit_within(1, 10000, 400, 300), (1, 300));
    assert_eq!(fit_within(401, 301, 400, 300), (400, 300));
}
