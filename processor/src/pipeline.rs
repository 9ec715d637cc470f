//! The image pipeline: decode an uploaded image once, render every preset variant.
//!
//! Pure and synchronous: no I/O besides reading the source, no async, no global state.
//! The processor service calls [`Prepared::new`] and [`Prepared::render`] from
//! `tokio::task::spawn_blocking`, with its memory reservation in between.
//!
//! How a file is rendered, in memory that follows the largest preset, not the source:
//!
//! 1. The format is sniffed from the first bytes, never from a name, and the header is
//!    parsed: dimensions, orientation, layout. Over [`Limits::max_pixels`] it stops there
//!    ([`PipelineError::ImageTooLarge`]). The render's peak memory is estimated
//!    ([`Prepared::memory`]); over [`Limits::max_alloc_bytes`] it fails with
//!    [`PipelineError::DecodeLimit`] before anything is decoded.
//! 2. The source is read as a stream and reduced as it is decoded, to no less than
//!    twice the largest variant's frame (the margin libvips and Pillow keep), by an
//!    integer box (area) reduction (`shrink`):
//!    - JPEG: libjpeg-turbo (`mozjpeg`) with DCT-domain scaling (1/2, 1/4, 1/8),
//!      scanlines into the reduction below that. A progressive JPEG still needs its
//!      coefficients (2 bytes each, full size), and the estimate counts them.
//!    - PNG: row by row (`png`), palette and low depths expanded per row;
//!      Adam7-interlaced files pass by pass, exactly (the reduction is order-free), at
//!      the cost of keeping the whole reduction's sums.
//!    - TIFF: strip by strip or tile by tile (`tiff`), for interleaved 8/16-bit grey,
//!      grey + alpha, RGB and RGBA.
//!    - WebP: libwebp's incremental decoder with its own area scaler.
//!    - Everything else (GIF's first frame, animated WebP, CMYK or 12-bit JPEG, other
//!      TIFF layouts, and JPEGs too small to scale, where `image`'s zune-jpeg is faster)
//!      is decoded whole by `image`, which the estimate counts.
//!
//!    16-bit sources (PNG, TIFF, and others `image` decodes wider than 8 bits) are
//!    decoded, reduced, resized, converted to sRGB and oriented at 16 bits; each variant
//!    is rounded to 8 bits only as it is encoded.
//! 3. The largest variant is resized from the reduced image (Lanczos3,
//!    `fast_image_resize`, SIMD), then EXIF orientation is applied to it, so every
//!    variant is upright. Each smaller variant is derived from the smallest
//!    already-rendered variant that is at least as large, and presets of equal size
//!    share pixels.
//! 4. Each variant is encoded: JPEG with `jpeg-encoder` (4:2:0 with box-averaged chroma
//!    below quality 90, 4:4:4 from 90), PNG with `image`, WebP lossy with libwebp
//!    (`webp` crate). Transparent images are flattened onto white for JPEG. No metadata
//!    (EXIF, ICC) is copied into variants, so they cannot be rotated a second time.
//!
//! Any panic inside a decoder or encoder is caught and reported as an error: the
//! pipeline never unwinds into the caller.

mod animation;
mod bleed;
mod colour;
mod decode;
#[cfg(test)]
mod depth_tests;
mod encode;
#[cfg(test)]
mod format_tests;
mod heif;
mod jpeg;
mod png;
mod resize;
mod shrink;
#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;
mod tiff;
mod webp;

use std::io::{BufRead, BufReader, Cursor, Seek};
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
    /// Largest accepted source, in pixels (width x height from the header). Default
    /// 2^32, which admits JPEG's 65535 x 65535.
    pub max_pixels: u64,
    /// Upper bound on the memory one render may hold (decoder buffers, the reduced
    /// image, variants, encoders), in bytes, as [`Prepared::memory`] estimates it before
    /// anything is decoded. Default 2 GiB, the default `[processor] memory_budget`.
    pub max_alloc_bytes: u64,
    /// Frames x canvas pixels an animated source may have when its frames are all
    /// decoded (for an animated variant); more fail with `decode_limit`. Default 2^30.
    pub max_animation_pixels: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_pixels: 1 << 32, max_alloc_bytes: 2 * 1024 * 1024 * 1024, max_animation_pixels: 1 << 30 }
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
    /// `height` x `width`. HEIC and AVIF say 1: libheif applies their rotation.
    pub orientation: u16,
    /// Frames: more than 1 for an animated GIF or WebP.
    pub frames: u64,
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

