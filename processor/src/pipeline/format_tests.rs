//! Formats and colour: HEIC in, AVIF out, BMP, several formats per preset,
//! CMYK and tagged JPEGs, animation.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage, RgbaImage};
use libheif_rs::{ColorSpace, CompressionFormat, EncoderQuality, EncodingOptions, HeifContext, RgbChroma};

use super::*;

fn preset(name: &str, w: u32, h: u32, formats: &[OutputFormat]) -> Preset {
    let mut p = Preset::new(name, w, h, formats[0], Fit::Contain, 90);
    p.formats = formats.to_vec();
    p
}

/// Left half red, right half blue.
fn halves(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, _| if x < w / 2 { Rgb([220, 20, 20]) } else { Rgb([20, 20, 220]) })
}

/// A HEIC of `img`. (libheif 1.15's encoder ignores `image_orientation`, so no `irot` is
/// written: the rotated iPhone-style fixture comes from scripts/format-fixtures.sh and
/// is checked end to end in tests/formats_e2e.rs.)
fn heic(img: &RgbImage) -> Vec<u8> {
    let (w, h) = img.dimensions();
    let mut image = libheif_rs::Image::new(w, h, ColorSpace::Rgb(RgbChroma::Rgb)).unwrap();
    image.create_plane(libheif_rs::Channel::Interleaved, w, h, 8).unwrap();
    {
        let mut planes = image.planes_mut();
        let p = planes.interleaved.as_mut().unwrap();
        for (y, row) in img.as_raw().chunks_exact(w as usize * 3).enumerate() {
            p.data[y * p.stride..y * p.stride + row.len()].copy_from_slice(row);
        }
    }
    let mut ctx = HeifContext::new().unwrap();
    let mut enc = heif::lib().encoder_for_format(CompressionFormat::Hevc).unwrap();
    enc.set_quality(EncoderQuality::Lossy(90)).unwrap();
    ctx.encode_image(&image, &mut enc, Some(EncodingOptions::new().unwrap())).unwrap();
    ctx.write_to_bytes().unwrap()
}

fn avg(img: &DynamicImage, x0: u32, y0: u32, x1: u32, y1: u32) -> [f64; 3] {
    let rgb = img.to_rgb8();
    let mut s = [0f64; 3];
    let mut n = 0f64;
    for y in y0..y1 {
        for x in x0..x1 {
            let p = rgb.get_pixel(x, y);
            for c in 0..3 {
                s[c] += f64::from(p[c]);
            }
            n += 1.0;
        }
    }
    s.map(|v| v / n)
}

fn decode_avif(bytes: &[u8]) -> DynamicImage {
    heif::decode(&mut Cursor::new(bytes), bytes.len() as u64, u64::MAX).expect("AVIF decodes")
}

#[test]
fn heic_in_avif_out() {
    // 96x48, red left, blue right.
    let heic = heic(&halves(96, 48));
    let presets = [preset("p", 400, 400, &[OutputFormat::Png, OutputFormat::Avif])];
    let (info, v) = render_bytes(&heic, &presets, &Limits::default()).unwrap();
    assert_eq!((info.format, info.width, info.height, info.orientation), ("heic", 96, 48, 1));
    assert_eq!(v.len(), 2);
    let png = image::load_from_memory_with_format(&v[0].bytes, ImageFormat::Png).unwrap();
    assert_eq!((png.width(), png.height()), (96, 48));
    let (left, right) = (avg(&png, 8, 8, 40, 40), avg(&png, 56, 8, 88, 40));
    assert!(left[0] > 180.0 && left[2] < 60.0, "left should be red: {left:?}");
    assert!(right[2] > 180.0 && right[0] < 60.0, "right should be blue: {right:?}");
    // The AVIF of the same pixels.
    assert_eq!((v[1].format, v[1].width, v[1].height), (OutputFormat::Avif, 96, 48));
    assert!(v[1].bytes.len() > 100 && &v[1].bytes[4..8] == b"ftyp", "an AVIF file");
    let avif = decode_avif(&v[1].bytes);
    let left_avif = avg(&avif, 8, 8, 40, 40);
    assert!((0..3).all(|c| (left_avif[c] - left[c]).abs() < 12.0), "{left_avif:?} vs {left:?}");
    // The AVIF says sRGB in nclx (BT.709 primaries, sRGB transfer).
    let ctx = HeifContext::read_from_bytes(&v[1].bytes).unwrap();
    let nclx = ctx.primary_image_handle().unwrap().color_profile_nclx().expect("an nclx colour box");
    assert_eq!(nclx.color_primaries(), libheif_rs::ColorPrimaries::ITU_R_BT_709_5);
    assert_eq!(nclx.transfer_characteristics(), libheif_rs::TransferCharacteristics::IEC_61966_2_1);
}

