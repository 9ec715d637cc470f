//! Encoding a rendered variant.

use std::borrow::Cow;

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{DynamicImage, ExtendedColorType, ImageEncoder};

use super::{OutputFormat, Preset};

/// Encode `img` (grey, RGB or RGBA) as `format` with the preset's quality (clamped to
/// 1..=100) and AVIF speed. The pixels are sRGB; JPEG, PNG and WebP files carry no
/// profile (untagged means sRGB to every decoder), AVIF says so in its nclx box.
///
/// Every variant is written at 8 bits: a 16-bit image is rounded here, at the last step.
pub(super) fn encode(img: &DynamicImage, format: OutputFormat, preset: &Preset) -> Result<Vec<u8>, String> {
    let eight = to_8bit(img);
    let img = eight.as_ref();
    let quality = preset.quality.clamp(1, 100);
    match format {
        OutputFormat::Jpeg => encode_jpeg(img, quality),
        OutputFormat::Png => encode_png(img),
        OutputFormat::WebP => encode_webp(img, quality),
        OutputFormat::Avif => super::heif::encode_avif(img, quality, preset.speed),
    }
}

/// The 8-bit image: itself, or a 16-bit one rounded (`(v + 128) / 257`, `image`'s
/// conversion) to the same layout.
fn to_8bit(img: &DynamicImage) -> Cow<'_, DynamicImage> {
    match img {
        DynamicImage::ImageLuma16(_) => Cow::Owned(DynamicImage::ImageLuma8(img.to_luma8())),
        DynamicImage::ImageRgb16(_) => Cow::Owned(DynamicImage::ImageRgb8(img.to_rgb8())),
        DynamicImage::ImageRgba16(_) => Cow::Owned(DynamicImage::ImageRgba8(img.to_rgba8())),
        _ => Cow::Borrowed(img),
    }
}

fn encode_jpeg(img: &DynamicImage, quality: u8) -> Result<Vec<u8>, String> {
    let (w, h) = (img.width(), img.height());
    let (w16, h16) = match (u16::try_from(w), u16::try_from(h)) {
        (Ok(w), Ok(h)) => (w, h),
        _ => return Err(format!("{w}x{h} is larger than JPEG allows (65535)")),
    };
    let (pixels, color): (Cow<'_, [u8]>, jpeg_encoder::ColorType) = match img {
        DynamicImage::ImageLuma8(g) => (Cow::Borrowed(g.as_raw()), jpeg_encoder::ColorType::Luma),
        DynamicImage::ImageRgb8(rgb) => (Cow::Borrowed(rgb.as_raw()), jpeg_encoder::ColorType::Rgb),
        DynamicImage::ImageRgba8(rgba) => (Cow::Owned(flatten_on_white(rgba.as_raw())), jpeg_encoder::ColorType::Rgb),
        other => (Cow::Owned(other.to_rgb8().into_raw()), jpeg_encoder::ColorType::Rgb),
    };
    // Compressed size is typically well under 1 byte per pixel at these qualities.
    let mut out = Vec::with_capacity((w as usize * h as usize / 4).max(1024));
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    // Below quality 90 chroma is subsampled 2x2; average the block like libjpeg does
    // rather than picking its top-left pixel.
    encoder.set_chroma_subsampling_method(jpeg_encoder::ChromaSubsamplingMethod::Average);
    encoder.encode(&pixels, w16, h16, color).map_err(|e| format!("jpeg: {e}"))?;
    Ok(out)
}

/// Composite RGBA onto an opaque white background (JPEG has no alpha).
fn flatten_on_white(rgba: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rgba.len() / 4 * 3);
    for px in rgba.chunks_exact(4) {
        let a = u32::from(px[3]);
        let inv = 255 - a;
        for &c in &px[..3] {
            // c * a / 255 + 255 * (255 - a) / 255, rounded.
            out.push(((u32::from(c) * a + 255 * inv + 127) / 255) as u8);
        }
    }
    out
}

fn encode_png(img: &DynamicImage) -> Result<Vec<u8>, String> {
    let color = match img {
        DynamicImage::ImageLuma8(_) => ExtendedColorType::L8,
        DynamicImage::ImageRgb8(_) => ExtendedColorType::Rgb8,
        DynamicImage::ImageRgba8(_) => ExtendedColorType::Rgba8,
        other => return Err(format!("unexpected pixel layout {:?}", other.color())),
    };
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Default, FilterType::Adaptive)
        .write_image(img.as_bytes(), img.width(), img.height(), color)
        .map_err(|e| format!("png: {e}"))?;
    Ok(out)
}

fn encode_webp(img: &DynamicImage, quality: u8) -> Result<Vec<u8>, String> {
    let (w, h) = (img.width(), img.height());
    if w > 16383 || h > 16383 {
        return Err(format!("{w}x{h} is larger than WebP allows (16383)"));
    }
    let rgb_storage;
    let encoder = match img {
        DynamicImage::ImageRgb8(rgb) => webp::Encoder::from_rgb(rgb.as_raw(), w, h),
        DynamicImage::ImageRgba8(rgba) => webp::Encoder::from_rgba(rgba.as_raw(), w, h),
        other => {
            rgb_storage = other.to_rgb8();
            webp::Encoder::from_rgb(rgb_storage.as_raw(), w, h)
        }
    };
    let memory = encoder.encode_simple(false, f32::from(quality)).map_err(|e| format!("webp: {e:?}"))?;
    Ok(memory.to_vec())
}
