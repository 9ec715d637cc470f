//! PNG: row by row with the `png` crate, into the shrinking accumulator.
//!
//! Palette, low bit depths and `tRNS` are expanded and 16-bit samples reduced to 8 bits
//! by the decoder, one row at a time. An Adam7-interlaced file arrives as seven passes
//! over the whole image; each pass row is added at its own pixel positions, so the
//! result is exactly the non-interlaced one. The bound this reaches for interlaced
//! files: the accumulator's sums of the whole reduced image (4 bytes per channel per
//! reduced pixel, see [`estimate`]), instead of one row of them.

use std::io::{BufRead, Seek};

use image::DynamicImage;
use png::{ColorType, Transformations};

use super::shrink::{self, factor_for, reduced_size, Shrinker};
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
    decoder.set_transformations(Transformations::EXPAND | Transformations::STRIP_16);
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
    let channels = match r.output_color_type().0 {
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
    Ok(Header { width: info.width, height: info.height, interlaced: info.interlaced, channels, orientation, icc })
}

/// Bytes the decode holds: rows of the decoder, the accumulator's sums, the reduced image.
pub(super) fn estimate(h: &Header, target: (u32, u32)) -> u64 {
    let k = factor_for(h.width, h.height, target);
    let (w, hh) = reduced_size(h.width, h.height, k);
    let ch = shrink::out_channels(h.channels) as u64;
    let reduced = u64::from(w) * u64::from(hh) * ch;
    let sums = if h.interlaced && k > 1 { reduced * 4 } else { u64::from(w) * ch * 4 * 2 };
    // Current and previous row at 16 bits per sample, the expanded row, zlib's window.
    let rows = u64::from(h.width) * 8 * 4 + (1 << 20);
    rows + sums + reduced
}

/// Decodes the first image, area-reduced to at least twice `target`.
pub(super) fn decode<R: BufRead + Seek>(input: R, target: (u32, u32)) -> Result<DynamicImage, PipelineError> {
    let mut r = reader(input)?;
    let h = header_of(&r)?;
    let k = factor_for(h.width, h.height, target);
    let out_ch = shrink::out_channels(h.channels);
    let mut shrinker = Shrinker::new(h.width, h.height, out_ch, k)?;
    let line = r.output_line_size(h.width).ok_or_else(|| PipelineError::DecodeLimit("PNG row too long".into()))?;
    let mut row = vec![0u8; line];
    let mut expanded = Vec::new();
    if !h.interlaced {
        for y in 0..h.height {
            next_row(&mut r, &mut row)?;
            let px = shrink::to_layout(&row[..h.width as usize * h.channels], h.channels, &mut expanded);
            shrinker.add_row(y, 0, 1, px)?;
            if y % 16 == 15 {
                shrinker.rows_done(y + 1);
            }
        }
    } else {
        for (x0, dx, y0, dy) in ADAM7 {
            let samples = if h.width > x0 { (h.width - x0).div_ceil(dx) } else { 0 };
            let lines = if h.height > y0 { (h.height - y0).div_ceil(dy) } else { 0 };
            if samples == 0 {
                continue; // the decoder skips empty passes too
            }
            for line in 0..lines {
                next_row(&mut r, &mut row)?;
                let px = shrink::to_layout(&row[..samples as usize * h.channels], h.channels, &mut expanded);
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
