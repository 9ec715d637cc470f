//! Colour: sources with an ICC profile are converted to sRGB with LittleCMS (`lcms2`).
//!
//! Where each format keeps its profile: JPEG in `APP2 ICC_PROFILE` segments (read by
//! `jpeg::parse_header`), PNG in `iCCP`, WebP in `ICCP`, TIFF in tag 34675, HEIC and AVIF
//! in `colr` (libheif hands us the ICC profile, or nclx primaries that are turned into
//! one here). Untagged RGB sources are sRGB already, and sRGB-tagged ones are left alone.
//!
//! The conversion runs on the largest rendered frame, after the resize and before the
//! smaller variants are derived from it, as libvips' `thumbnail` does: the reduction
//! happens in the source's (gamma-encoded) space, and lcms then touches a few megapixels
//! instead of the source's hundreds. CMYK JPEGs are converted earlier, scanline by
//! scanline as they are decoded (`jpeg::decode`): the reduction needs RGB. A CMYK JPEG
//! without a profile goes through a generic one, FOGRA39 ([`GENERIC_CMYK`]).
//! Intent: perceptual, which LittleCMS takes as relative colorimetric for the matrix
//! profiles of RGB sources.

use image::DynamicImage;
use lcms2::{Flags, Intent, PixelFormat, Profile, Transform};

use super::PipelineError;

/// Profiles larger than this are refused as damaged (real ones are at most a few MB).
const MAX_PROFILE: usize = 16 << 20;

/// A profile LittleCMS can open, or `None` for a damaged or unusable one (the pixels are
/// then taken as sRGB, as a browser would).
fn open(icc: &[u8]) -> Option<Profile> {
    if icc.len() < 132 || icc.len() > MAX_PROFILE {
        return None;
    }
    Profile::new_icc(icc).ok()
}

/// Whether the profile describes sRGB itself (the common camera and editor tag), so the
/// conversion can be skipped.
fn is_srgb(p: &Profile) -> bool {
    p.info(lcms2::InfoType::Description, lcms2::Locale::none())
        .map(|d| {
            let d = d.to_ascii_lowercase();
            d.contains("srgb") && !d.contains("linear")
        })
        .unwrap_or(false)
}

/// Converts an RGB or RGBA image (8- or 16-bit samples) tagged with `icc` to sRGB in
/// place, at its own depth. Grey images and unusable or sRGB profiles are left as they are.
pub(super) fn to_srgb(img: &mut DynamicImage, icc: &[u8]) -> Result<(), PipelineError> {
    let Some(src) = open(icc) else { return Ok(()) };
    if src.color_space() != lcms2::ColorSpaceSignature::RgbData || is_srgb(&src) {
        return Ok(());
    }
    let srgb = Profile::new_srgb();
    let fail = |e: lcms2::Error| PipelineError::DecodeFailed(format!("colour profile: {e}"));
    // Alpha is carried over untouched (COPY_ALPHA); LittleCMS takes the pixel type's
    // size as its bytes per pixel, hence the [u16; N] views of 16-bit buffers.
    let (format, flags) = match img {
        DynamicImage::ImageRgb8(_) => (PixelFormat::RGB_8, Flags::default()),
        DynamicImage::ImageRgba8(_) => (PixelFormat::RGBA_8, Flags::COPY_ALPHA),
        DynamicImage::ImageRgb16(_) => (PixelFormat::RGB_16, Flags::default()),
        DynamicImage::ImageRgba16(_) => (PixelFormat::RGBA_16, Flags::COPY_ALPHA),
        _ => return Ok(()),
    };
    match img {
        DynamicImage::ImageRgb16(rgb) => {
            let t: Transform<[u16; 3], [u16; 3]> =
                Transform::new_flags(&src, format, &srgb, format, Intent::Perceptual, flags).map_err(fail)?;
            t.transform_in_place(bytemuck::cast_slice_mut(rgb.as_mut()));
        }
        DynamicImage::ImageRgba16(rgba) => {
            let t: Transform<[u16; 4], [u16; 4]> =
                Transform::new_flags(&src, format, &srgb, format, Intent::Perceptual, flags).map_err(fail)?;
            t.transform_in_place(bytemuck::cast_slice_mut(rgba.as_mut()));
        }
        DynamicImage::ImageRgb8(rgb) => {
            let t: Transform<u8, u8> =
                Transform::new_flags(&src, format, &srgb, format, Intent::Perceptual, flags).map_err(fail)?;
            t.transform_in_place(rgb.as_mut());
        }
        DynamicImage::ImageRgba8(rgba) => {
            let t: Transform<u8, u8> =
                Transform::new_flags(&src, format, &srgb, format, Intent::Perceptual, flags).map_err(fail)?;
            t.transform_in_place(rgba.as_mut());
        }
        _ => {}
    }
    Ok(())
}

