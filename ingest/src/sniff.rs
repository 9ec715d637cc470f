//! What the bytes are, whatever the `Content-Type` header claims: format from the magic
//! numbers, dimensions and EXIF from the first bytes of the body.

use crate::error::IngestError;
use imagelake_core::record::ExifSummary;

/// An accepted image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    pub name: &'static str,
    pub content_type: &'static str,
}

/// Bytes needed to recognise every accepted format (HEIF's brands can sit that far in).
pub const SNIFF_BYTES: usize = imagelake_core::media::FTYP_BYTES;

/// BMP's info header sizes (BITMAPCOREHEADER, INFOHEADER, V2, V3, OS/2 2, V4, V5).
const BMP_HEADERS: [u32; 7] = [12, 40, 52, 56, 64, 108, 124];

/// `Some(format)`, or `None` when the bytes are no accepted image format.
pub fn sniff(head: &[u8]) -> Option<Format> {
    let f = |name, content_type| Some(Format { name, content_type });
    match imagelake_core::media::heif_brand(head) {
        Some("avif") => return f("avif", "image/avif"),
        Some(_) => return f("heic", "image/heic"),
        None => {}
    }
    match head {
        [b'B', b'M', _, _, _, _, _, _, _, _, _, _, _, _, a, b, c, d, ..]
            if BMP_HEADERS.contains(&u32::from_le_bytes([*a, *b, *c, *d])) =>
        {
            f("bmp", "image/bmp")
        }
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
        "an MP4/QuickTime container (not supported)"
    } else if head.starts_with(b"%PDF") {
        "a PDF document"
    } else if head.starts_with(b"<") || head.iter().all(|b| b.is_ascii()) {
        "text"
    } else {
        "an unknown format"
    };
    format!("the body is {what}, not an image: accepted formats are JPEG, PNG, WebP, GIF, TIFF, BMP, HEIC and AVIF")
}

/// Width and height, when the header bytes hold them.
pub fn dimensions(head: &[u8]) -> Option<(u32, u32)> {
    let s = imagesize::blob_size(head).ok()?;
    Some((u32::try_from(s.width).ok()?, u32::try_from(s.height).ok()?))
}

