//! Format sniffing, header probing, the decode's memory estimate, and decoding to 8-bit
//! pixels reduced towards the largest variant (see `shrink`).

use std::io::{BufRead, Read, Seek, SeekFrom};

use image::error::LimitErrorKind;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader};

use super::{animation, colour, heif, jpeg, png, shrink, tiff, webp, Limits, PipelineError};

/// Source formats the pipeline accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SourceFormat {
    Jpeg,
    Png,
    WebP,
    Gif,
    Tiff,
    Bmp,
    /// HEIF with HEVC: HEIC, what iPhones take.
    Heic,
    /// HEIF with AV1.
    Avif,
}

impl SourceFormat {
    fn name(self) -> &'static str {
        match self {
            SourceFormat::Jpeg => "jpeg",
            SourceFormat::Png => "png",
            SourceFormat::WebP => "webp",
            SourceFormat::Gif => "gif",
            SourceFormat::Tiff => "tiff",
            SourceFormat::Bmp => "bmp",
            SourceFormat::Heic => "heic",
            SourceFormat::Avif => "avif",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            SourceFormat::Jpeg => ImageFormat::Jpeg,
            SourceFormat::Png => ImageFormat::Png,
            SourceFormat::WebP => ImageFormat::WebP,
            SourceFormat::Gif => ImageFormat::Gif,
            SourceFormat::Tiff => ImageFormat::Tiff,
            SourceFormat::Bmp => ImageFormat::Bmp,
            SourceFormat::Heic | SourceFormat::Avif => ImageFormat::Avif, // never asked: libheif decodes them
        }
    }
}

/// HEIC or AVIF from the `ftyp` box's brands (`core::media::heif_brand`).
fn heif_brand(head: &[u8]) -> Option<SourceFormat> {
    match imagelake_core::media::heif_brand(head)? {
        "avif" => Some(SourceFormat::Avif),
        _ => Some(SourceFormat::Heic),
    }
}

/// The source: a file (buffered) or bytes in memory. Decoders read it as a stream.
pub(super) trait Input: BufRead + Seek {}
impl<T: BufRead + Seek> Input for T {}

/// How the pixels will be decoded, from what the header says.
#[derive(Debug, Clone)]
enum Kind {
    /// libjpeg-turbo, scaled in the DCT domain, rows into the accumulator.
    Jpeg(jpeg::Header),
    /// Rows (or Adam7 pass rows) into the accumulator.
    Png(png::Header),
    /// Strips or tiles into the accumulator.
    Tiff(tiff::Header),
    /// libwebp's incremental decoder with its scaler.
    WebP(webp::Features),
    /// libheif, whole (HEIC, AVIF).
    Heif(heif::Header),
    /// The whole image by `image`: GIF (first frame), animated WebP, unusual TIFF and
    /// JPEG layouts, and JPEGs too small for DCT scaling. `bytes` is what it allocates;
    /// `deep` when its samples are wider than 8 bits (kept as 16-bit); `alpha` when it has
    /// an alpha channel.
    Whole { bytes: u64, deep: bool, alpha: bool },
}

/// What the header says, before any pixel is decoded.
pub(super) struct Probe {
    pub format: SourceFormat,
    pub width: u32,
    pub height: u32,
    pub orientation: u16,
    /// The source's ICC profile (RGB; a CMYK JPEG's is applied by its decoder).
    pub icc: Option<Vec<u8>>,
    /// Frames of an animated GIF or WebP (counted up to just past the animation limit);
    /// 1 for every other source.
    pub frames: u64,
    kind: Kind,
    file_len: u64,
}

impl Probe {
    pub fn format_name(&self) -> &'static str {
        self.format.name()
    }

    /// An animated GIF (otherwise an animated WebP) when [`Probe::frames`] > 1.
    pub fn is_gif(&self) -> bool {
        self.format == SourceFormat::Gif
    }

    /// Bytes per sample of the decoded image: 2 for sources deeper than 8 bits (PNG,
    /// TIFF, 10- and 12-bit HEIF and AVIF, and whatever `image` decodes wider than 8
    /// bits), which are rendered at 16 bits.
    pub fn sample_bytes(&self) -> u64 {
        match &self.kind {
            Kind::Png(h) if h.sixteen => 2,
            Kind::Tiff(h) if matches!(h.stream, Some((_, 16))) => 2,
            Kind::Whole { deep: true, .. } => 2,
            Kind::Heif(h) if h.bits > 8 => 2,
            _ => 1,
        }
    }

    /// The decoded image's size in pixels when the source may be translucent RGBA at 8
    /// bits, else 0: the resize widens such an image to 16 bits (`resize.rs`).
    pub fn translucent_pixels(&self, stored_target: (u32, u32)) -> u64 {
        let px = |(w, h): (u32, u32)| u64::from(w) * u64::from(h);
        let reduced = |w, h| px(shrink::reduced_size(w, h, shrink::factor_for(w, h, stored_target)));
        if self.sample_bytes() > 1 {
            return 0; // already 16-bit
        }
        match &self.kind {
            Kind::Png(h) if h.channels % 2 == 0 => reduced(h.width, h.height),
            Kind::Tiff(h) if matches!(h.stream, Some((2 | 4, _))) => reduced(h.width, h.height),
            Kind::WebP(f) if f.has_alpha => px(webp::scaled_size(f, stored_target)),
            Kind::Heif(h) if h.alpha => px((h.width, h.height)),
            Kind::Whole { alpha: true, .. } => px((self.width, self.height)),
            _ => 0,
        }
    }
}