/// The profile of a CMYK source without one: FOGRA39 (coated offset, ISO 12647-2), the
/// press condition most CMYK files in Europe are made for, as libvips and Photoshop's
/// defaults assume one. Made by ArgyllCMS's `colprof` from Fogra's measurements in
/// Debian's `icc-profiles-free` (Zlib licence); `processor/assets/README.md` says how.
const GENERIC_CMYK: &[u8] = include_bytes!("../../assets/generic-cmyk.icc");

/// CMYK scanlines to sRGB: through the source's profile, or [`GENERIC_CMYK`] without one.
pub(super) struct CmykToRgb {
    transform: Transform<u8, u8>,
}

impl CmykToRgb {
    /// `inverted`: Adobe (Photoshop) JPEGs store CMYK inverted, 0 being full ink.
    pub fn new(icc: Option<&[u8]>, inverted: bool) -> Result<Self, PipelineError> {
        let cmyk = |p: &Profile| p.color_space() == lcms2::ColorSpaceSignature::CmykData;
        let src = match icc.and_then(open).filter(cmyk) {
            Some(own) => own,
            None => Profile::new_icc(GENERIC_CMYK)
                .map_err(|e| PipelineError::DecodeFailed(format!("the generic CMYK profile: {e}")))?,
        };
        // lcms's CMYK_8_REV reads inverted samples.
        let format = if inverted { PixelFormat::CMYK_8_REV } else { PixelFormat::CMYK_8 };
        let transform = Transform::new(&src, format, &Profile::new_srgb(), PixelFormat::RGB_8, Intent::Perceptual)
            .map_err(|e| PipelineError::DecodeFailed(format!("CMYK profile: {e}")))?;
        Ok(CmykToRgb { transform })
    }

    /// `cmyk` (4 bytes per pixel) into `rgb` (3 bytes per pixel).
    pub fn row(&self, cmyk: &[u8], rgb: &mut [u8]) {
        self.transform.transform_pixels(cmyk, rgb);
    }
}

/// The ICC profile of a JPEG, joined from its `APP2 ICC_PROFILE` segments (each carries
/// its sequence number and the count). `None` when absent or inconsistent.
pub(super) fn join_jpeg_chunks(mut chunks: Vec<(u8, u8, Vec<u8>)>) -> Option<Vec<u8>> {
    let count = chunks.first()?.1;
    if count == 0 || chunks.len() != usize::from(count) || chunks.iter().any(|c| c.1 != count) {
        return None;
    }
    chunks.sort_by_key(|c| c.0);
    if chunks.iter().enumerate().any(|(i, c)| usize::from(c.0) != i + 1) {
        return None;
    }
    let icc: Vec<u8> = chunks.into_iter().flat_map(|c| c.2).collect();
    (icc.len() <= MAX_PROFILE).then_some(icc)
}

/// The `ICCP` chunk of an extended WebP (it comes before the image data, so it is within
/// the first bytes the probe reads).
pub(super) fn webp_icc(head: &[u8]) -> Option<Vec<u8>> {
    if head.len() < 30 || &head[12..16] != b"VP8X" || head[20] & 0x20 == 0 {
        return None;
    }
    let mut pos = 12usize;
    while pos + 8 <= head.len() {
        let len = u32::from_le_bytes(head[pos + 4..pos + 8].try_into().ok()?) as usize;
        if &head[pos..pos + 4] == b"ICCP" {
            return head.get(pos + 8..pos + 8 + len).map(<[u8]>::to_vec);
        }
        pos = pos.checked_add(8 + len + (len & 1))?;
    }
    None
}