#[test]
fn one_preset_in_three_formats_from_the_same_pixels() {
    let src = DynamicImage::ImageRgb8(halves(640, 480));
    let mut jpeg = Vec::new();
    src.write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg).unwrap();
    let presets = [
        preset("modern", 320, 320, &[OutputFormat::Avif, OutputFormat::WebP, OutputFormat::Jpeg]),
        preset("still", 100, 100, &[OutputFormat::Png]),
    ];
    let (_, v) = render_bytes(&jpeg, &presets, &Limits::default()).unwrap();
    let got: Vec<_> = v.iter().map(|v| (v.name.as_str(), v.format, v.width, v.height)).collect();
    assert_eq!(
        got,
        vec![
            ("modern", OutputFormat::Avif, 320, 240),
            ("modern", OutputFormat::WebP, 320, 240),
            ("modern", OutputFormat::Jpeg, 320, 240),
            ("still", OutputFormat::Png, 100, 75),
        ]
    );
    let webp = image::load_from_memory_with_format(&v[1].bytes, ImageFormat::WebP).unwrap();
    let avif = decode_avif(&v[0].bytes);
    for (x0, x1) in [(20, 140), (180, 300)] {
        let (a, b) = (avg(&avif, x0, 20, x1, 220), avg(&webp, x0, 20, x1, 220));
        assert!((0..3).all(|c| (a[c] - b[c]).abs() < 10.0), "{a:?} vs {b:?}");
    }
}

#[test]
fn bmp_sources_are_read() {
    let mut bmp = Vec::new();
    DynamicImage::ImageRgb8(halves(200, 100)).write_to(&mut Cursor::new(&mut bmp), ImageFormat::Bmp).unwrap();
    let (info, v) = render_bytes(&bmp, &[preset("p", 100, 100, &[OutputFormat::Png])], &Limits::default()).unwrap();
    assert_eq!((info.format, info.width, info.height), ("bmp", 200, 100));
    let png = image::load_from_memory(&v[0].bytes).unwrap();
    assert!(avg(&png, 5, 5, 45, 45)[0] > 180.0);
}

/// A CMYK JPEG as libjpeg writes it (with an Adobe marker, so read as inverted).
fn cmyk_jpeg(w: u32, h: u32, inks: [u8; 4], icc: Option<&[u8]>) -> Vec<u8> {
    let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_CMYK);
    c.set_size(w as usize, h as usize);
    c.set_quality(95.0);
    let mut started = c.start_compress(Vec::new()).unwrap();
    if let Some(icc) = icc {
        started.write_icc_profile(icc);
    }
    let row: Vec<u8> = (0..w).flat_map(|_| inks).collect();
    for _ in 0..h {
        started.write_scanlines(&row).unwrap();
    }
    started.finish().unwrap()
}

#[test]
fn cmyk_jpegs_come_out_rgb() {
    // Inverted (Adobe) samples: 255 is no ink. No cyan/magenta/black, full yellow:
    // yellow on paper.
    let jpeg = cmyk_jpeg(64, 64, [255, 255, 0, 255], None);
    let (info, v) = render_bytes(&jpeg, &[preset("p", 32, 32, &[OutputFormat::Png])], &Limits::default()).unwrap();
    assert_eq!(info.format, "jpeg");
    let px = avg(&image::load_from_memory(&v[0].bytes).unwrap(), 4, 4, 28, 28);
    // No profile: the generic one (FOGRA39), whose process yellow is (255, 237, 0); the
    // naive formula would give (255, 255, 0).
    assert!(px[0] > 245.0 && (px[1] - 237.0).abs() < 6.0 && px[2] < 15.0, "FOGRA39 yellow: {px:?}");
}

#[test]
fn tagged_rgb_is_converted_to_srgb() {
    let p3 = colour::nclx_profile(12).unwrap();
    let img = RgbImage::from_pixel(64, 64, Rgb([200, 60, 60]));
    let mut tagged = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut tagged, 95);
    enc.add_icc_profile(&p3).unwrap();
    enc.encode(img.as_raw(), 64, 64, jpeg_encoder::ColorType::Rgb).unwrap();
    let mut plain = Vec::new();
    jpeg_encoder::Encoder::new(&mut plain, 95).encode(img.as_raw(), 64, 64, jpeg_encoder::ColorType::Rgb).unwrap();
    let p = [preset("p", 32, 32, &[OutputFormat::Png])];
    let render = |b: &[u8]| {
        avg(&image::load_from_memory(&render_bytes(b, &p, &Limits::default()).unwrap().1[0].bytes).unwrap(), 4, 4, 28, 28)
    };
    let (t, u) = (render(&tagged), render(&plain));
    // P3 (200, 60, 60) is a more saturated red than sRGB (200, 60, 60).
    assert!(t[0] > u[0] + 10.0 && t[1] < u[1], "tagged {t:?} vs untagged {u:?}");
}

