//! TIFF: strip by strip or tile by tile with the `tiff` crate, into the shrinking
//! accumulator.
//!
//! Chunks are read in index order (strips top to bottom; tiles left to right, row of
//! tiles by row of tiles), so the accumulator keeps the sums of one band of rows only.
//! Streamed: 8- or 16-bit unsigned grey, grey + alpha, RGB and RGBA, interleaved
//! (`PlanarConfiguration` 1), `BlackIsZero` or `RGB`; 16-bit samples stay 16-bit (the
//! reduction and everything after it run at 16 bits). Anything else (planar, palette,
//! CMYK, YCbCr, float, `WhiteIsZero`, bilevel) is decoded whole by `image`, within the
//! job's memory reservation. A single strip or tile larger than the decoder's chunk
//! limit fails with `decode_limit`.

use std::io::{Read, Seek};

use image::DynamicImage;
use tiff::decoder::{ChunkType, Decoder, DecodingResult};
use tiff::tags::Tag;
use tiff::ColorType;

use super::shrink::{self, factor_for, reduced_size, Sample, Shrinker};
use super::PipelineError;

/// The largest strip or tile the streaming decoder reads at once.
const MAX_CHUNK: usize = 256 << 20;

/// What the header says.
#[derive(Debug, Clone)]
pub(super) struct Header {
    pub width: u32,
    pub height: u32,
    pub orientation: u16,
    /// Samples per pixel and bits per sample, when the layout can be streamed.
    pub stream: Option<(usize, u8)>,
    /// Size of one strip or tile.
    pub chunk: (u32, u32),
    /// The ICC profile (tag 34675).
    pub icc: Option<Vec<u8>>,
}

pub(super) fn map_err(e: tiff::TiffError) -> PipelineError {
    match e {
        tiff::TiffError::LimitsExceeded => PipelineError::DecodeLimit("TIFF strip or tile over the decoder's limit".into()),
        tiff::TiffError::UnsupportedError(u) => PipelineError::UnsupportedFormat(format!("TIFF: {u}")),
        tiff::TiffError::IoError(io) => PipelineError::DecodeFailed(format!("truncated TIFF: {io}")),
        other => PipelineError::DecodeFailed(format!("TIFF: {other}")),
    }
}

fn open<R: Read + Seek>(input: R) -> Result<Decoder<R>, PipelineError> {
    let mut limits = tiff::decoder::Limits::default();
    limits.decoding_buffer_size = MAX_CHUNK;
    limits.intermediate_buffer_size = MAX_CHUNK;
    Ok(Decoder::new(input).map_err(map_err)?.with_limits(limits))
}

/// Reads the first image's directory.
pub(super) fn probe<R: Read + Seek>(input: R) -> Result<Header, PipelineError> {
    let mut d = open(input)?;
    header_of(&mut d)
}

fn header_of<R: Read + Seek>(d: &mut Decoder<R>) -> Result<Header, PipelineError> {
    let (width, height) = d.dimensions().map_err(map_err)?;
    let tag = |d: &mut Decoder<R>, t: Tag| d.find_tag_unsigned::<u32>(t).ok().flatten();
    let orientation = tag(d, Tag::Orientation).filter(|o| (1..=8).contains(o)).unwrap_or(1) as u16;
    let photometric = tag(d, Tag::PhotometricInterpretation);
    let planar = tag(d, Tag::PlanarConfiguration).unwrap_or(1);
    let sample_format = tag(d, Tag::SampleFormat).unwrap_or(1);
    let stream = match d.colortype().map_err(map_err)? {
        _ if planar != 1 || sample_format != 1 => None,
        ColorType::Gray(b @ (8 | 16)) if photometric == Some(1) => Some((1, b)),
        ColorType::GrayA(b @ (8 | 16)) if photometric == Some(1) => Some((2, b)),
        ColorType::RGB(b @ (8 | 16)) if photometric == Some(2) => Some((3, b)),
        ColorType::RGBA(b @ (8 | 16)) if photometric == Some(2) => Some((4, b)),
        _ => None,
    };
    let icc = d.get_tag_u8_vec(Tag::IccProfile).ok().filter(|v| !v.is_empty());
    Ok(Header { width, height, orientation, stream, chunk: d.chunk_dimensions(), icc })
}

