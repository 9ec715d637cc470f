//! Animated GIF and WebP sources: every frame kept where the variant's format can
//! animate (WebP), the first frame elsewhere (the still path, as before).
//!
//! The frames are counted from the container's structure before anything is decoded, so
//! that a source whose frames x pixels exceed [`Limits::max_animation_pixels`] fails with
//! `decode_limit` at once. Then each frame is decoded and composed on the canvas by
//! `image` (GIF disposal and WebP blending), resized to each animated variant with the
//! same Lanczos filter and crop as the still variants, converted to sRGB when the source
//! has a profile, and the frames are encoded by libwebp's animation encoder with the
//! source's timing.

use std::io::{BufRead, Seek, SeekFrom};

use image::codecs::gif::GifDecoder;
use image::codecs::webp::WebPDecoder;
use image::{AnimationDecoder, DynamicImage, Frames, ImageDecoder};

use super::decode::io_err;
use super::resize::Resizer;
use super::{colour, decode, Fit, Limits, PipelineError, Preset};

/// Frames of a GIF, from its block structure (no LZW data is decoded). Stops counting
/// once `stop_at` is passed.
pub(super) fn gif_frames<R: BufRead + Seek>(input: &mut R, stop_at: u64) -> Result<u64, PipelineError> {
    input.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let mut byte = [0u8; 1];
    let read = |input: &mut R, buf: &mut [u8]| input.read_exact(buf).map_err(io_err);
    let mut header = [0u8; 13];
    if read(input, &mut header).is_err() {
        return Ok(0);
    }
    let skip_table = |flags: u8| if flags & 0x80 != 0 { 3 * (2usize << (flags & 7)) } else { 0 };
    input.seek(SeekFrom::Current(skip_table(header[10]) as i64)).map_err(io_err)?;
    let mut frames = 0u64;
    // Sub-blocks: a length byte, that many bytes, until a zero length.
    let skip_blocks = |input: &mut R| -> Result<(), PipelineError> {
        let mut len = [0u8; 1];
        loop {
            if input.read_exact(&mut len).is_err() || len[0] == 0 {
                return Ok(());
            }
            input.seek(SeekFrom::Current(i64::from(len[0]))).map_err(io_err)?;
        }
    };
    loop {
        if read(input, &mut byte).is_err() {
            return Ok(frames); // truncated: the decoder will say so
        }
        match byte[0] {
            0x21 => {
                if read(input, &mut byte).is_err() {
                    return Ok(frames);
                }
                skip_blocks(input)?;
            }
            0x2C => {
                let mut desc = [0u8; 9];
                if read(input, &mut desc).is_err() {
                    return Ok(frames);
                }
                input.seek(SeekFrom::Current(skip_table(desc[8]) as i64 + 1)).map_err(io_err)?;
                skip_blocks(input)?;
                frames += 1;
                if frames > stop_at {
                    return Ok(frames);
                }
            }
            _ => return Ok(frames), // trailer (0x3B), or damage the decoder will report
        }
    }
}

/// Frames of an animated WebP: its `ANMF` chunks (chunk headers only are read).
pub(super) fn webp_frames<R: BufRead + Seek>(input: &mut R, stop_at: u64) -> Result<u64, PipelineError> {
    input.seek(SeekFrom::Start(12)).map_err(io_err)?;
    let mut frames = 0u64;
    let mut chunk = [0u8; 8];
    while input.read_exact(&mut chunk).is_ok() {
        let len = u64::from(u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]));
        if &chunk[..4] == b"ANMF" {
            frames += 1;
            if frames > stop_at {
                break;
            }
        }
        input.seek(SeekFrom::Current((len + (len & 1)) as i64)).map_err(io_err)?;
    }
    Ok(frames)
}

/// Checks frames x canvas pixels against the limit.
pub(super) fn check_budget(frames: u64, width: u32, height: u32, limits: &Limits) -> Result<(), PipelineError> {
    let work = frames.saturating_mul(u64::from(width) * u64::from(height));
    if work > limits.max_animation_pixels {
        return Err(PipelineError::DecodeLimit(format!(
            "{frames} frames of {width}x{height} are {work} pixels, over the animation limit of {}",
            limits.max_animation_pixels
        )));
    }
    Ok(())
}