/// An sRGB-transfer RGB profile with the given primaries and D65 white, for HEIF and AVIF
/// files that say their colour with nclx primaries instead of an ICC profile. `None` for
/// BT.709 (sRGB's own) and for primaries we do not know.
pub(super) fn nclx_profile(primaries: u16) -> Option<Vec<u8>> {
    use lcms2::{CIExyY, CIExyYTRIPLE, ToneCurve};
    let xy = |x, y| CIExyY { x, y, Y: 1.0 };
    let triple = match primaries {
        // SMPTE EG 432-1: Display P3 (every recent iPhone).
        12 => CIExyYTRIPLE { Red: xy(0.680, 0.320), Green: xy(0.265, 0.690), Blue: xy(0.150, 0.060) },
        // BT.2020 / BT.2100.
        9 => CIExyYTRIPLE { Red: xy(0.708, 0.292), Green: xy(0.170, 0.797), Blue: xy(0.131, 0.046) },
        _ => return None,
    };
    // The sRGB curve (IEC 61966-2-1), which Display P3 shares.
    let curve = ToneCurve::new_parametric(4, &[2.4, 1.0 / 1.055, 0.055 / 1.055, 1.0 / 12.92, 0.04045]).ok()?;
    let white = xy(0.3127, 0.3290);
    let p = Profile::new_rgb(&white, &triple, &[&curve, &curve, &curve]).ok()?;
    p.icc().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p3_red_is_out_of_srgb_and_clipped() {
        let icc = nclx_profile(12).unwrap();
        let mut img = DynamicImage::ImageRgb8(image::RgbImage::from_raw(2, 1, vec![255, 0, 0, 128, 128, 128]).unwrap());
        to_srgb(&mut img, &icc).unwrap();
        let px = img.as_bytes();
        // P3's red is more saturated than sRGB's: red stays at the top, green and blue at 0.
        assert_eq!(&px[..3], &[255, 0, 0]);
        // Neutral grey stays neutral and nearly the same value.
        assert!(px[3..6].iter().all(|&v| (126..=130).contains(&v)), "{px:?}");
        // A less saturated P3 red maps to a different sRGB value (the conversion ran).
        let mut img = DynamicImage::ImageRgb8(image::RgbImage::from_raw(1, 1, vec![200, 60, 60]).unwrap());
        to_srgb(&mut img, &icc).unwrap();
        assert_ne!(img.as_bytes(), &[200, 60, 60]);
        assert!(img.as_bytes()[0] > 200, "{:?}", img.as_bytes());
    }

    #[test]
    fn srgb_and_damaged_profiles_leave_pixels_alone() {
        let srgb = Profile::new_srgb().icc().unwrap();
        let mut img = DynamicImage::ImageRgb8(image::RgbImage::from_raw(1, 1, vec![200, 60, 60]).unwrap());
        to_srgb(&mut img, &srgb).unwrap();
        to_srgb(&mut img, b"not a profile at all, not a profile at all").unwrap();
        to_srgb(&mut img, &[0u8; 400]).unwrap();
        assert_eq!(img.as_bytes(), &[200, 60, 60]);
    }

    #[test]
    fn cmyk_without_a_profile_goes_through_the_generic_one() {
        // FOGRA39 through LittleCMS, as Pillow's ImageCms gives it for the same profile:
        // paper white, and process cyan, which the naive formula makes (0, 255, 255).
        let c = CmykToRgb::new(None, false).unwrap();
        let mut rgb = [0u8; 6];
        c.row(&[0, 0, 0, 0, 255, 0, 0, 0], &mut rgb);
        let near = |got: &[u8], want: [u8; 3]| got.iter().zip(want).all(|(g, w)| g.abs_diff(w) <= 2);
        assert!(near(&rgb[..3], [255, 255, 255]) && near(&rgb[3..], [0, 159, 227]), "{rgb:?}");
        // Inverted (Adobe) samples: the same colours from 255 - ink.
        let inv = CmykToRgb::new(None, true).unwrap();
        inv.row(&[255, 255, 255, 255, 0, 255, 255, 255], &mut rgb);
        assert!(near(&rgb[..3], [255, 255, 255]) && near(&rgb[3..], [0, 159, 227]), "{rgb:?}");
        // An RGB profile handed in for a CMYK source is ignored, as a missing one is.
        let ignored = CmykToRgb::new(Some(&Profile::new_srgb().icc().unwrap()), false).unwrap();
        ignored.row(&[0, 0, 0, 0, 255, 0, 0, 0], &mut rgb);
        assert!(near(&rgb[3..], [0, 159, 227]), "{rgb:?}");
    }

    #[test]
    fn jpeg_chunks_join_in_sequence_order() {
        let chunks = vec![(2, 2, b"world".to_vec()), (1, 2, b"hello ".to_vec())];
        assert_eq!(join_jpeg_chunks(chunks).unwrap(), b"hello world");
        assert!(join_jpeg_chunks(vec![(1, 2, b"x".to_vec())]).is_none());
        assert!(join_jpeg_chunks(vec![(1, 1, b"x".to_vec()), (1, 1, b"y".to_vec())]).is_none());
    }

    #[test]
    fn webp_iccp_chunk() {
        let mut b = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\x20\0\0\0\0\0\0\0\0\0".to_vec();
        b.extend(b"ICCP\x05\0\0\0hello\0VP8 ");
        assert_eq!(webp_icc(&b).unwrap(), b"hello");
        b[20] = 0;
        assert!(webp_icc(&b).is_none());
    }
}
