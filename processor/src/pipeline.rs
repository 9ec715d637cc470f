//! The image pipeline: decode an uploaded image once, render every preset variant.
//!
//! Pure and synchronous: no I/O besides reading the source file, no async, no global
//! state. The processor service calls [`render_file`] from `tokio::task::spawn_blocking`.
//!
//! How a file is rendered:
//!
//! 1. The file is read into memory (refused with [`PipelineError::DecodeLimit`] if it is
//!    larger than [`Limits::max_alloc_bytes`]) and its format is sniffed from its magic
//!    bytes, never from its name.
//! 2. The header is parsed and the pixel count checked against [`Limits::max_pixels`]
//!    *before* anything is decoded ([`PipelineError::ImageTooLarge`]); the memory the decode
//!    will need is estimated and checked against [`Limits::max_alloc_bytes`]
//!    ([`PipelineError::DecodeLimit`]), and the decoders are given the same allocation limit.
//! 3. The image is decoded once. When the largest preset is at least 4x smaller than a
//!    JPEG, it is decoded with DCT-domain downscaling (`jpeg-decoder`'s 1/2, 1/4, 1/8
//!    scaled IDCT), the "shrink-on-load" libvips does: the full-size image is never
//!    materialised. Like libvips and Pillow, a factor of two is left for the final
//!    filtered resize, so quality is unaffected. Other JPEGs (and CMYK, 12-bit,
//!    arithmetic-coded ones) are decoded at full size by `image`'s zune-jpeg, which is
//!    faster than `jpeg-decoder` at full size; PNG, WebP, GIF (first frame) and TIFF by
//!    `image`.
//! 4. The largest variant is resized from the decoded image (Lanczos3, `fast_image_resize`,
//!    SIMD), then EXIF orientation is applied to it, so every variant is upright. Each
//!    smaller variant is derived from the smallest already-rendered variant that is at
//!    least as large, and presets of equal size share pixels.
//! 5. Each variant is encoded: JPEG with `jpeg-encoder` (4:2:0 with box-averaged chroma
//!    below quality 90, 4:4:4 from 90), PNG with `image`, WebP lossy with libwebp
//!    (`webp` crate). Transparent images are flattened onto white for JPEG. No metadata
//!    (EXIF, ICC) is copied into variants, so they cannot be rotated a second time.
//!
//! Any panic inside a decoder or encoder is caught and reported as an error: the
//! pipeline never unwinds into the caller.

mod decode;
mod encode;
mod jpeg;
mod resize;
#[cfg(test)]
mod tests;

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use image::DynamicImage;
use serde::{Deserialize, Serialize};

pub use decode::sniff_format;

pub use imagelake_core::config::{Fit, OutputFormat, VariantPreset as Preset};

/// The size of `preset`'s variant for an upright source of `src_width` x `src_height`.
pub fn target_size(preset: &Preset, src_width: u32, src_height: u32) -> (u32, u32) {
    match preset.fit {
        Fit::Contain => fit_within(src_width, src_height, preset.width, preset.height),
        Fit::Cover => (src_width.min(preset.width).max(1), src_height.min(preset.height).max(1)),
    }
}

/// The whole (uncropped) image size a variant is cut from: its own size for `contain`;
/// for `cover`, the source scaled so that it covers the box (never upscaled).
fn frame_size(preset: &Preset, src_width: u32, src_height: u32) -> (u32, u32) {
    if preset.fit == Fit::Contain {
        return fit_within(src_width, src_height, preset.width, preset.height);
    }
    let (sw, sh) = (u64::from(src_width.max(1)), u64::from(src_height.max(1)));
    let (bw, bh) = (u64::from(preset.width.max(1)), u64::from(preset.height.max(1)));
    if sw <= bw || sh <= bh {
        return (sw as u32, sh as u32); // already no larger than the box on one side
    }
    if sw * bh >= sh * bw {
        // Wider than the box: the height binds, the width overflows and is cropped.
        (((sw * bh + sh / 2) / sh).max(bw) as u32, bh as u32)
    } else {
        (bw as u32, ((sh * bw + sw / 2) / sw).max(bh) as u32)
    }
}

