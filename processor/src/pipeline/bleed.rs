//! Colour under fully transparent pixels, for the encoders that code it (AVIF).
//!
//! The colour of a pixel with alpha 0 is invisible, but the encoder still codes it.
//! Zeroing it draws a hard edge into the colour planes along every transparent area,
//! which costs bits at any quality (on the issue-16 corpus, `Flow.png` took 10.6 KB of
//! colour against libvips' 4.8 KB). Filling it smoothly from the visible pixels around
//! costs almost nothing to code.

/// Gives every fully transparent pixel of an RGBA8 image the colour of the visible pixels
/// around it (push-pull: a pyramid of 2x2 means over the visible pixels, then each
/// transparent pixel takes the mean of the finest level whose cell holds one), so that the
/// colour planes run smoothly under transparent areas. Visible pixels are not changed.
pub(super) fn bleed_transparent(px: &mut [u8], w: usize, h: usize) {
    if w == 0 || h == 0 || !px.chunks_exact(4).any(|p| p[3] == 0) || px.chunks_exact(4).all(|p| p[3] == 0) {
        return;
    }
    // levels[0] is 2x2 cells of pixels, each next level 2x2 cells of the one before:
    // sums of the visible pixels' colour and their count.
    let mut levels: Vec<(usize, usize, Vec<[f32; 4]>)> = Vec::new();
    let (mut lw, mut lh) = (w, h);
    while lw > 1 || lh > 1 {
        let (nw, nh) = (lw.div_ceil(2), lh.div_ceil(2));
        let mut next = vec![[0f32; 4]; nw * nh];
        for y in 0..lh {
            for x in 0..lw {
                let cell = &mut next[(y / 2) * nw + x / 2];
                let add = match levels.last() {
                    None => {
                        let p = &px[(y * w + x) * 4..(y * w + x) * 4 + 4];
                        if p[3] == 0 {
                            continue;
                        }
                        [f32::from(p[0]), f32::from(p[1]), f32::from(p[2]), 1.0]
                    }
                    Some((_, _, prev)) => prev[y * lw + x],
                };
                for (c, a) in cell.iter_mut().zip(add) {
                    *c += a;
                }
            }
        }
        levels.push((nw, nh, next));
        (lw, lh) = (nw, nh);
    }
    // From the coarsest level down: a cell's colour is its own mean, or its parent's.
    let mut parent: Vec<[f32; 3]> = Vec::new();
    let mut parent_w = 1;
    for (lw, lh, cells) in levels.iter().rev() {
        let colour: Vec<[f32; 3]> = (0..lw * lh)
            .map(|i| {
                let c = cells[i];
                if c[3] > 0.0 {
                    [c[0] / c[3], c[1] / c[3], c[2] / c[3]]
                } else {
                    parent[(i / lw / 2) * parent_w + (i % lw) / 2]
                }
            })
            .collect();
        parent = colour;
        parent_w = *lw;
    }
    for (i, p) in px.chunks_exact_mut(4).enumerate() {
        if p[3] == 0 {
            let c = parent[(i / w / 2) * parent_w + (i % w) / 2];
            for (d, v) in p[..3].iter_mut().zip(c) {
                *d = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn px(w: usize, h: usize, f: impl Fn(usize, usize) -> [u8; 4]) -> Vec<u8> {
        (0..w * h).flat_map(|i| f(i % w, i / w)).collect()
    }

    #[test]
    fn visible_pixels_stay_and_transparent_ones_take_their_neighbours_colour() {
        // Left half opaque red, right half transparent (black underneath).
        let (w, h) = (16, 8);
        let src = px(w, h, |x, _| if x < 8 { [200, 10, 10, 255] } else { [0, 0, 0, 0] });
        let mut out = src.clone();
        bleed_transparent(&mut out, w, h);
        for (i, (a, b)) in src.chunks_exact(4).zip(out.chunks_exact(4)).enumerate() {
            if a[3] > 0 {
                assert_eq!(a, b, "visible pixel {i} changed");
            } else {
                assert_eq!(b, [200, 10, 10, 0], "transparent pixel {i} takes the visible colour, keeps alpha 0");
            }
        }
        // Two colours: each transparent pixel takes the colour nearest in the pyramid.
        let src = px(w, h, |x, _| match x {
            0..=3 => [0, 0, 250, 128],
            12..=15 => [250, 0, 0, 255],
            _ => [9, 9, 9, 0],
        });
        let mut out = src.clone();
        bleed_transparent(&mut out, w, h);
        let at = |x: usize, y: usize| &out[(y * w + x) * 4..][..4];
        assert_eq!(at(4, 0)[..3], [0, 0, 250], "next to the blue");
        assert_eq!(at(11, 0)[..3], [250, 0, 0], "next to the red");
        assert!(out.chunks_exact(4).all(|p| p[..3] != [9, 9, 9]), "no transparent colour is left as it was");
    }

    #[test]
    fn all_transparent_or_all_visible_images_are_left_alone() {
        for fill in [[7, 8, 9, 0], [7, 8, 9, 1]] {
            let src = px(5, 3, |_, _| fill);
            let mut out = src.clone();
            bleed_transparent(&mut out, 5, 3);
            assert_eq!(out, src);
        }
        let mut one = vec![1, 2, 3, 0];
        bleed_transparent(&mut one, 1, 1);
        assert_eq!(one, [1, 2, 3, 0]);
    }
}
