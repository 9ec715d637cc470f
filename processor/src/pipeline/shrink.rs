//! The shrinking accumulator: a box (area) reduction by an integer factor, fed with
//! rows or blocks of pixels as a decoder produces them.
//!
//! Every source pixel falls in exactly one output cell, and a cell is the mean of its
//! pixels, so the order in which pixels arrive does not matter: rows top to bottom, tiles
//! row by row, or the seven passes of an Adam7-interlaced PNG all give the same result.
//! What the order changes is memory: the sums of an output row are kept only until the
//! caller says every input row it covers has arrived ([`Shrinker::rows_done`]); a
//! row-ordered source therefore holds one or two rows of sums, an interlaced one all of
//! them (4 bytes per channel per output pixel for 8-bit samples, 8 for 16-bit ones).
//!
//! Samples are 8 or 16 bits ([`Sample`]): a 16-bit source is reduced at 16 bits and
//! stays so until the final 8-bit encode.
//!
//! Alpha is accumulated premultiplied, so transparent pixels do not bleed their colour,
//! as in the Lanczos step that follows.

use std::ops::{Add, AddAssign, Mul};

use image::{DynamicImage, ImageBuffer, Luma, Rgb, Rgba};

use super::PipelineError;

/// The largest factor: 255 x 255 x 256 x 256 still fits the premultiplied sums of 8-bit
/// samples in a u32 (16-bit ones are summed in a u64).
pub(super) const MAX_FACTOR: u32 = 256;

/// A sample the accumulator reduces: `u8`, summed in a `u32`, or `u16`, summed in a `u64`.
pub(super) trait Sample: Copy + Default + Send + 'static {
    /// The sums' type: large enough for `MAX` x `MAX` x [`MAX_FACTOR`]².
    type Acc: Copy + Default + PartialEq + Add<Output = Self::Acc> + AddAssign + Mul<Output = Self::Acc>;
    /// Bytes of one sample.
    const BYTES: u64;
    /// A sample's value in the sums' type.
    fn acc(self) -> Self::Acc;
    /// `n` in the sums' type.
    fn count(n: u32) -> Self::Acc;
    /// `(sum + div / 2) / div`: the rounded mean, which fits a sample.
    fn mean(sum: Self::Acc, div: Self::Acc) -> Self;
    /// A grey (1), RGB (3) or RGBA (4) image of these samples.
    fn image(width: u32, height: u32, channels: usize, buf: Vec<Self>) -> Option<DynamicImage>;
}

impl Sample for u8 {
    type Acc = u32;
    const BYTES: u64 = 1;
    fn acc(self) -> u32 {
        u32::from(self)
    }
    fn count(n: u32) -> u32 {
        n
    }
    fn mean(sum: u32, div: u32) -> u8 {
        (sum + div / 2).checked_div(div).unwrap_or(0) as u8
    }
    fn image(width: u32, height: u32, channels: usize, buf: Vec<u8>) -> Option<DynamicImage> {
        match channels {
            1 => ImageBuffer::<Luma<u8>, _>::from_raw(width, height, buf).map(DynamicImage::ImageLuma8),
            3 => ImageBuffer::<Rgb<u8>, _>::from_raw(width, height, buf).map(DynamicImage::ImageRgb8),
            _ => ImageBuffer::<Rgba<u8>, _>::from_raw(width, height, buf).map(DynamicImage::ImageRgba8),
        }
    }
}

impl Sample for u16 {
    type Acc = u64;
    const BYTES: u64 = 2;
    fn acc(self) -> u64 {
        u64::from(self)
    }
    fn count(n: u32) -> u64 {
        u64::from(n)
    }
    fn mean(sum: u64, div: u64) -> u16 {
        (sum + div / 2).checked_div(div).unwrap_or(0) as u16
    }
    fn image(width: u32, height: u32, channels: usize, buf: Vec<u16>) -> Option<DynamicImage> {
        match channels {
            1 => ImageBuffer::<Luma<u16>, _>::from_raw(width, height, buf).map(DynamicImage::ImageLuma16),
            3 => ImageBuffer::<Rgb<u16>, _>::from_raw(width, height, buf).map(DynamicImage::ImageRgb16),
            _ => ImageBuffer::<Rgba<u16>, _>::from_raw(width, height, buf).map(DynamicImage::ImageRgba16),
        }
    }
}