/// The refusal of an image whose header, within `head`, declares more than `max_pixels`
/// pixels; `None` when it declares fewer, or when `head` does not hold the dimensions
/// (the processor checks them again from the whole file).
pub fn too_many_pixels(head: &[u8], max_pixels: u64) -> Option<IngestError> {
    let (width, height) = dimensions(head)?;
    (u64::from(width) * u64::from(height) > max_pixels).then_some(IngestError::ImageTooLarge { width, height, max_pixels })
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
        assert!(refusal(b"\0\0\0\x18ftypisom\0\0\0\0mp41avc1").contains("MP4"));
        let mut heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
        assert_eq!(sniff(&heic).map(|f| (f.name, f.content_type)), Some(("heic", "image/heic")));
        heic[20..24].copy_from_slice(b"avif");
        assert_eq!(sniff(&heic).map(|f| (f.name, f.content_type)), Some(("avif", "image/avif")));
        let mut bmp = b"BM\0\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0".to_vec();
        assert_eq!(sniff(&bmp).map(|f| f.name), Some("bmp"));
        bmp[14] = 0x29;
        assert!(sniff(&bmp).is_none(), "BM followed by no info header is not a BMP");
        assert!(sniff(b"BM is just text").is_none());
    }

    use proptest::prelude::*;

    /// Each accepted format's magic numbers.
    const MAGIC: &[(&str, &[u8])] = &[
        ("jpeg", b"\xFF\xD8\xFF"),
        ("png", b"\x89PNG\r\n\x1a\n"),
        ("gif", b"GIF87a"),
        ("gif", b"GIF89a"),
        ("webp", b"RIFF"), // then 4 bytes of size, then `WEBP`
        ("tiff", b"II*\0"),
        ("tiff", b"MM\0*"),
    ];

    /// A format's magic numbers followed by `tail`.
    fn with_magic(i: usize, size: [u8; 4], tail: &[u8]) -> Vec<u8> {
        let mut b = MAGIC[i].1.to_vec();
        if MAGIC[i].0 == "webp" {
            b.extend(size);
            b.extend(b"WEBP");
        }
        b.extend(tail);
        b
    }

    /// Bytes that start like an image more often than uniform bytes would.
    fn headish() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            (0..MAGIC.len(), any::<[u8; 4]>(), proptest::collection::vec(any::<u8>(), 0..64))
                .prop_map(|(i, size, tail)| with_magic(i, size, &tail)),
            // A magic number cut short, or with one byte changed.
            (0..MAGIC.len(), any::<[u8; 4]>(), proptest::collection::vec(any::<u8>(), 0..16), any::<usize>(), any::<u8>())
                .prop_map(|(i, size, tail, at, byte)| {
                    let mut b = with_magic(i, size, &tail);
                    let at = at % b.len();
                    if byte % 2 == 0 {
                        b.truncate(at)
                    } else {
                        b[at] = byte
                    }
                    b
                }),
        ]
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        b.extend(w.to_be_bytes());
        b.extend(h.to_be_bytes());
        b.extend([8, 6, 0, 0, 0, 0x12, 0x34, 0x56, 0x78]);
        b
    }

    fn gif(w: u16, h: u16) -> Vec<u8> {
        let mut b = b"GIF89a".to_vec();
        b.extend(w.to_le_bytes());
        b.extend(h.to_le_bytes());
        b.extend([0xF7, 0, 0]);
        b
    }

    /// A JFIF segment of `app` bytes, then a baseline frame header.
    fn jpeg(w: u16, h: u16, app: &[u8]) -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0];
        b.extend((app.len() as u16 + 2).to_be_bytes());
        b.extend(app);
        b.extend([0xFF, 0xC0, 0x00, 0x11, 0x08]);
        b.extend(h.to_be_bytes());
        b.extend(w.to_be_bytes());
        b.extend([3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        b
    }

    /// An extended WebP header (`VP8X`): dimensions are 24 bits, stored minus one.
    fn webp(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
        b.extend(&(w - 1).to_le_bytes()[..3]);
        b.extend(&(h - 1).to_le_bytes()[..3]);
        b
    }

    /// A TIFF whose first IFD has ImageWidth (LONG) and ImageLength (SHORT).
    fn tiff(w: u32, h: u16, big_endian: bool) -> Vec<u8> {
        let u16b = |v: u16| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
        let u32b = |v: u32| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut b = if big_endian { b"MM\0*".to_vec() } else { b"II*\0".to_vec() };
        b.extend(u32b(8));
        b.extend(u16b(2));
        b.extend(u16b(0x100));
        b.extend(u16b(4));
        b.extend(u32b(1));
        b.extend(u32b(w));
        b.extend(u16b(0x101));
        b.extend(u16b(3));
        b.extend(u32b(1));
        b.extend(u16b(h));
        b.extend([0, 0]);
        b.extend(u32b(0));
        b
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Whatever the bytes: no panic; a format only after its magic numbers, and then
        /// the content type that goes with it; a refusal that says it is not an image.
        #[test]
        fn any_bytes_are_sniffed_or_refused(b in headish()) {
            match sniff(&b) {
                Some(f) => {
                    prop_assert!(
                        MAGIC.iter().any(|(name, magic)| *name == f.name && b.starts_with(magic)
                            && (f.name != "webp" || b.get(8..12) == Some(&b"WEBP"[..]))),
                        "{} from {b:?}", f.name
                    );
                    prop_assert_eq!(f.content_type, format!("image/{}", f.name));
                }
                None => prop_assert!(refusal(&b).contains("not an image"), "{}", refusal(&b)),
            }
            let _ = dimensions(&b);
            let _ = exif(&b);
        }

        /// A format's magic numbers, whatever follows them, are that format.
        #[test]
        fn magic_numbers_are_identified(i in 0..MAGIC.len(), size in any::<[u8; 4]>(), tail in proptest::collection::vec(any::<u8>(), 0..512)) {
            let b = with_magic(i, size, &tail);
            prop_assert_eq!(sniff(&b).map(|f| f.name), Some(MAGIC[i].0));
            let _ = dimensions(&b);
            let _ = exif(&b);
        }

        /// The verdict needs no more than [`SNIFF_BYTES`], and more bytes never change it:
        /// the inspector sniffs once it has that many, or at the end of a shorter body.
        #[test]
        fn the_first_bytes_decide(b in headish(), cut in any::<usize>()) {
            let verdict = sniff(&b);
            prop_assert_eq!(sniff(&b[..b.len().min(SNIFF_BYTES)]), verdict);
            let short = sniff(&b[..cut % (b.len() + 1)]);
            prop_assert!(short.is_none() || short == verdict, "{short:?} then {verdict:?}");
        }

        /// Well-formed headers give their dimensions, whatever bytes follow them, and are
        /// sniffed as their format.
        #[test]
        fn dimensions_of_well_formed_headers(
            w in 1..=u16::MAX, h in 1..=u16::MAX, big in 1u32..=0x7FFF_FFFF, big_endian in any::<bool>(),
            app in proptest::collection::vec(any::<u8>(), 0..300),
            tail in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let wide = big.min(1 << 24);
            let cases = [
                ("png", png(big, u32::from(h)), (big, u32::from(h))),
                ("gif", gif(w, h), (u32::from(w), u32::from(h))),
                ("jpeg", jpeg(w, h, &app), (u32::from(w), u32::from(h))),
                ("webp", webp(wide, u32::from(h)), (wide, u32::from(h))),
                ("tiff", tiff(big, h, big_endian), (big, u32::from(h))),
            ];
            for (name, mut head, dims) in cases {
                head.extend(&tail);
                prop_assert_eq!(sniff(&head).map(|f| f.name), Some(name));
                prop_assert_eq!(dimensions(&head), Some(dims), "{}", name);
            }
        }

        /// EXIF that we write is read back: the camera from Make and Model, the orientation.
        #[test]
        fn exif_of_a_well_formed_block(make in "[A-Za-z0-9]{1,12}", model in "[A-Za-z0-9]{1,12}", orientation in 1u16..=8,
                                        tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut head = jpeg_with_exif(&make, &model, orientation);
            head.extend(tail);
            let e = exif(&head).expect("an EXIF block");
            let camera = if model.starts_with(&make) { model.clone() } else { format!("{make} {model}") };
            prop_assert_eq!(e.camera, Some(camera));
            prop_assert_eq!(e.orientation, Some(orientation));
            prop_assert_eq!(e.taken_at, None);
        }

        /// An EXIF block of random bytes never panics the reader.
        #[test]
        fn exif_of_random_blocks(tiff_bytes in proptest::collection::vec(any::<u8>(), 0..400), le in any::<bool>()) {
            let mut block = if le { b"II*\0\x08\0\0\0".to_vec() } else { b"MM\0*\0\0\0\x08".to_vec() };
            block.extend(tiff_bytes);
            let _ = exif(&jpeg_app1(&block));
        }
    }

    /// A JPEG whose APP1 segment holds `tiff` as its EXIF.
    fn jpeg_app1(tiff: &[u8]) -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8, 0xFF, 0xE1];
        b.extend((tiff.len() as u16 + 8).to_be_bytes());
        b.extend(b"Exif\0\0");
        b.extend(tiff);
        b.extend(jpeg(1, 1, b"JFIF\0")[2..].iter());
        b
    }

    /// Little-endian EXIF: Make and Model (ASCII, stored after the IFD), Orientation.
    fn jpeg_with_exif(make: &str, model: &str, orientation: u16) -> Vec<u8> {
        let entries = 3u16;
        let data_at = 8 + 2 + 12 * u32::from(entries) + 4;
        let mut t = b"II*\0\x08\0\0\0".to_vec();
        t.extend(entries.to_le_bytes());
        let make_z = format!("{make}\0");
        let model_z = format!("{model}\0");
        let mut data: Vec<u8> = Vec::new();
        for (tag, text) in [(0x010Fu16, &make_z), (0x0110, &model_z)] {
            t.extend(tag.to_le_bytes());
            t.extend(2u16.to_le_bytes());
            t.extend((text.len() as u32).to_le_bytes());
            if text.len() <= 4 {
                let mut v = text.as_bytes().to_vec();
                v.resize(4, 0);
                t.extend(v);
            } else {
                t.extend((data_at + data.len() as u32).to_le_bytes());
                data.extend(text.as_bytes());
            }
        }
        t.extend(0x0112u16.to_le_bytes());
        t.extend(3u16.to_le_bytes());
        t.extend(1u32.to_le_bytes());
        t.extend(orientation.to_le_bytes());
        t.extend([0, 0]);
        t.extend(0u32.to_le_bytes());
        t.extend(data);
        jpeg_app1(&t)
    }
}
