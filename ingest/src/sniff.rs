//! What the bytes are, whatever the `Content-Type` header claims: format from the magic
//! numbers, dimensions and EXIF from the first bytes of the body.

use imagelake_core::record::ExifSummary;

/// An accepted image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    pub name: &'static str,
    pub content_type: &'static str,
}

/// Bytes needed to recognise every accepted format.
pub const SNIFF_BYTES: usize = 12;

/// `Some(format)`, or `None` when the bytes are no accepted image format.
pub fn sniff(head: &[u8]) -> Option<Format> {
    let f = |name, content_type| Some(Format { name, content_type });
    match head {
        [0xFF, 0xD8, 0xFF, ..] => f("jpeg", "image/jpeg"),
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => f("png", "image/png"),
        [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => f("gif", "image/gif"),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => f("webp", "image/webp"),
        [b'I', b'I', 0x2A, 0x00, ..] | [b'M', b'M', 0x00, 0x2A, ..] => f("tiff", "image/tiff"),
        _ => None,
    }
}

/// Explains a refusal: names what the bytes look like when we can tell.
pub fn refusal(head: &[u8]) -> String {
    let what = if head.len() >= 12 && &head[4..8] == b"ftyp" {
        "an AVIF/HEIF/MP4 container (not supported)"
    } else if head.starts_with(b"%PDF") {
        "a PDF document"
    } else if head.starts_with(b"<") || head.iter().all(|b| b.is_ascii()) {
        "text"
    } else {
        "an unknown format"
    };
    format!("the body is {what}, not an image: accepted formats are JPEG, PNG, WebP, GIF and TIFF")
}

/// Width and height, when the header bytes hold them.
pub fn dimensions(head: &[u8]) -> Option<(u32, u32)> {
    let s = imagesize::blob_size(head).ok()?;
    Some((u32::try_from(s.width).ok()?, u32::try_from(s.height).ok()?))
}

/// Camera, capture time and orientation from the EXIF block, if it is within `head`.
/// GPS tags are never read.
pub fn exif(head: &[u8]) -> Option<ExifSummary> {
    let data = exif::Reader::new().read_from_container(&mut std::io::Cursor::new(head)).ok()?;
    let text = |tag| {
        data.get_field(tag, exif::In::PRIMARY)
            .map(|f| f.display_value().to_string().trim_matches('"').trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let camera = match (text(exif::Tag::Make), text(exif::Tag::Model)) {
        (Some(make), Some(model)) if model.starts_with(&make) => Some(model),
        (Some(make), Some(model)) => Some(format!("{make} {model}")),
        (a, b) => a.or(b),
    };
    let orientation = data
        .get_field(exif::Tag::Orientation, exif::In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .and_then(|v| u16::try_from(v).ok());
    let summary = ExifSummary { camera, taken_at: text(exif::Tag::DateTimeOriginal), orientation };
    (summary != ExifSummary::default()).then_some(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_sniffed_from_bytes() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]).unwrap().name, "jpeg");
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n....").unwrap().name, "png");
        assert_eq!(sniff(b"GIF89a......").unwrap().name, "gif");
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 ").unwrap().name, "webp");
        assert_eq!(sniff(b"II*\0........").unwrap().name, "tiff");
        assert!(sniff(b"RIFF\0\0\0\0WAVEfmt ").is_none());
        assert!(sniff(b"hello world!").is_none());
        assert!(refusal(b"hello world!").contains("text"));
        assert!(refusal(b"\0\0\0\x20ftypavif").contains("AVIF"));
    }
}
