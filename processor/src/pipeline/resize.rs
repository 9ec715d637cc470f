//! Resizing with `fast_image_resize` (SIMD convolution, Lanczos3 like libvips' reduce).

use fast_image_resize as fir;
use fir::images::{Image, ImageRef};
use fir::{FilterType, PixelType, ResizeAlg, ResizeOptions};
use image::{DynamicImage, GrayImage, RgbImage, RgbaImage};

/// Reusable resizer: keeps its scratch buffers between the variants of one render.
pub(super) struct Resizer {
    inner: fir::Resizer,
    options: ResizeOptions,
}

impl Resizer {
    pub fn new() -> Self {
        Resizer {
            inner: fir::Resizer::new(),
            // Alpha is premultiplied during the resize (mul_div_alpha, on by default), so
            // transparent pixels do not bleed their colour into opaque ones.
            options: ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)),
        }
    }

    /// Resize an L8, RGB8 or RGBA8 image to exactly `width` x `height`.
    pub fn resize(&mut self, src: &DynamicImage, width: u32, height: u32) -> Result<DynamicImage, String> {
        let options = self.options;
        self.resize_with(src, width, height, &options)
    }

    /// Resize the largest centred region of `src` that has the aspect ratio of
    /// `width` x `height` to exactly that size (crop and resize in one resampling).
    pub fn resize_cover(&mut self, src: &DynamicImage, width: u32, height: u32) -> Result<DynamicImage, String> {
        let (sw, sh) = (f64::from(src.width()), f64::from(src.height()));
        let (w, h) = (f64::from(width.max(1)), f64::from(height.max(1)));
        let (cw, ch) = if sw * h >= sh * w { (sh * w / h, sh) } else { (sw, sw * h / w) };
        let options = self.options.clone().crop((sw - cw) / 2.0, (sh - ch) / 2.0, cw, ch);
        self.resize_with(src, width, height, &options)
    }

    fn resize_with(
        &mut self,
        src: &DynamicImage,
        width: u32,
        height: u32,
        options: &ResizeOptions,
    ) -> Result<DynamicImage, String> {
        let pixel_type = match src {
            DynamicImage::ImageLuma8(_) => PixelType::U8,
            DynamicImage::ImageRgb8(_) => PixelType::U8x3,
            DynamicImage::ImageRgba8(_) => PixelType::U8x4,
            other => return Err(format!("unexpected pixel layout {:?}", other.color())),
        };
        let src_ref =
            ImageRef::new(src.width(), src.height(), src.as_bytes(), pixel_type).map_err(|e| format!("resize source: {e}"))?;
        let mut dst = Image::new(width.max(1), height.max(1), pixel_type);
        self.inner.resize(&src_ref, &mut dst, options).map_err(|e| format!("resize: {e}"))?;
        let (w, h) = (dst.width(), dst.height());
        let buf = dst.into_vec();
        let img = match pixel_type {
            PixelType::U8 => GrayImage::from_raw(w, h, buf).map(DynamicImage::ImageLuma8),
            PixelType::U8x3 => RgbImage::from_raw(w, h, buf).map(DynamicImage::ImageRgb8),
            _ => RgbaImage::from_raw(w, h, buf).map(DynamicImage::ImageRgba8),
        };
        img.ok_or_else(|| "resize produced a short buffer".to_string())
    }
}
