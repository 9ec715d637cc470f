//! WebP: libwebp's incremental decoder with its scaler, fed from the file.
//!
//! libwebp decodes a lossy WebP macroblock row by macroblock row and, with
//! `use_scaling`, area-averages each row into the output as it goes, to twice the
//! largest frame exactly (any ratio, where [`super::shrink`] takes integer factors), so
//! the full-size image is never in memory. The
//! output is written straight into our buffer (`is_external_memory`). Bounds that
//! remain, all counted in [`estimate`]: libwebp keeps the compressed data it has been
//! given (at most the file), a lossy image with alpha keeps a full-size alpha plane (1
//! byte per pixel), and a lossless image its full-size ARGB picture (4 bytes per pixel).
//! Animated WebPs are not handled here (`image` decodes their first frame).
//!
//! This is the one module of the crate with `unsafe` code: the calls into libwebp-sys.
#![allow(unsafe_code)]

use std::io::Read;

use image::{DynamicImage, RgbImage, RgbaImage};
use libwebp_sys as ffi;

use super::PipelineError;

/// What the bitstream header says.
#[derive(Debug, Clone, Copy)]
pub(super) struct Features {
    pub width: u32,
    pub height: u32,
    pub has_alpha: bool,
    pub animated: bool,
    pub lossless: bool,
}

/// Reads the features from the first bytes of the file (`None` until enough is there).
pub(super) fn features(head: &[u8]) -> Result<Features, PipelineError> {
    // SAFETY: WebPGetFeatures reads at most `head.len()` bytes from `head` and writes
    // only into `f`, a plain struct it fully initialises on success.
    let mut f: ffi::WebPBitstreamFeatures = unsafe { std::mem::zeroed() };
    let status = unsafe { ffi::WebPGetFeatures(head.as_ptr(), head.len(), &mut f) };
    if status != ffi::VP8StatusCode::VP8_STATUS_OK {
        return Err(PipelineError::DecodeFailed(format!("WebP header: {status:?}")));
    }
    Ok(Features {
        width: f.width.max(0) as u32,
        height: f.height.max(0) as u32,
        has_alpha: f.has_alpha != 0,
        animated: f.has_animation != 0,
        lossless: f.format == 2,
    })
}

/// The size libwebp's scaler reduces to: twice `target` (the margin kept for the final
/// Lanczos resize), keeping the aspect ratio; libwebp's area scaler takes any ratio, so
/// no integer factor is needed. The full size when that is not larger.
pub(super) fn scaled_size(f: &Features, target: (u32, u32)) -> (u32, u32) {
    let (sw, sh) = (u64::from(f.width.max(1)), u64::from(f.height.max(1)));
    let (tw, th) = (2 * u64::from(target.0.max(1)), 2 * u64::from(target.1.max(1)));
    if sw <= tw || sh <= th {
        return (f.width, f.height);
    }
    // The side that binds is the one whose ratio to twice the target is the smaller.
    if sw * th <= sh * tw {
        (tw as u32, (sh * tw).div_ceil(sw).max(th) as u32)
    } else {
        ((sw * th).div_ceil(sh).max(tw) as u32, th as u32)
    }
}

/// Bytes libwebp and this module hold while decoding towards `target`.
pub(super) fn estimate(f: &Features, file_len: u64, target: (u32, u32)) -> u64 {
    let (w, h) = scaled_size(f, target);
    let ch = if f.has_alpha { 4 } else { 3 };
    let pixels = u64::from(f.width) * u64::from(f.height);
    let internal = if f.lossless {
        pixels * 4
    } else if f.has_alpha {
        pixels
    } else {
        0
    };
    // Row caches: a few macroblock rows of Y, U, V and of the scaler, at full width.
    let rows = u64::from(f.width) * 64 * 4;
    file_len + internal + rows + u64::from(w) * u64::from(h) * ch
}

struct Decoder(*mut ffi::WebPIDecoder);

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: the pointer came from WebPIDecode and is deleted once, here.
        unsafe { ffi::WebPIDelete(self.0) }
    }
}

