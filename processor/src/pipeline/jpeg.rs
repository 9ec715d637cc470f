//! JPEG: a structural walk of the marker stream (dimensions, sampling, EXIF orientation,
//! completeness) and the shrink-on-load decode with libjpeg-turbo (`mozjpeg`), read from
//! the file scanline by scanline.

use std::cell::Cell;
use std::io::{BufRead, Read};
use std::panic::AssertUnwindSafe;

use image::DynamicImage;

use super::colour::CmykToRgb;
use super::shrink::{self, Shrinker};
use super::PipelineError;

/// After DCT-domain scaling the decoded image must still be at least this many times
/// the target in both dimensions, so the final Lanczos resize does real filtering.
/// libvips (`vipsthumbnail`) and Pillow (`reducing_gap=2`) use the same margin.
const SHRINK_HEADROOM: u64 = 2;

/// What the marker walk found.
#[derive(Debug, Clone)]
pub(super) struct Header {
    pub width: u32,
    pub height: u32,
    /// EXIF orientation 1..=8 (1 when absent or invalid).
    pub orientation: u16,
    /// The stream reached its EOI marker.
    pub complete: bool,
    /// SOF marker type (0xC0..=0xCF).
    sof: u8,
    precision: u8,
    /// (horizontal, vertical) sampling factor of each component.
    sampling: Vec<(u8, u8)>,
    /// The ICC profile from the `APP2 ICC_PROFILE` segments.
    pub icc: Option<Vec<u8>>,
    /// An Adobe `APP14` segment: Photoshop's CMYK is stored inverted.
    adobe: bool,
}

impl Header {
    fn progressive(&self) -> bool {
        self.sof == 0xC2
    }

    /// Four components: CMYK (or YCCK, which libjpeg turns into CMYK).
    pub fn cmyk(&self) -> bool {
        self.sampling.len() == 4
    }

    /// 8-bit Huffman-coded baseline/extended/progressive, grey, three or four components:
    /// what libjpeg decodes here. Everything else (12-bit, arithmetic) goes to `image`.
    pub fn fast_path(&self) -> bool {
        matches!(self.sof, 0xC0..=0xC2)
            && self.precision == 8
            && matches!(self.sampling.len(), 1 | 3 | 4)
            && self.sampling.iter().all(|&(h, v)| (1..=4).contains(&h) && (1..=4).contains(&v))
    }
}

fn corrupt(msg: &str) -> PipelineError {
    PipelineError::DecodeFailed(msg.to_string())
}

/// Walk the JPEG marker structure from SOI to EOI.
///
/// Returns the header even when the data is truncated after the frame header (with
/// `complete == false`), so that the caller can report an oversized image first.
pub(super) fn parse_header(data: &[u8]) -> Result<Header, PipelineError> {
    if data.len() < 4 || data[0] != 0xFF || data[1] != 0xD8 {
        return Err(corrupt("not a JPEG stream (no SOI marker)"));
    }
    let mut header: Option<Header> = None;
    let mut orientation: u16 = 1;
    let mut icc_chunks: Vec<(u8, u8, Vec<u8>)> = Vec::new();
    let mut adobe = false;
    let mut pos = 2usize;
    let complete = loop {
        // Find the next marker, skipping any stray bytes and 0xFF fill bytes.
        match memchr::memchr(0xFF, &data[pos..]) {
            Some(skip) => pos += skip,
            None => break false,
        }
        while pos < data.len() && data[pos] == 0xFF {
            pos += 1;
        }
        if pos >= data.len() {
            break false;
        }
        let marker = data[pos];
        pos += 1;
        match marker {
            0xD9 => break true,
            0xD8 => return Err(corrupt("unexpected second SOI marker")),
            0x00 | 0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        if pos + 2 > data.len() {
            break false;
        }
        let len = usize::from(u16::from_be_bytes([data[pos], data[pos + 1]]));
        if len < 2 {
            return Err(corrupt("invalid marker segment length"));
        }
        let end = pos + len;
        if end > data.len() {
            break false;
        }
        let payload = &data[pos + 2..end];
        pos = end;
        match marker {
            // SOFn (C4 = DHT, C8 = JPG extension, CC = DAC are not frame headers).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                if header.is_some() {
                    // Hierarchical JPEG: several frames.
                    return Err(PipelineError::UnsupportedFormat("hierarchical JPEG (several frames)".into()));
                }
                header = Some(parse_sof(marker, payload)?);
            }
            0xE1 if payload.starts_with(b"Exif\0\0") && orientation == 1 => {
                orientation =
                    image::metadata::Orientation::from_exif_chunk(&payload[6..]).map(|o| u16::from(o.to_exif())).unwrap_or(1);
            }
            0xE2 if payload.len() > 14 && payload.starts_with(b"ICC_PROFILE\0") && icc_chunks.len() < 256 => {
                icc_chunks.push((payload[12], payload[13], payload[14..].to_vec()));
            }
            0xEE if payload.starts_with(b"Adobe") => adobe = true,
            0xDA => {
                if header.is_none() {
                    return Err(corrupt("scan before frame header"));
                }
                // Entropy-coded data: runs to the next marker that is neither a stuffed
                // 0xFF00 nor a restart marker.
                loop {
                    match memchr::memchr(0xFF, &data[pos..]) {
                        Some(skip) => pos += skip,
                        None => {
                            pos = data.len();
                            break;
                        }
                    }
                    match data.get(pos + 1) {
                        None => {
                            pos = data.len();
                            break;
                        }
                        Some(0x00) | Some(0xD0..=0xD7) => pos += 2,
                        Some(_) => break,
                    }
                }
            }
            _ => {}
        }
    };
    let mut header = header.ok_or_else(|| {
        if complete {
            corrupt("JPEG without a frame header")
        } else {
            corrupt("truncated JPEG: data ends before the frame header")
        }
    })?;
    header.orientation = orientation;
    header.complete = complete;
    header.icc = super::colour::join_jpeg_chunks(icc_chunks);
    header.adobe = adobe;
    Ok(header)
}

