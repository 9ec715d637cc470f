//! HEIC, HEIF and AVIF through libheif (`libheif-rs`, on the system's libheif: libde265
//! decodes HEVC, dav1d AV1, and libaom encodes AV1).
//!
//! Decoding is whole-image: libheif has no scaled or row-by-row decode, so the estimate
//! counts the file, the decoded YCbCr planes and the interleaved RGB(A) copy. libheif
//! applies the file's geometric transformations (`irot`, `imir`, `clap`) while decoding,
//! so the pixels come out upright; the HEIF specification says EXIF orientation is then
//! not to be applied again, and it is not.

use std::io::{Read, Seek, SeekFrom};
use std::sync::OnceLock;

use image::{DynamicImage, ImageBuffer, Rgb, RgbImage, Rgba, RgbaImage};
use libheif_rs::{
    color_profile_types, Channel, ColorPrimaries, ColorProfile, ColorProfileNCLX, ColorSpace, CompressionFormat,
    EncoderParameterValue, EncoderQuality, HeifContext, Image, LibHeif, RgbChroma,
};

use super::PipelineError;

pub(super) fn lib() -> &'static LibHeif {
    static LIB: OnceLock<LibHeif> = OnceLock::new();
    LIB.get_or_init(LibHeif::new)
}

fn failed(e: libheif_rs::HeifError) -> PipelineError {
    PipelineError::DecodeFailed(format!("HEIF: {e}"))
}

/// What the container says about its primary image.
#[derive(Debug, Clone)]
pub(super) struct Header {
    /// Upright size (after `irot`).
    pub width: u32,
    pub height: u32,
    /// The ICC profile, or one made from nclx primaries that are not sRGB's.
    pub icc: Option<Vec<u8>>,
    /// Bits per luma sample (8, or 10 and 12 for high-bit-depth files, decoded at 16).
    pub bits: u8,
    /// An alpha plane.
    pub alpha: bool,
}

/// Reads the whole file: libheif parses from memory.
fn read_all<R: Read + Seek>(input: &mut R, file_len: u64, max_bytes: u64) -> Result<Vec<u8>, PipelineError> {
    if file_len > max_bytes {
        return Err(PipelineError::DecodeLimit(format!("a {file_len} byte HEIF file is over the {max_bytes} byte limit")));
    }
    input.seek(SeekFrom::Start(0)).map_err(|e| PipelineError::Io { path: "source".into(), source: e })?;
    let mut data = Vec::with_capacity(file_len as usize);
    input.take(file_len).read_to_end(&mut data).map_err(|e| PipelineError::Io { path: "source".into(), source: e })?;
    Ok(data)
}

/// Parses the container (no pixel is decoded).
pub(super) fn probe<R: Read + Seek>(input: &mut R, file_len: u64, max_bytes: u64) -> Result<Header, PipelineError> {
    let data = read_all(input, file_len, max_bytes)?;
    let ctx = HeifContext::read_from_bytes(&data).map_err(failed)?;
    let handle = ctx.primary_image_handle().map_err(failed)?;
    let icc = match handle.color_profile_raw() {
        Some(raw) if [color_profile_types::PROF, color_profile_types::R_ICC].contains(&raw.profile_type()) => Some(raw.data),
        _ => handle.color_profile_nclx().and_then(|n| super::colour::nclx_profile(n.color_primaries() as u16)),
    };
    let (bits, alpha) = (handle.luma_bits_per_pixel(), handle.has_alpha_channel());
    Ok(Header { width: handle.width(), height: handle.height(), icc, bits, alpha })
}

/// Bytes the decode holds.
pub(super) fn estimate(h: &Header, file_len: u64) -> u64 {
    let pixels = u64::from(h.width) * u64::from(h.height);
    // The file, YCbCr 4:2:0 planes (up to 4:4:4 and alpha), libheif's RGB(A) image, and
    // our copy of it; twice that past 8 bits.
    let sample = if h.bits > 8 { 2 } else { 1 };
    file_len + pixels * (4 + 4 + 4) * sample + (16 << 20)
}