/// A read of the source failed.
pub(super) fn io_err(source: std::io::Error) -> PipelineError {
    PipelineError::Io { path: "source".into(), source }
}

/// The first `len` bytes of the input (fewer if it is shorter).
fn prefix<R: Input>(input: &mut R, len: u64) -> Result<Vec<u8>, PipelineError> {
    input.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let mut head = Vec::new();
    input.by_ref().take(len).read_to_end(&mut head).map_err(io_err)?;
    input.seek(SeekFrom::Start(0)).map_err(io_err)?;
    Ok(head)
}

/// How far into a JPEG its frame header is looked for (APP segments come first).
const JPEG_HEADER_WINDOW: u64 = 16 << 20;

/// Detect an image's format from its first bytes (never from a file name).
///
/// Returns the name used in [`super::SourceInfo::format`] (`jpeg`, `png`, `webp`, `gif`,
/// `tiff`, `bmp`, `heic`, `avif`), [`PipelineError::UnsupportedFormat`] for a recognised format the pipeline does
/// not accept, or [`PipelineError::DecodeFailed`] for empty or unrecognisable data.
pub fn sniff_format(data: &[u8]) -> Result<&'static str, PipelineError> {
    sniff(data).map(SourceFormat::name)
}

fn sniff(data: &[u8]) -> Result<SourceFormat, PipelineError> {
    if data.is_empty() {
        return Err(PipelineError::DecodeFailed("empty file".into()));
    }
    if let Some(f) = heif_brand(data) {
        return Ok(f);
    }
    match image::guess_format(data) {
        Ok(ImageFormat::Jpeg) => Ok(SourceFormat::Jpeg),
        Ok(ImageFormat::Png) => Ok(SourceFormat::Png),
        Ok(ImageFormat::WebP) => Ok(SourceFormat::WebP),
        Ok(ImageFormat::Gif) => Ok(SourceFormat::Gif),
        Ok(ImageFormat::Tiff) => Ok(SourceFormat::Tiff),
        Ok(ImageFormat::Bmp) => Ok(SourceFormat::Bmp),
        Ok(other) => {
            Err(PipelineError::UnsupportedFormat(other.extensions_str().first().copied().unwrap_or("unknown").to_string()))
        }
        Err(_) => {
            // A few common non-raster uploads get a precise answer instead of "corrupt".
            let head = &data[..data.len().min(256)];
            let text = String::from_utf8_lossy(head).to_ascii_lowercase();
            if head.starts_with(b"%PDF") {
                Err(PipelineError::UnsupportedFormat("pdf".into()))
            } else if text.contains("<svg") || text.trim_start().starts_with("<?xml") {
                Err(PipelineError::UnsupportedFormat("svg".into()))
            } else if head.len() >= 12 && &head[4..8] == b"ftyp" {
                Err(PipelineError::UnsupportedFormat("isobmff (not HEIF or AVIF)".into()))
            } else {
                Err(PipelineError::DecodeFailed("content is not a recognised image format".into()))
            }
        }
    }
}

pub(super) fn check_pixels(width: u32, height: u32, limits: &Limits) -> Result<(), PipelineError> {
    if width == 0 || height == 0 {
        return Err(PipelineError::DecodeFailed(format!("header declares an empty image ({width}x{height})")));
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(PipelineError::ImageTooLarge { width, height, max_pixels: limits.max_pixels });
    }
    Ok(())
}

