//! 16-bit sources keep their precision until the final 8-bit encode.
//!
//! The pattern these tests use: in every 2x2 block, three samples at `257 v + 128`
//! (8-bit `v + 0.498`, which rounds and truncates to `v`) and one at `257 (v + 1) + 128`
//! (rounds to `v + 1`). Reduced at 16 bits the block's mean is 8-bit `v + 0.748`, so `v + 1`;
//! rounded to 8 bits first it is `v + 0.25`, so `v`. The expected pixel therefore tells
//! the two apart, whatever filter follows (the image is uniform at every scale above 2x2).

use std::io::Cursor;

use image::codecs::png::PngEncoder;
use image::{DynamicImage, ImageBuffer, ImageEncoder, ImageFormat, Luma, Rgb, Rgba};
use lcms2::{Intent, PixelFormat, Profile, Transform};

use super::*;

fn preset(w: u32, h: u32) -> Preset {
    Preset::new("p", w, h, OutputFormat::Png, Fit::Contain, 90)
}

/// The pattern's sample at (x, y) for 8-bit level `v`.
fn sample(x: u32, y: u32, v: u16) -> u16 {
    let bump = u16::from(x % 2 == 1 && y % 2 == 1);
    257 * (v + bump) + 128
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// Every pixel of the single PNG variant of `src`, fitted into `w` x `h`, as RGBA8.
fn render_png(src: &[u8], w: u32, h: u32) -> (SourceInfo, image::RgbaImage) {
    let (info, variants) = render_bytes(src, &[preset(w, h)], &Limits::default()).expect("renders");
    let out = image::load_from_memory_with_format(&variants[0].bytes, ImageFormat::Png).unwrap();
    assert_eq!(out.color().bytes_per_pixel(), out.color().channel_count(), "variants are written at 8 bits");
    (info, out.to_rgba8())
}

fn assert_uniform(img: &image::RgbaImage, want: [u8; 4], what: &str) {
    let bad = img.pixels().filter(|p| p.0 != want).count();
    assert_eq!(bad, 0, "{what}: {bad} pixels differ from {want:?}, e.g. {:?}", img.get_pixel(img.width() / 2, 0));
}

#[test]
fn sixteen_bit_png_and_tiff_are_reduced_at_sixteen_bits() {
    let (w, h) = (512, 384);
    let grey = DynamicImage::ImageLuma16(ImageBuffer::from_fn(w, h, |x, y| Luma([sample(x, y, 100)])));
    let rgb = DynamicImage::ImageRgb16(ImageBuffer::from_fn(w, h, |x, y| {
        Rgb([sample(x, y, 100), sample(x, y, 50), sample(x, y, 200)])
    }));
    let rgba = DynamicImage::ImageRgba16(ImageBuffer::from_fn(w, h, |x, y| {
        Rgba([sample(x, y, 10), sample(x, y, 120), sample(x, y, 240), 65535])
    }));
    let cases = [(&grey, [101, 101, 101, 255]), (&rgb, [101, 51, 201, 255]), (&rgba, [11, 121, 241, 255])];
    for (img, want) in cases {
        for format in [ImageFormat::Png, ImageFormat::Tiff] {
            let what = format!("{:?} {:?}", img.color(), format);
            // 64x48: reduced by 4 in the box step, then Lanczos3 to half of that.
            let (info, out) = render_png(&encode(img, format), 64, 48);
            assert_eq!((info.width, info.height, out.dimensions()), (w, h, (64, 48)), "{what}");
            assert_uniform(&out, want, &what);
        }
    }
}

#[test]
fn a_sixteen_bit_tagged_png_is_converted_at_sixteen_bits() {
    // A uniform Display P3 colour whose samples fall between 8-bit levels: the variant
    // must be the 16-bit LittleCMS conversion, rounded once.
    let p3 = colour::nclx_profile(12).unwrap();
    let t16: Transform<[u16; 3], [u16; 3]> = Transform::new(
        &Profile::new_icc(&p3).unwrap(),
        PixelFormat::RGB_16,
        &Profile::new_srgb(),
        PixelFormat::RGB_16,
        Intent::Perceptual,
    )
    .unwrap();
    let t8: Transform<[u8; 3], [u8; 3]> = Transform::new(
        &Profile::new_icc(&p3).unwrap(),
        PixelFormat::RGB_8,
        &Profile::new_srgb(),
        PixelFormat::RGB_8,
        Intent::Perceptual,
    )
    .unwrap();
    let round8 = |v: u16| ((u32::from(v) + 128) / 257) as u8;
    // A colour where converting first-rounded 8-bit samples gives another answer, so the
    // test can tell the two paths apart.
    let (src, want) = (0..200u16)
        .map(|i| [40000 + i * 97, 9000 + i * 131, 20000 + i * 61])
        .find_map(|c| {
            let mut out = [[0u16; 3]];
            t16.transform_pixels(&[c], &mut out);
            let deep = out[0].map(round8);
            let mut shallow = [[0u8; 3]];
            t8.transform_pixels(&[c.map(round8)], &mut shallow);
            (deep != shallow[0]).then_some((c, deep))
        })
        .expect("some colour tells 8-bit and 16-bit conversions apart");
    let img = ImageBuffer::<Rgb<u16>, _>::from_pixel(256, 256, Rgb(src));
    let mut png = Vec::new();
    let mut enc = PngEncoder::new(&mut png);
    enc.set_icc_profile(p3).unwrap();
    enc.write_image(bytemuck::cast_slice(img.as_raw()), 256, 256, image::ExtendedColorType::Rgb16).unwrap();
    let (_, out) = render_png(&png, 32, 32);
    assert_uniform(&out, [want[0], want[1], want[2], 255], "P3 16-bit");
}

#[test]
fn sixteen_bit_sources_cost_twice_the_pixel_memory() {
    let img = DynamicImage::ImageRgb16(ImageBuffer::from_pixel(2000, 1500, Rgb([30000u16, 20000, 10000])));
    let deep = encode(&img, ImageFormat::Png);
    let shallow = encode(&DynamicImage::ImageRgb8(img.to_rgb8()), ImageFormat::Png);
    let memory =
        |b: &[u8]| Prepared::new(Box::new(Cursor::new(b.to_vec())), &[preset(1000, 1000)], &Limits::default()).unwrap().memory();
    let (d, s) = (memory(&deep), memory(&shallow));
    assert!(d > s + 1000 * 750 * 3 * 2, "16-bit estimate {d} against 8-bit {s}");
}

/// A 10-bit HEIC of one colour (10-bit RGB samples), through libheif and x265. (libaom
/// 3.6 asserts on what libheif 1.15 asks of it for a 10-bit AVIF; the decode path is the
/// same for both.)
fn heic10(w: u32, h: u32, rgb: [u16; 3]) -> Vec<u8> {
    use libheif_rs::{Channel, ColorSpace, CompressionFormat, EncoderQuality, HeifContext, RgbChroma};
    let mut image = libheif_rs::Image::new(w, h, ColorSpace::Rgb(RgbChroma::HdrRgbLe)).unwrap();
    image.create_plane(Channel::Interleaved, w, h, 10).unwrap();
    {
        let mut planes = image.planes_mut();
        let p = planes.interleaved.as_mut().unwrap();
        let px: Vec<u8> = rgb.iter().flat_map(|v| v.to_le_bytes()).collect();
        for y in 0..h as usize {
            for x in 0..w as usize {
                p.data[y * p.stride + x * 6..][..6].copy_from_slice(&px);
            }
        }
    }
    let mut ctx = HeifContext::new().unwrap();
    let mut enc = heif::lib().encoder_for_format(CompressionFormat::Hevc).unwrap();
    enc.set_quality(EncoderQuality::Lossy(95)).unwrap();
    ctx.encode_image(&image, &mut enc, None).unwrap();
    ctx.write_to_bytes().unwrap()
}

#[test]
fn ten_bit_heif_is_decoded_at_sixteen_bits() {
    let file = heic10(64, 48, [512, 256, 900]);
    let prepared = Prepared::new(Box::new(Cursor::new(file.clone())), &[preset(32, 32)], &Limits::default()).unwrap();
    assert_eq!(prepared.probe.sample_bytes(), 2, "a 10-bit HEIC is rendered at 16 bits");
    let img = heif::decode(&mut Cursor::new(&file), file.len() as u64, u64::MAX).unwrap();
    let DynamicImage::ImageRgb16(rgb) = img else { panic!("10-bit HEIC decodes to 16-bit RGB, not {:?}", img.color()) };
    // 10 bits scaled to 16: v * 65535 / 1023, within the lossy coding's error.
    let px = rgb.get_pixel(32, 24).0;
    for (got, v10) in px.iter().zip([512u32, 256, 900]) {
        let want = (v10 * 65535 / 1023) as i64;
        assert!((i64::from(*got) - want).abs() < 700, "{px:?}: {got} against {want}");
    }
    let (_, out) = render_png(&file, 32, 32);
    let p = out.get_pixel(16, 12).0;
    for (got, want) in p.iter().zip([127.6f64, 63.8, 224.3]) {
        assert!((f64::from(*got) - want).abs() < 3.0, "8-bit variant {p:?}");
    }
}

#[test]
fn translucent_rgba_keeps_its_colour_through_the_resize() {
    // Alpha 2 everywhere: premultiplied into 8 bits, (200, 100, 50) would come out as
    // 0, 128 or 255 per channel; resized at 16 bits it keeps its colour.
    let src = DynamicImage::ImageRgba8(ImageBuffer::from_pixel(97, 61, Rgba([200u8, 100, 50, 2])));
    let out = resize::Resizer::new().resize(&src, 40, 25).unwrap();
    let DynamicImage::ImageRgba8(out) = out else { panic!("RGBA8 in, RGBA8 out") };
    for p in out.pixels() {
        assert_eq!(p.0[3], 2, "alpha kept");
        for (got, want) in p.0[..3].iter().zip([200u8, 100, 50]) {
            assert!(got.abs_diff(want) <= 2, "colour under low alpha kept: {:?}", p.0);
        }
    }
}