/// Decodes the primary image, upright, as RGB or RGBA: 8-bit, or 16-bit for a file of
/// 10 or 12 bits (scaled to the full 16-bit range).
pub(super) fn decode<R: Read + Seek>(input: &mut R, file_len: u64, max_bytes: u64) -> Result<DynamicImage, PipelineError> {
    let data = read_all(input, file_len, max_bytes)?;
    let ctx = HeifContext::read_from_bytes(&data).map_err(failed)?;
    let handle = ctx.primary_image_handle().map_err(failed)?;
    let alpha = handle.has_alpha_channel();
    let deep = handle.luma_bits_per_pixel() > 8;
    let chroma = match (alpha, deep) {
        (false, false) => RgbChroma::Rgb,
        (true, false) => RgbChroma::Rgba,
        (false, true) => RgbChroma::HdrRgbLe,
        (true, true) => RgbChroma::HdrRgbaLe,
    };
    let img = lib().decode(&handle, ColorSpace::Rgb(chroma), None).map_err(failed)?;

    let plane = img.planes().interleaved.ok_or_else(|| PipelineError::DecodeFailed("HEIF: no interleaved plane".into()))?;
    let (w, h) = (plane.width, plane.height);
    let ch = if alpha { 4 } else { 3 };
    let row = w as usize * ch * if deep { 2 } else { 1 };
    let mut rows = Vec::with_capacity(row * h as usize);
    for y in 0..h as usize {
        let start = y * plane.stride;
        rows.extend_from_slice(
            plane.data.get(start..start + row).ok_or_else(|| PipelineError::DecodeFailed("HEIF: short plane".into()))?,
        );
    }
    let short = || PipelineError::DecodeFailed("HEIF: short image".into());
    if deep {
        // Little-endian samples of `bits` bits, to 0..=65535.
        let bits = plane.bits_per_pixel.clamp(9, 16);
        let max = (1u32 << bits) - 1;
        let out: Vec<u16> = rows
            .chunks_exact(2)
            .map(|b| ((u32::from(u16::from_le_bytes([b[0], b[1]])).min(max) * 65535 + max / 2) / max) as u16)
            .collect();
        return Ok(if alpha {
            DynamicImage::ImageRgba16(ImageBuffer::<Rgba<u16>, _>::from_raw(w, h, out).ok_or_else(short)?)
        } else {
            DynamicImage::ImageRgb16(ImageBuffer::<Rgb<u16>, _>::from_raw(w, h, out).ok_or_else(short)?)
        });
    }
    Ok(if alpha {
        DynamicImage::ImageRgba8(RgbaImage::from_raw(w, h, rows).ok_or_else(short)?)
    } else {
        DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, rows).ok_or_else(short)?)
    })
}