/// Channels of the accumulator for `channels` decoded ones (grey + alpha becomes RGBA,
/// the layouts the resizer and encoders take).
pub(super) fn out_channels(channels: usize) -> usize {
    if channels == 2 {
        4
    } else {
        channels
    }
}

/// Grey + alpha rows become RGBA (in `scratch`); the other layouts pass through.
pub(super) fn to_layout<'a, S: Sample>(row: &'a [S], channels: usize, scratch: &'a mut Vec<S>) -> &'a [S] {
    if channels != 2 {
        return row;
    }
    scratch.clear();
    scratch.extend(row.chunks_exact(2).flat_map(|p| [p[0], p[0], p[0], p[1]]));
    scratch
}

/// The box factor that leaves the image at least twice `target` on both sides (the
/// margin libvips and Pillow keep for the final filtered resize), at most [`MAX_FACTOR`].
pub(super) fn factor_for(width: u32, height: u32, target: (u32, u32)) -> u32 {
    let kx = width / (2 * target.0.max(1));
    let ky = height / (2 * target.1.max(1));
    kx.min(ky).clamp(1, MAX_FACTOR)
}

/// Output size of a `k` box reduction of `width` x `height` (partial edge cells count).
pub(super) fn reduced_size(width: u32, height: u32, k: u32) -> (u32, u32) {
    (width.div_ceil(k), height.div_ceil(k))
}

/// A box reduction in progress, of `S` samples. See the module documentation.
pub(super) struct Shrinker<S: Sample> {
    width: u32,
    height: u32,
    channels: usize,
    k: u32,
    out_w: u32,
    out_h: u32,
    /// Sums of output rows `first_open..first_open + sums.len() / row_len`.
    sums: Vec<S::Acc>,
    first_open: u32,
    /// Finished output rows (all of them when `k == 1`, written directly).
    out: Vec<S>,
}

fn alloc_failed(what: &str, bytes: usize) -> PipelineError {
    PipelineError::DecodeLimit(format!("could not allocate {bytes} bytes for {what}"))
}

impl<S: Sample> Shrinker<S> {
    /// A reduction of a `width` x `height` image with `channels` (1 = grey, 3 = RGB,
    /// 4 = RGBA) by `k` in both directions.
    pub fn new(width: u32, height: u32, channels: usize, k: u32) -> Result<Self, PipelineError> {
        debug_assert!(matches!(channels, 1 | 3 | 4));
        let k = k.clamp(1, MAX_FACTOR);
        let (out_w, out_h) = reduced_size(width, height, k);
        let len = out_w as usize * out_h as usize * channels;
        let mut out = Vec::new();
        out.try_reserve_exact(len).map_err(|_| alloc_failed("the reduced image", len * S::BYTES as usize))?;
        out.resize(len, S::default());
        Ok(Shrinker { width, height, channels, k, out_w, out_h, sums: Vec::new(), first_open: 0, out })
    }

    fn row_len(&self) -> usize {
        self.out_w as usize * self.channels
    }

