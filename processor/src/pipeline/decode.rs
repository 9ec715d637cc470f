//! Format sniffing, header probing and decoding to 8-bit pixels.

use std::io::Cursor;

use image::error::LimitErrorKind;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader};

use super::{jpeg, Limits, PipelineError};

/// Source formats the pipeline accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SourceFormat {
    Jpeg,
    Png,
    WebP,
    Gif,
    Tiff,
}

impl SourceFormat {
    fn name(self) -> &'static str {
        match self {
            SourceFormat::Jpeg => "jpeg",
            SourceFormat::Png => "png",
            SourceFormat::WebP => "webp",
            SourceFormat::Gif => "gif",
            SourceFormat::Tiff => "tiff",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            SourceFormat::Jpeg => ImageFormat::Jpeg,
            SourceFormat::Png => ImageFormat::Png,
            SourceFormat::WebP => ImageFormat::WebP,
            SourceFormat::Gif => ImageFormat::Gif,
            SourceFormat::Tiff => ImageFormat::Tiff,
        }
    }
}

/// What the header says, before any pixel is decoded.
pub(super) struct Probe {
    pub format: SourceFormat,
    pub width: u32,
    pub height: u32,
    pub orientation: u16,
    /// Set when the JPEG can take the DCT-scaling fast path.
    jpeg: Option<jpeg::Header>,
}

impl Probe {
    pub fn format_name(&self) -> &'static str {
        self.format.name()
    }
}

/// Detect an image's format from its first bytes (never from a file name).
///
/// Returns the name used in [`super::SourceInfo::format`] (`jpeg`, `png`, `webp`, `gif`,
/// `tiff`), [`PipelineError::UnsupportedFormat`] for a recognised format the pipeline does
/// not accept, or [`PipelineError::DecodeFailed`] for empty or unrecognisable data.
pub fn sniff_format(data: &[u8]) -> Result<&'static str, PipelineError> {
    sniff(data).map(SourceFormat::name)
}

fn sniff(data: &[u8]) -> Result<SourceFormat, PipelineError> {
    if data.is_empty() {
        return Err(PipelineError::DecodeFailed("empty file".into()));
    }
    match image::guess_format(data) {
        Ok(ImageFormat::Jpeg) => Ok(SourceFormat::Jpeg),
        Ok(ImageFormat::Png) => Ok(SourceFormat::Png),
        Ok(ImageFormat::WebP) => Ok(SourceFormat::WebP),
        Ok(ImageFormat::Gif) => Ok(SourceFormat::Gif),
        Ok(ImageFormat::Tiff) => Ok(SourceFormat::Tiff),
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
                Err(PipelineError::UnsupportedFormat("heif/isobmff".into()))
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
pub(super) fn probe(data: &[u8], limits: &Limits) -> Result<Probe, PipelineError> {
    let format = sniff(data)?;
    if format == SourceFormat::Jpeg {
        let header = jpeg::parse_header(data)?;
        check_pixels(header.width, header.height, limits)?;
        if !header.complete {
            return Err(PipelineError::DecodeFailed("truncated JPEG: data ends before the end-of-image marker".into()));
        }
        if header.fast_path() {
            return Ok(Probe {
                format,
                width: header.width,
                height: header.height,
                orientation: header.orientation,
                jpeg: Some(header),
            });
        }
        // CMYK, 12-bit, lossless, arithmetic...: let `image` (zune-jpeg) try it.
    }
    let mut decoder = generic_decoder(data, format, limits)?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, limits)?;
    let orientation = decoder.orientation().map(|o| u16::from(o.to_exif())).unwrap_or(1);
    Ok(Probe { format, width, height, orientation, jpeg: None })
}

/// Decode the whole image once, as L8, RGB8 or RGBA8, in the file's stored orientation.
///
/// `stored_target` is the size of the largest variant in stored orientation: a JPEG may
/// be decoded at 1/2, 1/4 or 1/8 scale as long as the result stays well above it.
pub(super) fn decode(
    data: &[u8],
    probe: &Probe,
    stored_target: (u32, u32),
    limits: &Limits,
) -> Result<DynamicImage, PipelineError> {
    if let Some(header) = &probe.jpeg {
        // jpeg-decoder only when its DCT-domain scaling applies: it then never holds
        // the full-size image. For full-size decodes `image`'s zune-jpeg is faster
        // (SIMD IDCT and colour conversion, faster Huffman decoding).
        if jpeg::choose_shrink(header.width, header.height, stored_target) > 1 {
            return jpeg::decode(data, header, stored_target, limits);
        }
    }
    let decoder = generic_decoder(data, probe.format, limits)?;
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

fn image_limits(limits: &Limits) -> image::Limits {
    let mut l = image::Limits::default();
    l.max_image_width = None;
    l.max_image_height = None;
    l.max_alloc = Some(limits.max_alloc_bytes);
    l
}

fn generic_decoder<'a>(data: &'a [u8], format: SourceFormat, limits: &Limits) -> Result<impl ImageDecoder + 'a, PipelineError> {
    let mut reader = ImageReader::with_format(Cursor::new(data), format.image_format());
    reader.limits(image_limits(limits));
    match reader.into_decoder() {
        Ok(d) => Ok(d),
        Err(e @ ImageError::Limits(_)) => {
            // Was it the image's size? Read the dimensions without limits to tell
            // `image_too_large` from `decode_limit`.
            let mut unlimited = ImageReader::with_format(Cursor::new(data), format.image_format());
            unlimited.no_limits();
            if let Ok((w, h)) = unlimited.into_dimensions() {
                check_pixels(w, h, limits)?;
            }
            Err(map_image_error(e))
        }
        Err(e) => Err(map_image_error(e)),
    }
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

/// Bring any decoded image to one of the three layouts the resizer and encoders handle.
fn normalize(img: DynamicImage) -> DynamicImage {
    match img {
        DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) => img,
        other => {
            let color = other.color();
            if color.has_alpha() {
                DynamicImage::ImageRgba8(other.to_rgba8())
            } else if color.channel_count() == 1 {
                DynamicImage::ImageLuma8(other.to_luma8())
            } else {
                DynamicImage::ImageRgb8(other.to_rgb8())
            }
        }
    }
}