/// Read the header: format, dimensions, orientation; enforce `max_pixels`.
pub(super) fn probe<R: Input>(input: &mut R, limits: &Limits) -> Result<Probe, PipelineError> {
    let file_len = input.seek(SeekFrom::End(0)).map_err(io_err)?;
    let head = prefix(input, 64 << 10)?;
    let format = sniff(&head)?;
    let probe =
        |width, height, orientation, icc, kind| Probe { format, width, height, orientation, icc, frames: 1, kind, file_len };
    match format {
        SourceFormat::Heic | SourceFormat::Avif => {
            let h = heif::probe(&mut *input, file_len, limits.max_alloc_bytes)?;
            check_pixels(h.width, h.height, limits)?;
            // libheif applies irot/imir: the pixels come out upright.
            return Ok(probe(h.width, h.height, 1, h.icc.clone(), Kind::Heif(h)));
        }
        SourceFormat::Jpeg => {
            let head = if (head.len() as u64) < file_len { prefix(input, JPEG_HEADER_WINDOW)? } else { head.clone() };
            let header = jpeg::parse_header(&head)?;
            check_pixels(header.width, header.height, limits)?;
            if head.len() as u64 == file_len && !header.complete {
                return Err(PipelineError::DecodeFailed("truncated JPEG: data ends before the end-of-image marker".into()));
            }
            if header.fast_path() {
                let icc = if header.cmyk() { None } else { header.icc.clone() };
                return Ok(probe(header.width, header.height, header.orientation, icc, Kind::Jpeg(header)));
            }
            // CMYK, 12-bit, lossless, arithmetic...: let `image` (zune-jpeg) try it.
        }
        SourceFormat::Png => {
            let h = png::probe(&mut *input)?;
            check_pixels(h.width, h.height, limits)?;
            return Ok(probe(h.width, h.height, h.orientation, h.icc.clone(), Kind::Png(h)));
        }
        SourceFormat::Tiff => {
            let h = tiff::probe(&mut *input)?;
            check_pixels(h.width, h.height, limits)?;
            if h.stream.is_some() {
                return Ok(probe(h.width, h.height, h.orientation, h.icc.clone(), Kind::Tiff(h)));
            }
        }
        SourceFormat::WebP => {
            let f = webp::features(&head)?;
            check_pixels(f.width, f.height, limits)?;
            if !f.animated {
                // Orientation from an EXIF chunk, as `image` reads it (it seeks past the
                // image data).
                let orientation = generic_decoder(&mut *input, format, limits)
                    .ok()
                    .and_then(|mut d| d.orientation().ok())
                    .map(|o| u16::from(o.to_exif()))
                    .unwrap_or(1);
                return Ok(probe(f.width, f.height, orientation, colour::webp_icc(&head), Kind::WebP(f)));
            }
        }
        SourceFormat::Gif | SourceFormat::Bmp => {}
    }
    input.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let mut decoder = generic_decoder(&mut *input, format, limits)?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, limits)?;
    let orientation = decoder.orientation().map(|o| u16::from(o.to_exif())).unwrap_or(1);
    // The decoded image, its copy in one of the pipeline's layouts (RGBA at 8 or 16 bits
    // at most), and (zune-jpeg, image-webp) the file in memory.
    let pixels = u64::from(width) * u64::from(height);
    let color = decoder.color_type();
    let deep = color.bytes_per_pixel() > color.channel_count();
    let bytes = decoder.total_bytes() + pixels * if deep { 8 } else { 4 } + file_len;
    drop(decoder);
    let icc = match format {
        SourceFormat::WebP => colour::webp_icc(&head),
        _ => None,
    };
    // Frames, from the structure alone; counting stops just past what the limit admits.
    let stop_at = limits.max_animation_pixels / pixels.max(1) + 1;
    let frames = match format {
        SourceFormat::Gif => animation::gif_frames(&mut *input, stop_at)?.max(1),
        SourceFormat::WebP => animation::webp_frames(&mut *input, stop_at)?.max(1),
        _ => 1,
    };
    Ok(Probe { frames, ..probe(width, height, orientation, icc, Kind::Whole { bytes, deep, alpha: color.has_alpha() }) })
}

/// The memory the decode will hold, towards `stored_target`: decoder buffers, the
/// accumulator and the reduced image it hands on.
pub(super) fn estimate(probe: &Probe, stored_target: (u32, u32)) -> u64 {
    match &probe.kind {
        Kind::Jpeg(h) if h.cmyk() || jpeg::choose_shrink(h.width, h.height, stored_target) > 1 => {
            jpeg::estimate(h, stored_target)
        }
        Kind::Jpeg(h) => {
            let pixels = u64::from(h.width) * u64::from(h.height);
            pixels * 4 + probe.file_len
        }
        Kind::Png(h) => png::estimate(h, stored_target),
        Kind::Tiff(h) => h.stream.map(|(s, b)| tiff::estimate(h, s, b, stored_target)).unwrap_or(0),
        Kind::WebP(f) => webp::estimate(f, probe.file_len, stored_target),
        Kind::Heif(h) => heif::estimate(h, probe.file_len),
        Kind::Whole { bytes, .. } => *bytes,
    }
}