fn animated_gif(frames: u32, w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        enc.set_repeat(image::codecs::gif::Repeat::Infinite).unwrap();
        for i in 0..frames {
            let img = RgbaImage::from_fn(w, h, |x, _| {
                if x / 10 == i % (w / 10) {
                    image::Rgba([255, 0, 0, 255])
                } else {
                    image::Rgba([0, 0, (i * 12) as u8, 255])
                }
            });
            let delay = image::Delay::from_numer_denom_ms(100, 1);
            enc.encode_frame(image::Frame::from_parts(img, 0, 0, delay)).unwrap();
        }
    }
    out
}

#[test]
fn animated_gifs_stay_animated_in_webp_only() {
    let gif = animated_gif(20, 300, 200);
    let presets = [preset("anim", 150, 150, &[OutputFormat::WebP, OutputFormat::Jpeg])];
    let (info, v) = render_bytes(&gif, &presets, &Limits::default()).unwrap();
    assert_eq!((info.format, info.frames), ("gif", 20));
    use image::AnimationDecoder;
    let d = image::codecs::webp::WebPDecoder::new(Cursor::new(&v[0].bytes)).unwrap();
    assert!(d.has_animation());
    let frames: Vec<image::Frame> = d.into_frames().collect::<Result<_, _>>().unwrap();
    assert_eq!(frames.len(), 20);
    assert!(frames.iter().all(|f| f.buffer().dimensions() == (150, 100)));
    let ms = |f: &image::Frame| f.delay().numer_denom_ms().0 / f.delay().numer_denom_ms().1.max(1);
    assert!(frames[..19].iter().all(|f| ms(f) == 100), "the source's timing");
    // The JPEG is the first frame.
    let jpeg = image::load_from_memory_with_format(&v[1].bytes, ImageFormat::Jpeg).unwrap();
    assert_eq!((jpeg.width(), jpeg.height()), (150, 100));
}

#[test]
fn too_many_frames_fail_before_decoding() {
    let gif = animated_gif(40, 100, 100);
    let limits = Limits { max_animation_pixels: 30 * 100 * 100, ..Limits::default() };
    let err = render_bytes(&gif, &[preset("a", 50, 50, &[OutputFormat::WebP])], &limits).unwrap_err();
    assert_eq!(err.code(), "decode_limit", "{err}");
    // Without an animated variant the first frame is enough, whatever the frame count.
    let (_, v) = render_bytes(&gif, &[preset("a", 50, 50, &[OutputFormat::Jpeg])], &limits).unwrap();
    assert_eq!((v[0].width, v[0].height), (50, 50));
}

#[test]
fn avif_alpha_is_coded_only_when_used_and_hidden_colour_is_filled() {
    let p = [preset("a", 64, 64, &[OutputFormat::Avif])];
    let has_alpha = |bytes: &[u8]| {
        let ctx = HeifContext::read_from_bytes(bytes).unwrap();
        ctx.primary_image_handle().unwrap().has_alpha_channel()
    };
    // An RGBA PNG that is opaque everywhere: no alpha plane in the AVIF.
    let opaque = RgbaImage::from_pixel(64, 64, image::Rgba([30, 160, 90, 255]));
    let mut png = Cursor::new(Vec::new());
    opaque.write_to(&mut png, ImageFormat::Png).unwrap();
    let v = render_bytes(png.get_ref(), &p, &Limits::default()).unwrap().1;
    assert!(!has_alpha(&v[0].bytes), "an opaque RGBA source is written without alpha");
    // Left half visible green, right half fully transparent: an alpha plane, and the
    // colour under the transparent half is the green around it, not black.
    let half =
        RgbaImage::from_fn(64, 64, |x, _| if x < 32 { image::Rgba([30, 160, 90, 255]) } else { image::Rgba([0, 0, 0, 0]) });
    let mut png = Cursor::new(Vec::new());
    half.write_to(&mut png, ImageFormat::Png).unwrap();
    let v = render_bytes(png.get_ref(), &p, &Limits::default()).unwrap().1;
    assert!(has_alpha(&v[0].bytes), "a translucent source keeps its alpha");
    let back = decode_avif(&v[0].bytes);
    let hidden = avg(&back, 48, 8, 60, 56);
    assert!((hidden[1] - 160.0).abs() < 20.0 && hidden[0] < 60.0, "colour under the transparent half: {hidden:?}");
    let alpha = back.to_rgba8().get_pixel(50, 30).0[3];
    assert!(alpha < 10, "the right half stays transparent ({alpha})");
}