fn parse_sof(marker: u8, p: &[u8]) -> Result<Header, PipelineError> {
    if p.len() < 6 {
        return Err(corrupt("short frame header"));
    }
    let precision = p[0];
    let height = u32::from(u16::from_be_bytes([p[1], p[2]]));
    let width = u32::from(u16::from_be_bytes([p[3], p[4]]));
    let ncomp = usize::from(p[5]);
    if ncomp == 0 || p.len() < 6 + 3 * ncomp {
        return Err(corrupt("invalid component count in frame header"));
    }
    if height == 0 {
        return Err(PipelineError::UnsupportedFormat("JPEG with height defined later (DNL marker)".into()));
    }
    if width == 0 {
        return Err(corrupt("JPEG with zero width"));
    }
    let sampling = (0..ncomp)
        .map(|i| {
            let s = p[6 + 3 * i + 1];
            (s >> 4, s & 0x0F)
        })
        .collect();
    Ok(Header { width, height, orientation: 1, complete: false, sof: marker, precision, sampling, icc: None, adobe: false })
}

fn ceil_div(a: u64, b: u64) -> u64 {
    a.div_ceil(b)
}

/// Largest DCT shrink (1, 2, 4 or 8) that keeps `SHRINK_HEADROOM` x the target.
pub(super) fn choose_shrink(width: u32, height: u32, target: (u32, u32)) -> u32 {
    let (w, h) = (u64::from(width), u64::from(height));
    let (tw, th) = (u64::from(target.0.max(1)), u64::from(target.1.max(1)));
    for shrink in [8u64, 4, 2] {
        if ceil_div(w, shrink) >= SHRINK_HEADROOM * tw && ceil_div(h, shrink) >= SHRINK_HEADROOM * th {
            return shrink as u32;
        }
    }
    1
}

/// Bytes the decode holds: the coefficient store of a progressive image (full
/// resolution, 2 bytes per coefficient: libjpeg needs every scan before the first row),
/// libjpeg's row groups and our band of rows at the scaled width, the accumulator.
pub(super) fn estimate(h: &Header, target: (u32, u32)) -> u64 {
    let shrink = choose_shrink(h.width, h.height, target);
    let hmax = u64::from(h.sampling.iter().map(|s| s.0).max().unwrap_or(1).max(1));
    let vmax = u64::from(h.sampling.iter().map(|s| s.1).max().unwrap_or(1).max(1));
    let mcus_x = ceil_div(u64::from(h.width), 8 * hmax);
    let mcus_y = ceil_div(u64::from(h.height), 8 * vmax);
    let comps = h.sampling.len() as u64;
    let coefficients = if h.progressive() {
        h.sampling.iter().map(|&(sh, sv)| mcus_x * u64::from(sh) * mcus_y * u64::from(sv) * 64 * 2).sum()
    } else {
        0
    };
    let out_w = ceil_div(u64::from(h.width), u64::from(shrink));
    let out_h = ceil_div(u64::from(h.height), u64::from(shrink));
    let k = u64::from(shrink::factor_for(out_w as u32, out_h as u32, target));
    let rows = out_w * comps * (8 * vmax * 4 + BAND as u64) + u64::from(h.width) * comps * 8 * vmax;
    let reduced = ceil_div(out_w, k) * ceil_div(out_h, k) * comps;
    coefficients + rows + reduced * 2 + ceil_div(out_w, k) * comps * 4 * 2
}

