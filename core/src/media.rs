//! Image containers recognised from their bytes where the magic number alone does not
//! tell: ISO BMFF files (HEIF, AVIF, MP4) share `ftyp` and differ by brand. Ingest's
//! sniffing and the processor's decoder both ask here.

/// Bytes of a file's start that [`heif_brand`] needs to see every brand of a typical
/// `ftyp` box.
pub const FTYP_BYTES: usize = 64;

/// `Some("avif")` or `Some("heic")` when `head` starts with an `ftyp` box whose major or
/// compatible brands name AV1-in-HEIF (`avif`, `avis`) or HEIF (`heic`, `heix`, `heim`,
/// `heis`, `hevc`, `hevx`, `mif1`, `msf1`); AVIF wins, since AVIF files often list
/// `mif1` too. Only the box's first [`FTYP_BYTES`] are read, and `None` comes back until
/// `head` holds them (or the whole box), so a verdict never changes as bytes arrive.
/// `None` also for other brands (MP4, QuickTime).
pub fn heif_brand(head: &[u8]) -> Option<&'static str> {
    if head.len() < 12 || &head[4..8] != b"ftyp" {
        return None;
    }
    let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let end = size.clamp(12, FTYP_BYTES);
    if head.len() < end {
        return None;
    }
    let compatible = head.get(16..end).unwrap_or(&[]).chunks_exact(4);
    let (mut avif, mut heic) = (false, false);
    for b in std::iter::once(&head[8..12]).chain(compatible) {
        avif |= matches!(b, b"avif" | b"avis");
        heic |= matches!(b, b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"mif1" | b"msf1");
    }
    if avif {
        Some("avif")
    } else if heic {
        Some("heic")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let mut b = ((16 + 4 * compatible.len()) as u32).to_be_bytes().to_vec();
        b.extend(b"ftyp");
        b.extend(major);
        b.extend([0, 0, 0, 0]);
        for c in compatible {
            b.extend(*c);
        }
        b.extend(b"\0\0\0\x20meta");
        b
    }

    #[test]
    fn brands() {
        assert_eq!(heif_brand(&ftyp(b"heic", &[b"mif1", b"heic"])), Some("heic"));
        assert_eq!(heif_brand(&ftyp(b"mif1", &[b"avif", b"miaf"])), Some("avif"));
        assert_eq!(heif_brand(&ftyp(b"avif", &[])), Some("avif"));
        assert_eq!(heif_brand(&ftyp(b"mif1", &[b"heic"])), Some("heic"));
        assert_eq!(heif_brand(&ftyp(b"isom", &[b"mp41", b"avc1"])), None);
        assert_eq!(heif_brand(b"\0\0\0\x18ftypqt  \0\0\0\0qt  qt  "), None);
        assert_eq!(heif_brand(b"\0\0\0\x18ftyp"), None);
        // Undecided until the box (or its first FTYP_BYTES) is there.
        let b = ftyp(b"mif1", &[b"heic", b"avif"]);
        assert_eq!(heif_brand(&b[..20]), None);
        assert_eq!(heif_brand(&b), Some("avif"));
        let mut long = b.clone();
        long[..4].copy_from_slice(&1000u32.to_be_bytes());
        long.resize(FTYP_BYTES, 0);
        assert_eq!(heif_brand(&long[..FTYP_BYTES - 1]), None);
        assert_eq!(heif_brand(&long), Some("avif"));
    }
}