/// Decodes a still WebP from `reader`, area-reduced to twice `target`.
pub(super) fn decode<R: Read>(mut reader: R, f: &Features, target: (u32, u32)) -> Result<DynamicImage, PipelineError> {
    let (w, h) = scaled_size(f, target);
    let scaled = (w, h) != (f.width, f.height);
    let ch: usize = if f.has_alpha { 4 } else { 3 };
    let stride = w as usize * ch;
    let len = stride * h as usize;
    let mut out: Vec<u8> = Vec::new();
    out.try_reserve_exact(len).map_err(|_| PipelineError::DecodeLimit(format!("could not allocate {len} bytes")))?;
    out.resize(len, 0);

    // SAFETY: WebPInitDecoderConfig fills in a zeroed, plain C struct.
    let mut config: ffi::WebPDecoderConfig = unsafe { std::mem::zeroed() };
    if !unsafe { ffi::WebPInitDecoderConfig(&mut config) } {
        return Err(PipelineError::DecodeFailed("libwebp version mismatch".into()));
    }
    config.options.use_scaling = i32::from(scaled);
    config.options.scaled_width = w as i32;
    config.options.scaled_height = h as i32;
    config.output.colorspace = if f.has_alpha { ffi::WEBP_CSP_MODE::MODE_RGBA } else { ffi::WEBP_CSP_MODE::MODE_RGB };
    config.output.is_external_memory = 1;
    config.output.width = w as i32;
    config.output.height = h as i32;
    // The union's RGBA member is the one libwebp reads for RGB(A) modes. `out` outlives
    // the decoder (`idec` is dropped first), is not touched by us until decoding ends,
    // and has `stride * h` bytes.
    config.output.u.RGBA = ffi::WebPRGBABuffer { rgba: out.as_mut_ptr(), stride: stride as i32, size: len };
    // SAFETY: a null/0 input starts an empty incremental decoder; `config` lives until
    // the decoder is deleted (it is declared before `idec`, so dropped after it).
    let idec = Decoder(unsafe { ffi::WebPIDecode(std::ptr::null(), 0, &mut config) });
    if idec.0.is_null() {
        return Err(PipelineError::DecodeFailed("libwebp could not start decoding".into()));
    }
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = read_some(&mut reader, &mut buf)?;
        if n == 0 {
            return Err(PipelineError::DecodeFailed("truncated WebP: data ends before the image".into()));
        }
        // SAFETY: `buf[..n]` is initialised; libwebp copies what it keeps.
        let status = unsafe { ffi::WebPIAppend(idec.0, buf.as_ptr(), n) };
        match status {
            ffi::VP8StatusCode::VP8_STATUS_OK => break,
            ffi::VP8StatusCode::VP8_STATUS_SUSPENDED => continue,
            ffi::VP8StatusCode::VP8_STATUS_OUT_OF_MEMORY => {
                return Err(PipelineError::DecodeLimit("libwebp ran out of memory".into()))
            }
            ffi::VP8StatusCode::VP8_STATUS_UNSUPPORTED_FEATURE => {
                return Err(PipelineError::UnsupportedFormat("WebP feature not supported".into()))
            }
            other => return Err(PipelineError::DecodeFailed(format!("WebP: {other:?}"))),
        }
    }
    drop(idec);
    let img = if f.has_alpha {
        RgbaImage::from_raw(w, h, out).map(DynamicImage::ImageRgba8)
    } else {
        RgbImage::from_raw(w, h, out).map(DynamicImage::ImageRgb8)
    };
    img.ok_or_else(|| PipelineError::DecodeFailed("WebP decoder returned a short buffer".into()))
}

fn read_some<R: Read>(reader: &mut R, buf: &mut [u8]) -> Result<usize, PipelineError> {
    loop {
        match reader.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(PipelineError::Io { path: "source".into(), source: e }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_to_twice_the_target_keeping_the_aspect_ratio() {
        let f = |width, height| Features { width, height, has_alpha: false, animated: false, lossless: false };
        assert_eq!(scaled_size(&f(16383, 16383), (2048, 2048)), (4096, 4096));
        assert_eq!(scaled_size(&f(16000, 9000), (2048, 1152)), (4096, 2304));
        assert_eq!(scaled_size(&f(9000, 16000), (1152, 2048)), (2304, 4096));
        // Cover frames are wider than the box on one side: both sides stay at least twice.
        let (w, h) = scaled_size(&f(10000, 3000), (400, 120));
        assert!(w >= 800 && h >= 240 && (w, h) == (800, 240), "{w}x{h}");
        assert_eq!(scaled_size(&f(3000, 2000), (2048, 1365)), (3000, 2000), "no scaling below twice");
    }
}
