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

use image::{DynamicImage, RgbImage, RgbaImage};
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
    Ok(Header { width: handle.width(), height: handle.height(), icc })
}

/// Bytes the decode holds.
pub(super) fn estimate(h: &Header, file_len: u64) -> u64 {
    let pixels = u64::from(h.width) * u64::from(h.height);
    // The file, YCbCr 4:2:0 planes (up to 4:4:4 and alpha), libheif's RGB(A) image, and
    // our copy of it.
    file_len + pixels * (4 + 4 + 4) + (16 << 20)
}

/// Decodes the primary image, upright, as RGB8 or RGBA8.
pub(super) fn decode<R: Read + Seek>(input: &mut R, file_len: u64, max_bytes: u64) -> Result<DynamicImage, PipelineError> {
    let data = read_all(input, file_len, max_bytes)?;
    let ctx = HeifContext::read_from_bytes(&data).map_err(failed)?;
    let handle = ctx.primary_image_handle().map_err(failed)?;
    let alpha = handle.has_alpha_channel();
    let chroma = if alpha { RgbChroma::Rgba } else { RgbChroma::Rgb };
    let img = lib().decode(&handle, ColorSpace::Rgb(chroma), None).map_err(failed)?;

    let plane = img.planes().interleaved.ok_or_else(|| PipelineError::DecodeFailed("HEIF: no interleaved plane".into()))?;
    let (w, h) = (plane.width, plane.height);
    let ch = if alpha { 4 } else { 3 };
    let row = w as usize * ch;
    let mut out = Vec::with_capacity(row * h as usize);
    for y in 0..h as usize {
        let start = y * plane.stride;
        out.extend_from_slice(
            plane.data.get(start..start + row).ok_or_else(|| PipelineError::DecodeFailed("HEIF: short plane".into()))?,
        );
    }
    let short = || PipelineError::DecodeFailed("HEIF: short image".into());
    Ok(if alpha {
        DynamicImage::ImageRgba8(RgbaImage::from_raw(w, h, out).ok_or_else(short)?)
    } else {
        DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, out).ok_or_else(short)?)
    })
}

/// Encodes an L8, RGB8 or RGBA8 image as AVIF (libaom through libheif), tagged sRGB
/// with nclx (BT.709 primaries, sRGB transfer), at `quality` 1..=100 and libaom `speed`
/// 0..=9, single-threaded (the processor runs one job per core).
pub(super) fn encode_avif(img: &DynamicImage, quality: u8, speed: u8) -> Result<Vec<u8>, String> {
    let err = |e: libheif_rs::HeifError| format!("avif: {e}");
    let (w, h) = (img.width(), img.height());
    let rgb_storage;
    let (pixels, chroma, ch): (&[u8], RgbChroma, usize) = match img {
        DynamicImage::ImageRgb8(rgb) => (rgb.as_raw(), RgbChroma::Rgb, 3),
        DynamicImage::ImageRgba8(rgba) => (rgba.as_raw(), RgbChroma::Rgba, 4),
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
            if ch == 4 {
                // Colour under fully transparent pixels is invisible; zero costs no bits
                // (libwebp does the same unless asked for `exact`).
                for px in dst.chunks_exact_mut(4).filter(|px| px[3] == 0) {
                    px[..3].fill(0);
                }
            }
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