/// One encoded variant: one per preset and format, in the order of the presets given to
/// [`render_file`], each preset's formats in its order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedVariant {
    /// The preset's name.
    pub name: String,
    /// The encoding of `bytes` (one of the preset's formats).
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

/// A readable, seekable source: a buffered file, or bytes in memory.
pub trait Source: BufRead + Seek + Send {}
impl<T: BufRead + Seek + Send> Source for T {}

/// A source whose header has been read: what it is and what rendering it will hold in
/// memory, known before any pixel is decoded. [`Prepared::render`] does the work.
pub struct Prepared {
    input: Box<dyn Source>,
    probe: decode::Probe,
    presets: Vec<Preset>,
    limits: Limits,
    memory: u64,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").field("info", &self.info()).field("memory", &self.memory).finish()
    }
}

impl Prepared {
    /// Reads the header of `input` and estimates the render's memory. Fails with
    /// `image_too_large` over `max_pixels`, and with the format's errors.
    pub fn new(input: Box<dyn Source>, presets: &[Preset], limits: &Limits) -> Result<Self, PipelineError> {
        for preset in presets {
            validate(preset)?;
        }
        let mut input = input;
        let probe = catch(|| decode::probe(&mut input, limits))?;
        let mut prepared = Prepared { input, probe, presets: presets.to_vec(), limits: *limits, memory: 0 };
        let plan = prepared.plan();
        prepared.memory = decode::estimate(&prepared.probe, plan.stored_target) + plan.render_memory;
        let translucent = prepared.probe.translucent_pixels(plan.stored_target);
        if translucent > 0 {
            // A translucent RGBA8 image is resized at 16 bits: its widened copy, and the
            // largest frame at 16 bits before it is rounded back.
            let (w, h) = plan.stored_target;
            prepared.memory += translucent * 8 + u64::from(w) * u64::from(h) * 16;
        }
        let animated = prepared.animated();
        if !animated.is_empty() {
            let p = &prepared.probe;
            animation::check_budget(p.frames, p.width, p.height, limits)?;
            let targets: Vec<(u32, u32)> = animated.iter().map(|&i| plan.targets[i]).collect();
            prepared.memory += animation::estimate(p.frames, p.width, p.height, &targets);
        }
        Ok(prepared)
    }

    /// What the header says.
    pub fn info(&self) -> SourceInfo {
        let p = &self.probe;
        SourceInfo { format: p.format_name(), width: p.width, height: p.height, orientation: p.orientation, frames: p.frames }
    }

    /// Estimated peak memory of [`Prepared::render`], in bytes.
    pub fn memory(&self) -> u64 {
        self.memory
    }

    fn plan(&self) -> Plan {
        plan(&self.info(), &self.presets, self.probe.sample_bytes())
    }

    /// The presets that get every frame: those with a WebP format, for an animated source.
    fn animated(&self) -> Vec<usize> {
        if self.probe.frames <= 1 {
            return Vec::new();
        }
        (0..self.presets.len()).filter(|&i| self.presets[i].formats.contains(&OutputFormat::WebP)).collect()
    }

    /// Decodes once and renders every preset, in the presets' order. Fails with
    /// `decode_limit` at once when [`Prepared::memory`] is over `max_alloc_bytes`.
    pub fn render(mut self) -> Result<(SourceInfo, Vec<RenderedVariant>), PipelineError> {
        if self.memory > self.limits.max_alloc_bytes {
            return Err(PipelineError::DecodeLimit(format!(
                "rendering needs about {} bytes, over the {} byte limit",
                self.memory, self.limits.max_alloc_bytes
            )));
        }
        catch(|| render_inner(&mut self))
    }
}

/// Runs `f`, turning a panic inside a decoder or encoder into an error.
fn catch<T>(f: impl FnOnce() -> Result<T, PipelineError>) -> Result<T, PipelineError> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(PipelineError::DecodeFailed(format!("decoder panicked: {}", panic_message(&payload)))),
    }
}

/// Render every preset of `presets` from the image at `path`, read as a stream.
///
/// Returns the source's facts and one variant per preset, in the presets' order.
pub fn render_file(
    path: &Path,
    presets: &[Preset],
    limits: &Limits,
) -> Result<(SourceInfo, Vec<RenderedVariant>), PipelineError> {
    let file = std::fs::File::open(path).map_err(|source| PipelineError::Io { path: path.display().to_string(), source })?;
    Prepared::new(Box::new(BufReader::with_capacity(256 << 10, file)), presets, limits)?.render()
}