fn validate(preset: &Preset) -> Result<(), PipelineError> {
    if preset.width == 0 || preset.height == 0 {
        return Err(PipelineError::InvalidPreset {
            name: preset.name.clone(),
            reason: format!("box {}x{} has a zero side", preset.width, preset.height),
        });
    }
    Ok(())
}

/// The default presets of the configuration: `thumb` (120x120 cover, WebP), `small`
/// (160x120 WebP), `medium` (400x300 JPEG q80) and `web` (2048x2048 WebP).
pub fn default_presets() -> Vec<Preset> {
    imagelake_core::config::ProcessorConfig::default().variants
}

/// Resource limits for one render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Largest accepted source, in pixels (width x height from the header). Default 250 MP.
    pub max_pixels: u64,
    /// Upper bound on the memory the decode may allocate (file bytes, decoder buffers,
    /// decoded pixels), in bytes. Default 2 GiB: a 250 MP RGB image takes 750 MB decoded,
    /// and a JPEG shrunk on load a small fraction of that.
    pub max_alloc_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_pixels: 250_000_000, max_alloc_bytes: 2 * 1024 * 1024 * 1024 }
    }
}

/// What the pipeline learnt about the source image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceInfo {
    /// Detected format from the file's content: `jpeg`, `png`, `webp`, `gif` or `tiff`.
    pub format: &'static str,
    /// Width as stored in the file, before EXIF orientation is applied.
    pub width: u32,
    /// Height as stored in the file, before EXIF orientation is applied.
    pub height: u32,
    /// EXIF orientation tag, 1..=8 (1 when absent). For 5..=8 the upright image is
    /// `height` x `width`.
    pub orientation: u16,
}

impl SourceInfo {
    /// Width and height of the upright image (after EXIF orientation).
    pub fn upright_size(&self) -> (u32, u32) {
        if orientation_transposes(self.orientation) {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }
}

/// One encoded variant, in the order of the presets given to [`render_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedVariant {
    /// The preset's name.
    pub name: String,
    /// The encoding of `bytes`.
    pub format: OutputFormat,
    /// Width of the encoded image.
    pub width: u32,
    /// Height of the encoded image.
    pub height: u32,
    /// The encoded file.
    pub bytes: Vec<u8>,
}

/// Why a render failed. [`PipelineError::code`] gives a stable machine-readable code.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The content is a recognised image format that the pipeline does not accept (BMP,
    /// AVIF, ICO, ...), or uses a feature of an accepted format that cannot be decoded
    /// (e.g. an arithmetic-coded JPEG). Code `unsupported_format`.
    #[error("unsupported image format: {0}")]
    UnsupportedFormat(String),
    /// The data is not a valid image: empty, unrecognised bytes, truncated, or damaged.
    /// Code `decode_failed`.
    #[error("corrupt image: {0}")]
    DecodeFailed(String),
    /// The header declares more pixels than [`Limits::max_pixels`]; detected before any
    /// pixel is decoded. Code `image_too_large`.
    #[error("image too large: {width}x{height} exceeds the limit of {max_pixels} pixels")]
    ImageTooLarge {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// The limit in force.
        max_pixels: u64,
    },
    /// Decoding would allocate more than [`Limits::max_alloc_bytes`] (or the file itself is
    /// larger than that). Code `decode_limit`.
    #[error("decode limit: {0}")]
    DecodeLimit(String),
    /// Resizing or encoding a variant failed (e.g. a preset larger than the output format
    /// allows). Code `encode_failed`.
    #[error("rendering variant {preset:?} failed: {reason}")]
    EncodeFailed {
        /// The preset's name.
        preset: String,
        /// What went wrong.
        reason: String,
    },
    /// A preset cannot be rendered (zero width or height). Code `invalid_preset`.
    #[error("invalid preset {name:?}: {reason}")]
    InvalidPreset {
        /// The preset's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The source file could not be read. Code `io`.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl PipelineError {
    /// Stable snake_case code for APIs, metrics and the metadata lake.
    pub fn code(&self) -> &'static str {
        match self {
            PipelineError::UnsupportedFormat(_) => "unsupported_format",
            PipelineError::DecodeFailed(_) => "decode_failed",
            PipelineError::ImageTooLarge { .. } => "image_too_large",
            PipelineError::DecodeLimit(_) => "decode_limit",
            PipelineError::EncodeFailed { .. } => "encode_failed",
            PipelineError::InvalidPreset { .. } => "invalid_preset",
            PipelineError::Io { .. } => "io",
        }
    }

    /// Whether retrying the same input can succeed (only I/O errors are transient).
    pub fn is_retryable(&self) -> bool {
        matches!(self, PipelineError::Io { .. })
    }
}

