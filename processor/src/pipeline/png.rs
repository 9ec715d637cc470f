//! PNG: row by row with the `png` crate, into the shrinking accumulator.
//!
//! Palette, low bit depths and `tRNS` are expanded by the decoder, one row at a time;
//! 16-bit samples stay 16-bit (the reduction and everything after it run at 16 bits). An Adam7-interlaced file arrives as seven passes
//! over the whole image; each pass row is added at its own pixel positions, so the
//! result is exactly the non-interlaced one. The bound this reaches for interlaced
//! files: the accumulator's sums of the whole reduced image (4 bytes per channel per
//! reduced pixel, see [`estimate`]), instead of one row of them.

use std::io::{BufRead, Seek};

use image::DynamicImage;
use png::{ColorType, Transformations};

use super::shrink::{self, factor_for, reduced_size, Sample, Shrinker};
use super::PipelineError;

/// The Adam7 passes: (first column, column step, first row, row step).
const ADAM7: [(u32, u32, u32, u32); 7] =
    [(0, 8, 0, 8), (4, 8, 0, 8), (0, 4, 4, 8), (2, 4, 0, 4), (0, 2, 2, 4), (1, 2, 0, 2), (0, 1, 1, 2)];

/// What the header says.
#[derive(Debug, Clone)]
pub(super) struct Header {
    pub width: u32,
    pub height: u32,
    pub interlaced: bool,
    /// Channels after expansion: 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA.
    pub channels: usize,
    /// 16-bit samples (after expansion every other depth is 8).
    pub sixteen: bool,
    pub orientation: u16,
    /// The `iCCP` profile (decompressed by the decoder).
    pub icc: Option<Vec<u8>>,
}

fn map_err(e: png::DecodingError) -> PipelineError {
    match e {
        png::DecodingError::LimitsExceeded => PipelineError::DecodeLimit("PNG decoder limit reached".into()),
        png::DecodingError::IoError(io) => PipelineError::DecodeFailed(format!("truncated PNG: {io}")),
        other => PipelineError::DecodeFailed(format!("PNG: {other}")),
    }
}

fn reader<R: BufRead + Seek>(input: R) -> Result<png::Reader<R>, PipelineError> {
    let mut decoder = png::Decoder::new(input);
    decoder.set_transformations(Transformations::EXPAND);
    decoder.set_ignore_text_chunk(true);
    decoder.read_info().map_err(map_err)
}

/// Reads the header (and the `eXIf` orientation when it precedes the image data).
pub(super) fn probe<R: BufRead + Seek>(input: R) -> Result<Header, PipelineError> {
    let r = reader(input)?;
    header_of(&r)
}

fn header_of<R: BufRead + Seek>(r: &png::Reader<R>) -> Result<Header, PipelineError> {
    let info = r.info();
    let (color, depth) = r.output_color_type();
    let channels = match color {
        ColorType::Grayscale => 1,
        ColorType::GrayscaleAlpha => 2,
        ColorType::Rgb => 3,
        ColorType::Rgba => 4,
        ColorType::Indexed => return Err(PipelineError::DecodeFailed("PNG palette was not expanded".into())),
    };
    let orientation = info
        .exif_metadata
        .as_deref()
        .and_then(image::metadata::Orientation::from_exif_chunk)
        .map(|o| u16::from(o.to_exif()))
        .unwrap_or(1);
    let icc = info.icc_profile.as_deref().map(<[u8]>::to_vec);
    let sixteen = depth == png::BitDepth::Sixteen;
    Ok(Header { width: info.width, height: info.height, interlaced: info.interlaced, channels, sixteen, orientation, icc })
}