/// Bytes an animated render holds: the canvas and the decoder's frame (RGBA), and every
/// resized frame of every animated variant until it is encoded, twice over for libwebp.
pub(super) fn estimate(frames: u64, width: u32, height: u32, targets: &[(u32, u32)]) -> u64 {
    let canvas = u64::from(width) * u64::from(height) * 4;
    let per_frame: u64 = targets.iter().map(|&(w, h)| u64::from(w) * u64::from(h) * 4).sum();
    canvas * 3 + frames.saturating_mul(per_frame) * 2
}

/// Renders the animated WebP of each preset in `which` (indices into `presets`), sized
/// `targets[i]`, from every frame of the source. `None` for presets not in `which`.
pub(super) fn render_webp<R: BufRead + Seek>(
    input: &mut R,
    gif: bool,
    presets: &[Preset],
    targets: &[(u32, u32)],
    which: &[usize],
    icc: Option<&[u8]>,
    limits: &Limits,
) -> Result<Vec<Option<Vec<u8>>>, PipelineError> {
    input.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let frames: Frames<'_> = if gif {
        let mut d = GifDecoder::new(&mut *input).map_err(decode::map_image_error)?;
        d.set_limits(decode::image_limits(limits)).map_err(decode::map_image_error)?;
        d.into_frames()
    } else {
        let mut d = WebPDecoder::new(&mut *input).map_err(decode::map_image_error)?;
        d.set_limits(decode::image_limits(limits)).map_err(decode::map_image_error)?;
        d.into_frames()
    };
    let mut resizer = Resizer::new();
    // Per animated preset: its frames (RGBA) and their start times in ms.
    let mut out: Vec<Vec<(Vec<u8>, i32)>> = vec![Vec::new(); which.len()];
    let mut t_ms: i64 = 0;
    for frame in frames {
        let frame = frame.map_err(decode::map_image_error)?;
        let (num, den) = frame.delay().numer_denom_ms();
        let delay = i64::from(num) / i64::from(den.max(1));
        let canvas = DynamicImage::ImageRgba8(frame.into_buffer());
        for (slot, &i) in which.iter().enumerate() {
            let (tw, th) = targets[i];
            let fail = |reason: String| PipelineError::EncodeFailed { preset: presets[i].name.clone(), reason };
            let mut img = match presets[i].fit {
                Fit::Contain => resizer.resize(&canvas, tw, th).map_err(fail)?,
                Fit::Cover => resizer.resize_cover(&canvas, tw, th).map_err(fail)?,
            };
            if let Some(icc) = icc {
                colour::to_srgb(&mut img, icc)?;
            }
            let rgba = match img {
                DynamicImage::ImageRgba8(b) => b.into_raw(),
                other => other.to_rgba8().into_raw(),
            };
            out[slot].push((rgba, t_ms.min(i64::from(i32::MAX)) as i32));
        }
        t_ms += delay;
    }
    let mut result = vec![None; presets.len()];
    for (slot, &i) in which.iter().enumerate() {
        let (w, h) = targets[i];
        let fail = |reason: String| PipelineError::EncodeFailed { preset: presets[i].name.clone(), reason };
        let quality = f32::from(presets[i].quality.clamp(1, 100));
        let config = webp::WebPConfig::new_with_preset(libwebp_sys::WebPPreset::WEBP_PRESET_DEFAULT, quality)
            .map_err(|_| fail("webp: bad configuration".into()))?;
        let mut encoder = webp::AnimEncoder::new(w, h, &config);
        encoder.set_loop_count(0);
        for (rgba, at) in &out[slot] {
            encoder.add_frame(webp::AnimFrame::from_rgba(rgba, w, h, *at));
        }
        let encoded = encoder.try_encode().map_err(|e| fail(format!("animated webp: {e:?}")))?;
        result[i] = Some(encoded.to_vec());
    }
    Ok(result)
}