    /// Adds `pixels` (whole pixels of `channels` samples) of source row `y`, the `i`-th at
    /// column `x0 + i * step`. Pixels outside the image are ignored.
    pub fn add_row(&mut self, y: u32, x0: u32, step: u32, pixels: &[S]) -> Result<(), PipelineError> {
        if y >= self.height || x0 >= self.width {
            return Ok(());
        }
        let ch = self.channels;
        let n = ((self.width - x0).div_ceil(step.max(1)) as usize).min(pixels.len() / ch);
        let pixels = &pixels[..n * ch];
        let row_len = self.row_len();
        if self.k == 1 {
            let row = &mut self.out[y as usize * row_len..][..row_len];
            if step == 1 {
                row[x0 as usize * ch..][..pixels.len()].copy_from_slice(pixels);
            } else {
                for (i, px) in pixels.chunks_exact(ch).enumerate() {
                    let x = (x0 + i as u32 * step) as usize;
                    row[x * ch..][..ch].copy_from_slice(px);
                }
            }
            return Ok(());
        }
        let r = y / self.k;
        if r < self.first_open {
            return Err(PipelineError::DecodeFailed(format!("decoder produced row {y} after it was finished")));
        }
        let open_rows = (r - self.first_open + 1) as usize;
        if self.sums.len() < open_rows * row_len {
            let want = open_rows * row_len;
            let bytes = want * size_of::<S::Acc>();
            self.sums.try_reserve(want - self.sums.len()).map_err(|_| alloc_failed("the reduction's sums", bytes))?;
            self.sums.resize(want, S::Acc::default());
        }
        let sums = &mut self.sums[(r - self.first_open) as usize * row_len..][..row_len];
        match ch {
            1 => accumulate::<S, 1>(sums, pixels, x0, step, self.k),
            3 => accumulate::<S, 3>(sums, pixels, x0, step, self.k),
            _ => accumulate_alpha(sums, pixels, x0, step, self.k),
        }
        Ok(())
    }

    /// Every source row before `y_end` has arrived: finish the output rows they cover.
    pub fn rows_done(&mut self, y_end: u32) {
        if self.k == 1 {
            return;
        }
        let y_end = y_end.min(self.height);
        let last = if y_end == self.height { self.out_h } else { y_end / self.k };
        let row_len = self.row_len();
        let mut done = 0usize;
        while self.first_open < last {
            let r = self.first_open;
            let out = &mut self.out[r as usize * row_len..][..row_len];
            let sums = self.sums.get(done * row_len..(done + 1) * row_len);
            let cell_h = self.k.min(self.height - r * self.k);
            finish_row(out, sums, self.channels, self.k, self.width, cell_h);
            self.first_open += 1;
            done += 1;
        }
        // One move of the rows still open, not one per finished row.
        let finished = (done * row_len).min(self.sums.len());
        self.sums.drain(..finished);
        if self.first_open == self.out_h {
            self.sums = Vec::new();
        }
    }

    /// The reduced image (grey, RGB or RGBA by `channels`, of `S` samples).
    pub fn finish(mut self) -> Result<DynamicImage, PipelineError> {
        self.rows_done(self.height);
        S::image(self.out_w, self.out_h, self.channels, self.out)
            .ok_or_else(|| PipelineError::DecodeFailed("reduction produced a short buffer".into()))
    }
}

fn accumulate<S: Sample, const C: usize>(sums: &mut [S::Acc], pixels: &[S], x0: u32, step: u32, k: u32) {
    if step == 1 {
        let mut cell = (x0 / k) as usize;
        let mut left = k - x0 % k;
        for px in pixels.chunks_exact(C) {
            let s = &mut sums[cell * C..cell * C + C];
            for c in 0..C {
                s[c] += px[c].acc();
            }
            left -= 1;
            if left == 0 {
                cell += 1;
                left = k;
            }
        }
    } else {
        for (i, px) in pixels.chunks_exact(C).enumerate() {
            let cell = ((x0 + i as u32 * step) / k) as usize;
            for c in 0..C {
                sums[cell * C + c] += px[c].acc();
            }
        }
    }
}