/// Decode once, as grey, RGB or RGBA (8-bit, or 16-bit for a 16-bit source) in the file's
/// stored orientation, box-reduced to
/// no less than twice `stored_target` (the largest variant's frame) where the format's
/// decoder streams.
pub(super) fn decode<R: Input>(
    input: &mut R,
    probe: &Probe,
    stored_target: (u32, u32),
    limits: &Limits,
) -> Result<DynamicImage, PipelineError> {
    input.seek(SeekFrom::Start(0)).map_err(io_err)?;
    match &probe.kind {
        // libjpeg-turbo only when its DCT-domain scaling applies: it then never holds the
        // full-size image. For full-size decodes `image`'s zune-jpeg is faster.
        // CMYK always: its conversion to RGB happens in that decoder.
        Kind::Jpeg(h) if h.cmyk() || jpeg::choose_shrink(h.width, h.height, stored_target) > 1 => {
            return jpeg::decode(&mut *input, h, stored_target)
        }
        Kind::Heif(_) => return heif::decode(&mut *input, probe.file_len, limits.max_alloc_bytes),
        Kind::Png(_) => return png::decode(&mut *input, stored_target),
        Kind::Tiff(_) => return tiff::decode(&mut *input, stored_target),
        Kind::WebP(f) => return webp::decode(&mut *input, f, stored_target),
        Kind::Jpeg(_) | Kind::Whole { .. } => {}
    }
    let decoder = generic_decoder(&mut *input, probe.format, limits)?;
    let total = decoder.total_bytes();
    if total > limits.max_alloc_bytes {
        return Err(PipelineError::DecodeLimit(format!(
            "decoded image needs {total} bytes, over the {} byte limit",
            limits.max_alloc_bytes
        )));
    }
    let img = DynamicImage::from_decoder(decoder).map_err(map_image_error)?;
    Ok(normalize(img))
}

pub(super) fn image_limits(limits: &Limits) -> image::Limits {
    let mut l = image::Limits::default();
    l.max_image_width = None;
    l.max_image_height = None;
    l.max_alloc = Some(limits.max_alloc_bytes);
    l
}

fn generic_decoder<'a, R: Input>(
    input: &'a mut R,
    format: SourceFormat,
    limits: &Limits,
) -> Result<impl ImageDecoder + 'a, PipelineError> {
    // The dimensions first, without limits, so that an image over `max_pixels` is told
    // apart (`image_too_large`) from one whose decode is over the memory limits.
    let start = input.stream_position().map_err(io_err)?;
    let mut unlimited = ImageReader::with_format(&mut *input, format.image_format());
    unlimited.no_limits();
    if let Ok((w, h)) = unlimited.into_dimensions() {
        check_pixels(w, h, limits)?;
    }
    input.seek(SeekFrom::Start(start)).map_err(io_err)?;
    let mut reader = ImageReader::with_format(input, format.image_format());
    reader.limits(image_limits(limits));
    reader.into_decoder().map_err(map_image_error)
}

pub(super) fn map_image_error(e: ImageError) -> PipelineError {
    match e {
        ImageError::Limits(l) => match l.kind() {
            LimitErrorKind::InsufficientMemory => PipelineError::DecodeLimit(format!("allocation limit reached: {l}")),
            _ => PipelineError::DecodeLimit(l.to_string()),
        },
        ImageError::Unsupported(u) => PipelineError::UnsupportedFormat(u.to_string()),
        // The data is in memory: an I/O error from the decoder means it ran out of bytes.
        ImageError::IoError(io) => PipelineError::DecodeFailed(format!("truncated data: {io}")),
        ImageError::Decoding(d) => PipelineError::DecodeFailed(d.to_string()),
        other => PipelineError::DecodeFailed(other.to_string()),
    }
}

/// Bring any decoded image to one of the layouts the resizer and encoders handle: grey,
/// RGB or RGBA, at 8 bits, or at 16 bits when the source's samples are wider than 8.
fn normalize(img: DynamicImage) -> DynamicImage {
    match img {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_)
        | DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageRgb16(_)
        | DynamicImage::ImageRgba16(_) => img,
        other => {
            let color = other.color();
            let deep = color.bytes_per_pixel() > color.channel_count();
            match (deep, color.has_alpha(), color.channel_count()) {
                (false, true, _) => DynamicImage::ImageRgba8(other.to_rgba8()),
                (false, false, 1) => DynamicImage::ImageLuma8(other.to_luma8()),
                (false, false, _) => DynamicImage::ImageRgb8(other.to_rgb8()),
                (true, true, _) => DynamicImage::ImageRgba16(other.to_rgba16()),
                (true, false, 1) => DynamicImage::ImageLuma16(other.to_luma16()),
                (true, false, _) => DynamicImage::ImageRgb16(other.to_rgb16()),
            }
        }
    }
}