/// Bytes the streamed decode holds: one chunk (compressed and decoded), a band of sums,
/// the reduced image.
pub(super) fn estimate(h: &Header, samples: usize, bits: u8, target: (u32, u32)) -> u64 {
    let k = factor_for(h.width, h.height, target);
    let (w, hh) = reduced_size(h.width, h.height, k);
    let ch = shrink::out_channels(samples) as u64;
    let sample = u64::from(bits / 8); // 1 or 2 bytes, and sums of 4 or 8
    let chunk = u64::from(h.chunk.0) * u64::from(h.chunk.1) * samples as u64 * sample;
    let band_rows = u64::from(h.chunk.1.div_ceil(k)) + 1;
    let sums = u64::from(w) * ch * 4 * sample * band_rows;
    chunk * 3 + u64::from(h.chunk.0) * ch * sample + sums + u64::from(w) * u64::from(hh) * ch * sample
}

/// Decodes the first image chunk by chunk, area-reduced to at least twice `target`: 8-bit
/// samples, or 16-bit ones for a 16-bit file.
pub(super) fn decode<R: Read + Seek>(input: R, target: (u32, u32)) -> Result<DynamicImage, PipelineError> {
    let mut d = open(input)?;
    let h = header_of(&mut d)?;
    match h.stream {
        Some((samples, 16)) => reduce::<R, u16>(d, &h, samples, target),
        Some((samples, _)) => reduce::<R, u8>(d, &h, samples, target),
        None => Err(PipelineError::UnsupportedFormat("TIFF layout not streamable".into())),
    }
}

/// The samples of a decoded chunk, when they are of this type.
trait ChunkSamples: Sample {
    fn of(data: &DecodingResult) -> Option<&[Self]>;
}

impl ChunkSamples for u8 {
    fn of(data: &DecodingResult) -> Option<&[u8]> {
        if let DecodingResult::U8(v) = data {
            Some(v)
        } else {
            None
        }
    }
}

impl ChunkSamples for u16 {
    fn of(data: &DecodingResult) -> Option<&[u16]> {
        if let DecodingResult::U16(v) = data {
            Some(v)
        } else {
            None
        }
    }
}

fn reduce<R: Read + Seek, S: ChunkSamples>(
    mut d: Decoder<R>,
    h: &Header,
    samples: usize,
    target: (u32, u32),
) -> Result<DynamicImage, PipelineError> {
    let k = factor_for(h.width, h.height, target);
    let out_ch = shrink::out_channels(samples);
    let mut shrinker = Shrinker::<S>::new(h.width, h.height, out_ch, k)?;
    let (cw, chh) = h.chunk;
    let (count, across) = match d.get_chunk_type() {
        ChunkType::Strip => (h.height.div_ceil(chh.max(1)), 1),
        ChunkType::Tile => {
            let across = h.width.div_ceil(cw.max(1));
            (across * h.height.div_ceil(chh.max(1)), across)
        }
    };
    let mut expanded = Vec::new();
    let short = || PipelineError::DecodeFailed("TIFF chunk shorter than its dimensions".into());
    for i in 0..count {
        let (x0, y0) = ((i % across) * cw, (i / across) * chh);
        let (dw, dh) = d.chunk_data_dimensions(i);
        let data = d.read_chunk(i).map_err(map_err)?;
        let data = S::of(&data).ok_or_else(|| PipelineError::UnsupportedFormat("TIFF sample type".into()))?;
        let stride = dw as usize * samples;
        for r in 0..dh as usize {
            let px = data.get(r * stride..(r + 1) * stride).ok_or_else(short)?;
            let px = shrink::to_layout(px, samples, &mut expanded);
            shrinker.add_row(y0 + r as u32, x0, 1, px)?;
        }
        if i % across == across - 1 {
            shrinker.rows_done(y0 + dh);
        }
    }
    shrinker.finish()
}