/// Bytes the decode holds: rows of the decoder, the accumulator's sums, the reduced image.
pub(super) fn estimate(h: &Header, target: (u32, u32)) -> u64 {
    let k = factor_for(h.width, h.height, target);
    let (w, hh) = reduced_size(h.width, h.height, k);
    let ch = shrink::out_channels(h.channels) as u64;
    let (sample, sum) = if h.sixteen { (2, 8) } else { (1, 4) };
    let pixels = u64::from(w) * u64::from(hh) * ch;
    let reduced = pixels * sample;
    let sums = if h.interlaced && k > 1 { pixels * sum } else { u64::from(w) * ch * sum * 2 };
    // Current and previous row at 16 bits per sample, the row as samples and expanded,
    // zlib's window.
    let rows = u64::from(h.width) * 8 * 6 + (1 << 20);
    rows + sums + reduced
}

/// Decodes the first image, area-reduced to at least twice `target`: 8-bit samples, or
/// 16-bit ones for a 16-bit file.
pub(super) fn decode<R: BufRead + Seek>(input: R, target: (u32, u32)) -> Result<DynamicImage, PipelineError> {
    let r = reader(input)?;
    let h = header_of(&r)?;
    if h.sixteen {
        reduce::<R, u16>(r, &h, target)
    } else {
        reduce::<R, u8>(r, &h, target)
    }
}

/// Samples of a decoded row: PNG stores 16-bit ones big-endian.
trait RowSamples: Sample {
    fn samples<'a>(bytes: &'a [u8], scratch: &'a mut Vec<Self>) -> &'a [Self];
}

impl RowSamples for u8 {
    fn samples<'a>(bytes: &'a [u8], _: &'a mut Vec<u8>) -> &'a [u8] {
        bytes
    }
}

impl RowSamples for u16 {
    fn samples<'a>(bytes: &'a [u8], scratch: &'a mut Vec<u16>) -> &'a [u16] {
        scratch.clear();
        scratch.extend(bytes.chunks_exact(2).map(|b| u16::from_be_bytes([b[0], b[1]])));
        scratch
    }
}

fn reduce<R: BufRead + Seek, S: RowSamples>(
    mut r: png::Reader<R>,
    h: &Header,
    target: (u32, u32),
) -> Result<DynamicImage, PipelineError> {
    let k = factor_for(h.width, h.height, target);
    let out_ch = shrink::out_channels(h.channels);
    let mut shrinker = Shrinker::<S>::new(h.width, h.height, out_ch, k)?;
    let line = r.output_line_size(h.width).ok_or_else(|| PipelineError::DecodeLimit("PNG row too long".into()))?;
    let mut row = vec![0u8; line];
    let (mut samples, mut expanded) = (Vec::new(), Vec::new());
    let bytes = |pixels: u32| pixels as usize * h.channels * S::BYTES as usize;
    if !h.interlaced {
        for y in 0..h.height {
            next_row(&mut r, &mut row)?;
            let px = S::samples(&row[..bytes(h.width)], &mut samples);
            let px = shrink::to_layout(px, h.channels, &mut expanded);
            shrinker.add_row(y, 0, 1, px)?;
            if y % 16 == 15 {
                shrinker.rows_done(y + 1);
            }
        }
    } else {
        for (x0, dx, y0, dy) in ADAM7 {
            let count = if h.width > x0 { (h.width - x0).div_ceil(dx) } else { 0 };
            let lines = if h.height > y0 { (h.height - y0).div_ceil(dy) } else { 0 };
            if count == 0 {
                continue; // the decoder skips empty passes too
            }
            for line in 0..lines {
                next_row(&mut r, &mut row)?;
                let px = S::samples(&row[..bytes(count)], &mut samples);
                let px = shrink::to_layout(px, h.channels, &mut expanded);
                shrinker.add_row(y0 + line * dy, x0, dx, px)?;
            }
        }
    }
    // Up to IEND: a file cut after its pixel data is still a truncated file.
    r.finish().map_err(map_err)?;
    shrinker.finish()
}

fn next_row<R: BufRead + Seek>(r: &mut png::Reader<R>, row: &mut [u8]) -> Result<(), PipelineError> {
    match r.read_row(row).map_err(map_err)? {
        Some(_) => Ok(()),
        None => Err(PipelineError::DecodeFailed("truncated PNG: fewer rows than the header says".into())),
    }
}