fn accumulate_alpha<S: Sample>(sums: &mut [S::Acc], pixels: &[S], x0: u32, step: u32, k: u32) {
    for (i, px) in pixels.chunks_exact(4).enumerate() {
        let cell = ((x0 + i as u32 * step) / k) as usize;
        let a = px[3].acc();
        let s = &mut sums[cell * 4..cell * 4 + 4];
        s[0] += px[0].acc() * a;
        s[1] += px[1].acc() * a;
        s[2] += px[2].acc() * a;
        s[3] += a;
    }
}

/// Means of one output row's cells (`sums` is `None` when no pixel of it arrived).
fn finish_row<S: Sample>(out: &mut [S], sums: Option<&[S::Acc]>, channels: usize, k: u32, width: u32, cell_h: u32) {
    let Some(sums) = sums else {
        return; // nothing arrived: the decoder reports the truncation, the row stays black
    };
    for (cx, (o, s)) in out.chunks_exact_mut(channels).zip(sums.chunks_exact(channels)).enumerate() {
        let cell_w = k.min(width - cx as u32 * k);
        let count = S::count(cell_w * cell_h);
        if channels == 4 {
            // Premultiplied sums: colour = sum(c * a) / sum(a); fully transparent is 0.
            let a = s[3];
            o[3] = S::mean(a, count);
            for c in 0..3 {
                o[c] = S::mean(s[c], a);
            }
        } else {
            for c in 0..channels {
                o[c] = S::mean(s[c], count);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reference box reduction over a whole image held in memory.
    fn reference(w: u32, h: u32, ch: usize, k: u32, px: &[u8]) -> Vec<u8> {
        let (ow, oh) = reduced_size(w, h, k);
        let mut out = vec![0u8; (ow * oh) as usize * ch];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut s = [0u64; 4];
                let mut n = 0u64;
                for y in oy * k..((oy + 1) * k).min(h) {
                    for x in ox * k..((ox + 1) * k).min(w) {
                        let p = &px[(y * w + x) as usize * ch..][..ch];
                        n += 1;
                        for c in 0..ch {
                            s[c] += u64::from(p[c]);
                        }
                    }
                }
                for c in 0..ch {
                    out[(oy * ow + ox) as usize * ch + c] = ((s[c] + n / 2) / n) as u8;
                }
            }
        }
        out
    }

    fn pattern(w: u32, h: u32, ch: usize) -> Vec<u8> {
        (0..(w * h) as usize * ch).map(|i| ((i * 37 + i / 7) % 251) as u8).collect()
    }

    #[test]
    fn rows_in_order_match_the_reference() {
        for (w, h, ch, k) in [(37u32, 23u32, 3usize, 4u32), (64, 64, 1, 8), (10, 9, 3, 1), (5, 5, 3, 7)] {
            let px = pattern(w, h, ch);
            let mut s = Shrinker::<u8>::new(w, h, ch, k).unwrap();
            for y in 0..h {
                s.add_row(y, 0, 1, &px[(y * w) as usize * ch..][..w as usize * ch]).unwrap();
                s.rows_done(y + 1);
            }
            let img = s.finish().unwrap();
            assert_eq!(img.as_bytes(), reference(w, h, ch, k, &px), "{w}x{h} ch={ch} k={k}");
        }
    }

    #[test]
    fn tiles_and_interlaced_passes_give_the_same_image() {
        let (w, h, ch, k) = (50u32, 41u32, 3usize, 3u32);
        let px = pattern(w, h, ch);
        let want = reference(w, h, ch, k, &px);
        // 16x16 tiles, row of tiles by row of tiles.
        let mut s = Shrinker::<u8>::new(w, h, ch, k).unwrap();
        for ty in (0..h).step_by(16) {
            for tx in (0..w).step_by(16) {
                for y in ty..(ty + 16).min(h) {
                    let x1 = (tx + 16).min(w);
                    s.add_row(y, tx, 1, &px[(y * w + tx) as usize * ch..(y * w + x1) as usize * ch]).unwrap();
                }
            }
            s.rows_done(ty + 16);
        }
        assert_eq!(s.finish().unwrap().as_bytes(), want);
        // Adam7: seven passes over the whole image, rows_done only at the end.
        let passes = [(0, 8, 0, 8), (4, 8, 0, 8), (0, 4, 4, 8), (2, 4, 0, 4), (0, 2, 2, 4), (1, 2, 0, 2), (0, 1, 1, 2)];
        let mut s = Shrinker::<u8>::new(w, h, ch, k).unwrap();
        for (x0, dx, y0, dy) in passes {
            for y in (y0..h).step_by(dy as usize) {
                let row: Vec<u8> =
                    (x0..w).step_by(dx as usize).flat_map(|x| px[(y * w + x) as usize * ch..][..ch].to_vec()).collect();
                s.add_row(y, x0, dx, &row).unwrap();
            }
        }
        assert_eq!(s.finish().unwrap().as_bytes(), want);
    }

    #[test]
    fn alpha_is_premultiplied() {
        // One opaque red pixel and one transparent green one: the cell is half-transparent red.
        let mut s = Shrinker::<u8>::new(2, 1, 4, 2).unwrap();
        s.add_row(0, 0, 1, &[255, 0, 0, 255, 0, 255, 0, 0]).unwrap();
        assert_eq!(s.finish().unwrap().as_bytes(), &[255, 0, 0, 128]);
    }

    #[test]
    fn sixteen_bit_samples_keep_their_precision() {
        // Three pixels in four at 25828 (8-bit 100.498) and one at 26085 (101.498): the
        // 16-bit mean is 25892 (8-bit 100.75, so 101), where rounding each pixel to 8
        // bits first would give 100.25 (so 100).
        let (w, h) = (8u32, 8u32);
        let px: Vec<u16> = (0..w * h).map(|i| if i % 2 == 1 && (i / w) % 2 == 1 { 26085 } else { 25828 }).collect();
        let mut s = Shrinker::<u16>::new(w, h, 1, 4).unwrap();
        for y in 0..h {
            s.add_row(y, 0, 1, &px[(y * w) as usize..][..w as usize]).unwrap();
            s.rows_done(y + 1);
        }
        let DynamicImage::ImageLuma16(g) = s.finish().unwrap() else { panic!("a 16-bit reduction gives 16-bit grey") };
        assert_eq!(g.dimensions(), (2, 2));
        assert!(g.as_raw().iter().all(|&v| v == 25892), "{:?}", g.as_raw());
        assert_eq!(DynamicImage::ImageLuma16(g).to_luma8().as_raw(), &[101u8; 4]);
        // Premultiplied alpha at 16 bits, at the extremes of the sums.
        let mut s = Shrinker::<u16>::new(2, 1, 4, 2).unwrap();
        s.add_row(0, 0, 1, &[65535, 0, 0, 65535, 0, 65535, 0, 0]).unwrap();
        let DynamicImage::ImageRgba16(rgba) = s.finish().unwrap() else { panic!("16-bit RGBA") };
        assert_eq!(rgba.as_raw(), &[65535, 0, 0, 32768]);
        let mut s = Shrinker::<u16>::new(256, 256, 4, MAX_FACTOR).unwrap();
        for y in 0..256 {
            s.add_row(y, 0, 1, &[65535u16; 256 * 4]).unwrap();
        }
        let DynamicImage::ImageRgba16(rgba) = s.finish().unwrap() else { panic!("16-bit RGBA") };
        assert_eq!(rgba.as_raw(), &[65535; 4], "no overflow at the largest factor");
    }

    #[test]
    fn factor_keeps_twice_the_target() {
        assert_eq!(factor_for(20022, 11261, (2048, 1152)), 4);
        assert_eq!(factor_for(4000, 3000, (400, 300)), 5);
        assert_eq!(factor_for(500, 400, (400, 300)), 1);
        assert_eq!(factor_for(65535, 65535, (1, 1)), MAX_FACTOR);
    }
}