/// Scanlines read from libjpeg at once.
const BAND: usize = 16;

/// A reader that notes when libjpeg asked for more data than the file has: libjpeg
/// then fakes an end-of-image marker and only warns, so the truncation is caught here.
struct Tap<'a, R> {
    inner: R,
    eof: &'a Cell<bool>,
}

impl<R: BufRead> Read for Tap<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof.set(true);
        }
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Tap<'_, R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.inner.fill_buf()?.is_empty() {
            self.eof.set(true);
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, n: usize) {
        self.inner.consume(n)
    }
}

/// Decode with DCT-domain downscaling towards `target` (stored orientation), streaming
/// scanlines into the shrinking accumulator (for reductions below 1/8).
pub(super) fn decode<R: BufRead>(input: R, header: &Header, target: (u32, u32)) -> Result<DynamicImage, PipelineError> {
    let shrink = choose_shrink(header.width, header.height, target);
    // libjpeg-turbo's decoder (as shipped in mozjpeg): its Huffman decoding is what
    // bounds this path, and it is ~25 % faster than jpeg-decoder's on the corpus (see
    // BENCHMARKS.md). `scale` is in eighths. Errors are libjpeg's `error_exit`, turned
    // into panics or `io::Error`s by the crate (the C code is built with unwinding).
    let grey = header.sampling.len() == 1;
    let cmyk = if header.cmyk() { Some(CmykToRgb::new(header.icc.as_deref(), header.adobe)?) } else { None };
    let eof = Cell::new(false);
    let io = |e: std::io::Error| corrupt(&format!("JPEG: {e}"));
    let decoded = std::panic::catch_unwind(AssertUnwindSafe(|| -> Result<DynamicImage, PipelineError> {
        let mut d = mozjpeg::Decompress::with_markers(&[]).from_reader(Tap { inner: input, eof: &eof }).map_err(io)?;
        d.scale((8 / shrink) as u8);
        let mut started = match (grey, cmyk.is_some()) {
            (true, _) => d.grayscale(),
            (false, true) => d.to_colorspace(mozjpeg::ColorSpace::JCS_CMYK),
            (false, false) => d.rgb(),
        }
        .map_err(io)?;
        let (w, h) = (started.width(), started.height());
        let ch = if grey { 1 } else { 3 };
        let k = shrink::factor_for(w as u32, h as u32, target);
        let mut acc = Shrinker::<u8>::new(w as u32, h as u32, ch, k)?;
        // CMYK arrives at 4 bytes per pixel and is converted to RGB row by row.
        let line_in = w * if cmyk.is_some() { 4 } else { ch };
        let line = w * ch;
        let mut band = vec![0u8; line_in * BAND];
        let mut rgb_row = vec![0u8; if cmyk.is_some() { line } else { 0 }];
        let mut y = 0;
        while y < h {
            let n = BAND.min(h - y);
            started.read_scanlines_into(&mut band[..n * line_in]).map_err(io)?;
            for (i, row) in band[..n * line_in].chunks_exact(line_in).enumerate() {
                let row = match &cmyk {
                    Some(c) => {
                        c.row(row, &mut rgb_row);
                        &rgb_row[..]
                    }
                    None => row,
                };
                acc.add_row((y + i) as u32, 0, 1, row)?;
            }
            y += n;
            acc.rows_done(y as u32);
        }
        started.finish().map_err(io)?;
        acc.finish()
    }));
    match decoded {
        _ if eof.get() => Err(corrupt("truncated JPEG: data ends before the end-of-image marker")),
        Ok(result) => result,
        Err(payload) => match payload.downcast_ref::<String>() {
            Some(msg) => Err(corrupt(msg)),
            None => Err(corrupt("JPEG decoder failed")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrink_matches_libvips_choices() {
        // vipsthumbnail -s 400x300 picks these pre-shrink factors (VIPS_INFO=1).
        assert_eq!(choose_shrink(5640, 3172, (400, 225)), 4);
        assert_eq!(choose_shrink(3840, 2160, (400, 225)), 4);
        assert_eq!(choose_shrink(1680, 1050, (400, 250)), 2);
        assert_eq!(choose_shrink(640, 480, (400, 300)), 1);
        assert_eq!(choose_shrink(8000, 6000, (400, 300)), 8);
    }
}