/// Render every preset from an encoded image held in memory; see [`render_file`].
pub fn render_bytes(
    data: &[u8],
    presets: &[Preset],
    limits: &Limits,
) -> Result<(SourceInfo, Vec<RenderedVariant>), PipelineError> {
    Prepared::new(Box::new(Cursor::new(data.to_vec())), presets, limits)?.render()
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

/// The sizes a render works with, in upright coordinates unless said otherwise.
struct Plan {
    /// Per preset: the whole-image frame it is cut from, and its own size (the same for
    /// `contain`; the centred crop of the frame for `cover`).
    frames: Vec<(u32, u32)>,
    targets: Vec<(u32, u32)>,
    /// Presets, largest frame first.
    order: Vec<usize>,
    /// The largest frame in the file's stored orientation: what the decode reduces towards.
    stored_target: (u32, u32),
    /// Memory of the resizes and encodes after the decode.
    render_memory: u64,
}

/// `sample_bytes`: 1, or 2 for a source rendered at 16 bits.
fn plan(info: &SourceInfo, presets: &[Preset], sample_bytes: u64) -> Plan {
    let (up_w, up_h) = info.upright_size();
    let frames: Vec<(u32, u32)> = presets.iter().map(|p| frame_size(p, up_w, up_h)).collect();
    let targets: Vec<(u32, u32)> = presets.iter().map(|p| target_size(p, up_w, up_h)).collect();
    let mut order: Vec<usize> = (0..presets.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(u64::from(frames[i].0) * u64::from(frames[i].1)));
    let largest = order.first().map(|&i| frames[i]).unwrap_or((1, 1));
    let stored_target = if orientation_transposes(info.orientation) { (largest.1, largest.0) } else { largest };
    // RGBA at worst, at the source's depth: the largest frame, the resizer's scratch
    // (frame width x up to four times its height), its oriented copy, every smaller frame
    // and crop; and encoders (about 12 bytes per pixel for libwebp, after the 8-bit copy
    // of a 16-bit frame; AVIF's fill under transparent pixels, `bleed`, about 10 more),
    // plus a fixed allowance.
    let px = |(w, h): (u32, u32)| u64::from(w) * u64::from(h);
    let frames_px: u64 = frames.iter().chain(targets.iter()).map(|&f| px(f)).sum();
    let rgba = 4 * sample_bytes;
    let avif = presets.iter().any(|p| p.formats.contains(&OutputFormat::Avif));
    let encode = 12 + if sample_bytes > 1 { 4 } else { 0 } + if avif { 10 } else { 0 };
    let render_memory = px(largest) * (rgba * (1 + 4 + 1) + encode) + frames_px * rgba + (24 << 20);
    Plan { frames, targets, order, stored_target, render_memory }
}

fn render_inner(prepared: &mut Prepared) -> Result<(SourceInfo, Vec<RenderedVariant>), PipelineError> {
    let info = prepared.info();
    let presets = &prepared.presets;
    let Plan { frames, targets, order, stored_target, .. } = plan(&info, presets, prepared.probe.sample_bytes());
    let Some(&largest) = order.first() else {
        return Ok((info, Vec::new()));
    };
    let base = decode::decode(&mut prepared.input, &prepared.probe, stored_target, &prepared.limits)?;

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
    // To sRGB once, on the largest frame: every smaller variant is derived from it.
    if let Some(icc) = &prepared.probe.icc {
        colour::to_srgb(&mut first, icc)?;
    }
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

    // Animated sources: every frame for the WebP of the presets that have one.
    let animated = prepared.animated();
    let mut moving = if animated.is_empty() {
        vec![None; presets.len()]
    } else {
        let p = &prepared.probe;
        animation::render_webp(&mut prepared.input, p.is_gif(), presets, &targets, &animated, p.icc.as_deref(), &prepared.limits)?
    };
    let mut variants = Vec::with_capacity(presets.len());
    for (i, preset) in presets.iter().enumerate() {
        let img = &images[image_of[i]];
        // Every format from the same pixels.
        for &format in &preset.formats {
            let still = || match panic::catch_unwind(AssertUnwindSafe(|| encode::encode(img, format, preset))) {
                Ok(r) => r.map_err(|e| fail(preset, e)),
                Err(payload) => Err(fail(preset, format!("encoder panicked: {}", panic_message(&payload)))),
            };
            let bytes = match (format, moving[i].take()) {
                (OutputFormat::WebP, Some(bytes)) => bytes,
                _ => still()?,
            };
            variants.push(RenderedVariant { name: preset.name.clone(), format, width: img.width(), height: img.height(), bytes });
        }
    }
    Ok((info, variants))
}