/// Encodes an L8, RGB8 or RGBA8 image as AVIF (libaom through libheif), tagged sRGB
/// with nclx (BT.709 primaries, sRGB transfer), at `quality` 1..=100 and libaom `speed`
/// 0..=9, single-threaded (the processor runs one job per core).
pub(super) fn encode_avif(img: &DynamicImage, quality: u8, speed: u8) -> Result<Vec<u8>, String> {
    let err = |e: libheif_rs::HeifError| format!("avif: {e}");
    let (w, h) = (img.width(), img.height());
    let rgb_storage;
    let rgba_storage;
    let (pixels, chroma, ch): (&[u8], RgbChroma, usize) = match img {
        DynamicImage::ImageRgb8(rgb) => (rgb.as_raw(), RgbChroma::Rgb, 3),
        // An alpha plane that is all 255 is still coded as an image of its own (about 250
        // bytes at 512x320): an opaque RGBA image is written as RGB.
        DynamicImage::ImageRgba8(rgba) if rgba.pixels().all(|p| p[3] == 255) => {
            rgb_storage = img.to_rgb8();
            (rgb_storage.as_raw(), RgbChroma::Rgb, 3)
        }
        DynamicImage::ImageRgba8(rgba) => {
            // Colour under fully transparent pixels is invisible, but zeroing it draws a
            // hard edge into the colour planes along every transparent area, which costs
            // bits at any quality; it is filled from the visible pixels instead.
            let mut filled = rgba.as_raw().clone();
            super::bleed::bleed_transparent(&mut filled, w as usize, h as usize);
            rgba_storage = filled;
            (rgba_storage.as_slice(), RgbChroma::Rgba, 4)
        }
        other => {
            rgb_storage = other.to_rgb8();
            (rgb_storage.as_raw(), RgbChroma::Rgb, 3)
        }
    };
    let mut image = Image::new(w, h, ColorSpace::Rgb(chroma)).map_err(err)?;
    image.create_plane(Channel::Interleaved, w, h, 8).map_err(err)?;
    {
        let mut planes = image.planes_mut();
        let plane = planes.interleaved.as_mut().ok_or("avif: no interleaved plane")?;
        let row = w as usize * ch;
        for (y, src) in pixels.chunks_exact(row).enumerate() {
            let start = y * plane.stride;
            let dst = &mut plane.data[start..start + row];
            dst.copy_from_slice(src);
        }
    }
    // BT.709 primaries in the nclx box. libheif-rs 0.20 cannot set its transfer
    // characteristics, which libheif 1.15 leaves `unspecified`: they are set to sRGB's
    // (13) in the written box below (a value that does not change the coding).
    let mut nclx = ColorProfileNCLX::new().ok_or("avif: no nclx profile")?;
    nclx.set_color_primaries(ColorPrimaries::ITU_R_BT_709_5);
    image.set_color_profile_nclx(&nclx).map_err(err)?;

    let mut ctx = HeifContext::new().map_err(err)?;
    let mut encoder = lib().encoder_for_format(CompressionFormat::Av1).map_err(err)?;
    encoder.set_quality(EncoderQuality::Lossy(quality.clamp(1, 100))).map_err(err)?;
    encoder.set_parameter_value("speed", EncoderParameterValue::Int(i32::from(speed.min(9)))).map_err(err)?;
    encoder.set_parameter_value("threads", EncoderParameterValue::Int(1)).map_err(err)?;
    encoder.set_parameter_value("chroma", EncoderParameterValue::String("420".into())).map_err(err)?;
    // The alpha plane at 10 above the colour's quality (libheif codes it at the colour's
    // by default): on the 58-image corpus (issue 16) +1.2 SSIMULACRA2 at Q40 for +2 % bytes,
    // the largest gain per byte of the settings tried; it only changes images with alpha.
    let alpha_quality = i32::from(quality.clamp(1, 100)).saturating_add(10).min(100);
    encoder.set_parameter_value("alpha-quality", EncoderParameterValue::Int(alpha_quality)).map_err(err)?;
    // No palette coding. libaom turns it on when more than a tenth of the 16x16 luma blocks
    // hold 2 to 4 distinct values, a test that smooth gradients pass or fail by a rounding:
    // at speed 8 it cost 29 to 85 % more bytes on such images (goldfish.png, pixels-l.webp)
    // and, over the corpus, gave less quality per byte than leaving it off (issue 16).
    // `aom:` options need a libheif built with aom_codec_set_option (Debian's is); an older
    // one refuses the name, which is not worth failing the encode for.
    let _ = encoder.set_parameter_value("aom:enable-palette", EncoderParameterValue::String("0".into()));
    ctx.encode_image(&image, &mut encoder, None).map_err(err)?;
    let mut out = ctx.write_to_bytes().map_err(err)?;
    set_srgb_transfer(&mut out)?;
    Ok(out)
}

/// Sets the transfer characteristics of the file's nclx `colr` box to sRGB (13). The box
/// is `colr`, `nclx`, then primaries, transfer and matrix as big-endian u16s.
fn set_srgb_transfer(file: &mut [u8]) -> Result<(), String> {
    let at = file.windows(8).position(|w| w == b"colrnclx").ok_or("avif: no nclx colour box written")?;
    let transfer = file.get_mut(at + 10..at + 12).ok_or("avif: short nclx colour box")?;
    transfer.copy_from_slice(&13u16.to_be_bytes());
    Ok(())
}