/// Render every preset of `presets` from the image at `path`.
///
/// Returns the source's facts and one variant per preset, in the presets' order.
pub fn render_file(
    path: &Path,
    presets: &[Preset],
    limits: &Limits,
) -> Result<(SourceInfo, Vec<RenderedVariant>), PipelineError> {
    let io_err = |source| PipelineError::Io { path: path.display().to_string(), source };
    let len = std::fs::metadata(path).map_err(io_err)?.len();
    if len > limits.max_alloc_bytes {
        return Err(PipelineError::DecodeLimit(format!(
            "file is {len} bytes, over the {} byte allocation limit",
            limits.max_alloc_bytes
        )));
    }
    let data = std::fs::read(path).map_err(io_err)?;
    render_bytes(&data, presets, limits)
}

/// Render every preset from an encoded image held in memory; see [`render_file`].
pub fn render_bytes(
    data: &[u8],
    presets: &[Preset],
    limits: &Limits,
) -> Result<(SourceInfo, Vec<RenderedVariant>), PipelineError> {
    for preset in presets {
        validate(preset)?;
    }
    if data.len() as u64 > limits.max_alloc_bytes {
        return Err(PipelineError::DecodeLimit(format!(
            "input is {} bytes, over the {} byte allocation limit",
            data.len(),
            limits.max_alloc_bytes
        )));
    }
    match panic::catch_unwind(AssertUnwindSafe(|| render_inner(data, presets, limits))) {
        Ok(result) => result,
        Err(payload) => Err(PipelineError::DecodeFailed(format!("decoder panicked: {}", panic_message(&payload)))),
    }
}

fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Fit `src_width` x `src_height` inside `box_width` x `box_height`, keeping the aspect
/// ratio (rounded to the nearest pixel, at least 1) and never upscaling.
pub fn fit_within(src_width: u32, src_height: u32, box_width: u32, box_height: u32) -> (u32, u32) {
    let (sw, sh) = (u64::from(src_width.max(1)), u64::from(src_height.max(1)));
    let (bw, bh) = (u64::from(box_width.max(1)), u64::from(box_height.max(1)));
    if sw <= bw && sh <= bh {
        return (sw as u32, sh as u32);
    }
    if sw * bh >= sh * bw {
        // Width is the binding side: sh * bw / sw <= bh, and so is its rounding.
        let h = ((sh * bw + sw / 2) / sw).max(1);
        (bw as u32, h as u32)
    } else {
        let w = ((sw * bh + sh / 2) / sh).max(1);
        (w as u32, bh as u32)
    }
}

/// Whether EXIF orientation `o` swaps width and height (the 90/270 degree ones).
fn orientation_transposes(o: u16) -> bool {
    matches!(o, 5..=8)
}

