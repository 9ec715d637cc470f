//! JPEG: a structural walk of the marker stream (dimensions, sampling, EXIF orientation,
//! completeness) and the shrink-on-load decode with libjpeg-turbo (`mozjpeg`).

use image::{DynamicImage, GrayImage, RgbImage};

use super::{Limits, PipelineError};

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
}

impl Header {
    fn progressive(&self) -> bool {
        self.sof == 0xC2
    }

    /// 8-bit Huffman-coded baseline/extended/progressive, grey or three components: what
    /// the scaled decode handles. Everything else (CMYK, 12-bit, arithmetic) goes to `image`.
    pub fn fast_path(&self) -> bool {
        matches!(self.sof, 0xC0..=0xC2)
            && self.precision == 8
            && matches!(self.sampling.len(), 1 | 3)
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
    Ok(Header { width, height, orientation: 1, complete: false, sof: marker, precision, sampling })
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

/// Bytes the decoder will allocate: the coefficient store of a progressive image
/// (full resolution, 2 bytes per coefficient), per-component planes and the output.
fn estimate_alloc(h: &Header, out_w: u64, out_h: u64) -> u64 {
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
    coefficients + 2 * comps * out_w * out_h
}

/// Decode with DCT-domain downscaling towards `target` (stored orientation).
pub(super) fn decode(data: &[u8], header: &Header, target: (u32, u32), limits: &Limits) -> Result<DynamicImage, PipelineError> {
    let shrink = choose_shrink(header.width, header.height, target);
    let out_w = ceil_div(u64::from(header.width), u64::from(shrink));
    let out_h = ceil_div(u64::from(header.height), u64::from(shrink));
    let needed = estimate_alloc(header, out_w, out_h);
    if needed > limits.max_alloc_bytes {
        return Err(PipelineError::DecodeLimit(format!(
            "decoding needs about {needed} bytes, over the {} byte limit",
            limits.max_alloc_bytes
        )));
    }

    // libjpeg-turbo's decoder (as shipped in mozjpeg): its Huffman decoding is what
    // bounds this path, and it is ~25 % faster than jpeg-decoder's on the corpus (see
    // BENCHMARKS.md). `scale` is in eighths. Errors are libjpeg's `error_exit`, turned
    // into `io::Error`s by the crate (the C code is built with unwinding).
    let grey = header.sampling.len() == 1;
    let decoded = std::panic::catch_unwind(|| -> std::io::Result<(u32, u32, Vec<u8>)> {
        let mut d = mozjpeg::Decompress::with_markers(&[]).from_mem(data)?;
        d.scale((8 / shrink) as u8);
        let (pixels, w, h) = if grey {
            let mut started = d.grayscale()?;
            let (w, h) = (started.width(), started.height());
            let px: Vec<u8> = started.read_scanlines()?;
            started.finish()?;
            (px, w, h)
        } else {
            let mut started = d.rgb()?;
            let (w, h) = (started.width(), started.height());
            let px: Vec<[u8; 3]> = started.read_scanlines()?;
            started.finish()?;
            (px.into_flattened(), w, h)
        };
        Ok((w as u32, h as u32, pixels))
    });
    let (w, h, pixels) = match decoded {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return Err(corrupt(&format!("JPEG: {e}"))),
        Err(_) => return Err(corrupt("JPEG decoder failed")),
    };
    let img = if grey {
        GrayImage::from_raw(w, h, pixels).map(DynamicImage::ImageLuma8)
    } else {
        RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8)
    };
    img.ok_or_else(|| corrupt("JPEG decoder returned a short pixel buffer"))
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
