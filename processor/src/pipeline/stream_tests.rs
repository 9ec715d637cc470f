//! Tests of the streaming decoders: each format's stream gives the pixels a whole-image
//! decode of the same picture gives, whatever the layout (interlaced, tiled, 16-bit).

use std::io::{Cursor, Write};

use image::{DynamicImage, ImageBuffer, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

use super::*;

fn picture(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, ((x + y) % 97) as u8 + 80]))
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// One lossless preset: the variant's pixels are the pipeline's pixels.
fn lossless() -> Vec<Preset> {
    vec![Preset::new("p", 120, 90, OutputFormat::Png, Fit::Contain, 80)]
}

fn pixels(data: &[u8]) -> Vec<u8> {
    let (_, v) = render_bytes(data, &lossless(), &Limits::default()).unwrap();
    image::load_from_memory(&v[0].bytes).unwrap().to_rgba8().into_raw()
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(&x, &y)| f64::from(x.abs_diff(y))).sum::<f64>() / a.len() as f64
}

fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

/// An Adam7-interlaced RGB PNG, written by hand (no encoder here writes one).
fn interlaced_png(img: &RgbImage) -> Vec<u8> {
    let (w, h) = img.dimensions();
    let mut raw = Vec::new();
    for (x0, dx, y0, dy) in [(0, 8, 0, 8), (4, 8, 0, 8), (0, 4, 4, 8), (2, 4, 0, 4), (0, 2, 2, 4), (1, 2, 0, 2), (0, 1, 1, 2)] {
        if x0 >= w {
            continue;
        }
        for y in (y0..h).step_by(dy) {
            raw.push(0); // filter: none
            for x in (x0..w).step_by(dx) {
                raw.extend_from_slice(&img.get_pixel(x, y).0);
            }
        }
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&raw).unwrap();
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 1]); // 8-bit RGB, deflate, adaptive, Adam7
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z.finish().unwrap());
    chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn an_interlaced_png_gives_exactly_the_pixels_of_the_plain_one() {
    for (w, h) in [(1203, 905), (37, 29), (5, 3)] {
        let img = picture(w, h);
        let plain = encode(&DynamicImage::ImageRgb8(img.clone()), ImageFormat::Png);
        let interlaced = interlaced_png(&img);
        assert_eq!(image::load_from_memory(&interlaced).unwrap().to_rgb8(), img, "the hand-made PNG is right");
        assert_eq!(pixels(&interlaced), pixels(&plain), "{w}x{h}");
    }
}

#[test]
fn sixteen_bit_grey_alpha_and_tiff_streams_match_an_8_bit_png() {
    let img = picture(1500, 1100);
    let reference = pixels(&encode(&DynamicImage::ImageRgb8(img.clone()), ImageFormat::Png));
    let wide = DynamicImage::ImageRgb16(DynamicImage::ImageRgb8(img.clone()).to_rgb16());
    for (what, data) in [
        ("16-bit PNG", encode(&wide, ImageFormat::Png)),
        ("8-bit TIFF", encode(&DynamicImage::ImageRgb8(img.clone()), ImageFormat::Tiff)),
        ("16-bit TIFF", encode(&wide, ImageFormat::Tiff)),
    ] {
        let d = mean_abs_diff(&pixels(&data), &reference);
        assert!(d < 0.6, "{what}: mean difference {d}");
    }
    // Grey + alpha: a half-transparent grey stays half-transparent grey.
    let ga = DynamicImage::ImageLumaA8(image::GrayAlphaImage::from_pixel(800, 600, image::LumaA([90, 128])));
    let px = pixels(&encode(&ga, ImageFormat::Png));
    assert!(px.chunks_exact(4).all(|p| p == [90, 90, 90, 128]), "{:?}", &px[..8]);
}

#[test]
fn alpha_does_not_bleed_in_the_box_reduction() {
    // Transparent green around an opaque red square: the red edge must not turn green.
    let img = RgbaImage::from_fn(1200, 900, |x, y| {
        if (300..900).contains(&x) && (200..700).contains(&y) {
            Rgba([255, 0, 0, 255])
        } else {
            Rgba([0, 255, 0, 0])
        }
    });
    let px = pixels(&encode(&DynamicImage::ImageRgba8(img), ImageFormat::Png));
    for p in px.chunks_exact(4).filter(|p| p[3] > 16) {
        assert!(p[1] < 8 && p[0] > 240, "bled: {p:?}");
    }
    let sixteen: ImageBuffer<Rgba<u16>, Vec<u16>> = ImageBuffer::from_pixel(900, 700, Rgba([65535, 0, 0, 32768]));
    let px = pixels(&encode(&DynamicImage::ImageRgba16(sixteen), ImageFormat::Png));
    assert!(px.chunks_exact(4).all(|p| p == [255, 0, 0, 128]), "{:?}", &px[..8]);
}

#[test]
fn lossy_webp_is_decoded_scaled_by_libwebp() {
    let img = picture(2400, 1800);
    let reference = pixels(&encode(&DynamicImage::ImageRgb8(img.clone()), ImageFormat::Png));
    let webp = ::webp::Encoder::from_rgb(img.as_raw(), 2400, 1800).encode(90.0).to_vec();
    let d = mean_abs_diff(&pixels(&webp), &reference);
    assert!(d < 2.5, "mean difference {d}");
    // Truncated: a clear error, not a partial image.
    let err = render_bytes(&webp[..webp.len() / 2], &lossless(), &Limits::default()).unwrap_err();
    assert_eq!(err.code(), "decode_failed", "{err}");
}

#[test]
fn a_truncated_jpeg_stream_is_refused() {
    let img = DynamicImage::ImageRgb8(picture(1600, 1200));
    let jpeg = encode(&img, ImageFormat::Jpeg);
    let header = jpeg::parse_header(&jpeg).unwrap();
    let cut = &jpeg[..jpeg.len() * 2 / 3];
    let err = jpeg::decode(Cursor::new(cut), &header, (100, 75)).unwrap_err();
    assert_eq!(err.code(), "decode_failed", "{err}");
    assert!(jpeg::decode(Cursor::new(&jpeg[..]), &header, (100, 75)).is_ok());
}

#[test]
fn memory_estimates_follow_the_preset_not_the_source() {
    // The 1 GP JPEG of the issue: a few hundred MB for every default variant, and a
    // progressive one of the same size needs its coefficients (over the 2 GiB default).
    let sof = |marker: u8| {
        let mut j = vec![0xFF, 0xD8, 0xFF, marker, 0, 17, 8];
        j.extend_from_slice(&25_000u16.to_be_bytes());
        j.extend_from_slice(&40_000u16.to_be_bytes());
        j.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, 0xFF, 0xD9]);
        j
    };
    let presets = default_presets();
    let baseline = Prepared::new(Box::new(Cursor::new(sof(0xC0))), &presets, &Limits::default()).unwrap();
    assert!(baseline.memory() < 400 << 20, "{}", baseline.memory());
    let progressive = Prepared::new(Box::new(Cursor::new(sof(0xC2))), &presets, &Limits::default()).unwrap();
    assert!(progressive.memory() > Limits::default().max_alloc_bytes, "{}", progressive.memory());
    assert_eq!(progressive.render().unwrap_err().code(), "decode_limit");
}