fn render_inner(data: &[u8], presets: &[Preset], limits: &Limits) -> Result<(SourceInfo, Vec<RenderedVariant>), PipelineError> {
    // Header first: format, dimensions, orientation. Nothing is decoded yet.
    let probe = decode::probe(data, limits)?;
    let info =
        SourceInfo { format: probe.format_name(), width: probe.width, height: probe.height, orientation: probe.orientation };
    let (up_w, up_h) = info.upright_size();

    // Per preset, in upright coordinates: the whole-image frame it is cut from, and its
    // own size (the same for `contain`; the centred crop of the frame for `cover`).
    let frames: Vec<(u32, u32)> = presets.iter().map(|p| frame_size(p, up_w, up_h)).collect();
    let targets: Vec<(u32, u32)> = presets.iter().map(|p| target_size(p, up_w, up_h)).collect();
    let mut order: Vec<usize> = (0..presets.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(u64::from(frames[i].0) * u64::from(frames[i].1)));
    let Some(&largest) = order.first() else {
        return Ok((info, Vec::new()));
    };
    let largest_frame = frames[largest];
    // The same box in the file's stored orientation, for shrink-on-load.
    let stored_target = if orientation_transposes(info.orientation) { (largest_frame.1, largest_frame.0) } else { largest_frame };

    let base = decode::decode(data, &probe, stored_target, limits)?;

    let mut resizer = resize::Resizer::new();
    let fail = |preset: &Preset, reason: String| PipelineError::EncodeFailed { preset: preset.name.clone(), reason };

    // Largest frame: resize in stored orientation (fewer pixels to rotate), then orient.
    let mut first = if (base.width(), base.height()) == stored_target {
        base
    } else {
        let resized = resizer.resize(&base, stored_target.0, stored_target.1).map_err(|e| fail(&presets[largest], e))?;
        drop(base);
        resized
    };
    if let Some(o) = image::metadata::Orientation::from_exif(info.orientation as u8) {
        first.apply_orientation(o);
    }

    // Whole-image frames, largest first. A `contain` variant is a frame; each smaller
    // frame is resized from the smallest frame already made that covers it, and presets
    // of equal size share pixels. A `cover` variant is cropped and resized in one pass
    // from the smallest frame that covers its own frame.
    let mut images: Vec<DynamicImage> = vec![first];
    let smallest_covering = |images: &[DynamicImage], (w, h): (u32, u32)| {
        images
            .iter()
            .enumerate()
            .filter(|(_, im)| im.width() >= w && im.height() >= h)
            .min_by_key(|(_, im)| u64::from(im.width()) * u64::from(im.height()))
            .map(|(j, _)| j)
            .unwrap_or(0)
    };
    let mut image_of = vec![0usize; presets.len()];
    for &i in order.iter().skip(1).filter(|&&i| presets[i].fit == Fit::Contain) {
        let (tw, th) = targets[i];
        if let Some(j) = images.iter().position(|im| im.width() == tw && im.height() == th) {
            image_of[i] = j;
            continue;
        }
        let src = smallest_covering(&images, (tw, th));
        let resized = resizer.resize(&images[src], tw, th).map_err(|e| fail(&presets[i], e))?;
        images.push(resized);
        image_of[i] = images.len() - 1;
    }
    let frame_count = images.len();
    for i in (0..presets.len()).filter(|&i| presets[i].fit == Fit::Cover) {
        let (tw, th) = targets[i];
        let src = smallest_covering(&images[..frame_count], frames[i]);
        let cropped = resizer.resize_cover(&images[src], tw, th).map_err(|e| fail(&presets[i], e))?;
        images.push(cropped);
        image_of[i] = images.len() - 1;
    }

    let mut variants = Vec::with_capacity(presets.len());
    for (i, preset) in presets.iter().enumerate() {
        let img = &images[image_of[i]];
        let bytes =
            match panic::catch_unwind(AssertUnwindSafe(|| encode::encode(img, preset.format, preset.quality.clamp(1, 100)))) {
                Ok(r) => r.map_err(|e| fail(preset, e))?,
                Err(payload) => return Err(fail(preset, format!("encoder panicked: {}", panic_message(&payload)))),
            };
        variants.push(RenderedVariant {
            name: preset.name.clone(),
            format: preset.format,
            width: img.width(),
            height: img.height(),
            bytes,
        });
    }
    Ok((info, variants))
}
