//! Resizing with `fast_image_resize` (SIMD convolution, Lanczos3 like libvips' reduce).

use fast_image_resize as fir;
use fir::images::{Image, ImageRef};
use fir::{FilterType, PixelType, ResizeAlg, ResizeOptions};
use image::{DynamicImage, GrayImage, ImageBuffer, Luma, Rgb, RgbImage, Rgba, RgbaImage};

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

    /// Resize a grey, RGB or RGBA image of 8- or 16-bit samples to exactly `width` x
    /// `height`, keeping its layout and depth.
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
        if let DynamicImage::ImageRgba8(rgba) = src {
            if rgba.pixels().any(|p| p[3] < 255) {
                // Translucent RGBA8 at 16 bits: the U8x4 path premultiplies into 8 bits, so a
                // pixel of alpha 1 keeps one bit of colour per channel and comes out 0 or
                // 255 (alpha 2: 0, 128 or 255). Invisible on its own, but noise the AVIF
                // encoder pays for (twice libvips' bytes on a mostly translucent overlay,
                // issue 16; libvips premultiplies in float). Opaque images stay at 8 bits.
                let wide = DynamicImage::ImageRgba16(src.to_rgba16());
                let out = self.resize_with(&wide, width, height, options)?;
                return Ok(DynamicImage::ImageRgba8(out.to_rgba8()));
            }
        }
        let pixel_type = match src {
            DynamicImage::ImageLuma8(_) => PixelType::U8,
            DynamicImage::ImageRgb8(_) => PixelType::U8x3,
            DynamicImage::ImageRgba8(_) => PixelType::U8x4,
            DynamicImage::ImageLuma16(_) => PixelType::U16,
            DynamicImage::ImageRgb16(_) => PixelType::U16x3,
            DynamicImage::ImageRgba16(_) => PixelType::U16x4,
            other => return Err(format!("unexpected pixel layout {:?}", other.color())),
        };
        let src_ref =
            ImageRef::new(src.width(), src.height(), src.as_bytes(), pixel_type).map_err(|e| format!("resize source: {e}"))?;
        let (w, h) = (width.max(1), height.max(1));
        let short = || "resize produced a short buffer".to_string();
        if matches!(pixel_type, PixelType::U16 | PixelType::U16x3 | PixelType::U16x4) {
            // Into u16 storage (aligned), seen as bytes by the resizer.
            let mut buf = vec![0u16; w as usize * h as usize * pixel_type.size() / 2];
            let mut dst = Image::from_slice_u8(w, h, bytemuck::cast_slice_mut(&mut buf), pixel_type)
                .map_err(|e| format!("resize target: {e}"))?;
            self.inner.resize(&src_ref, &mut dst, options).map_err(|e| format!("resize: {e}"))?;
            let img = match pixel_type {
                PixelType::U16 => ImageBuffer::<Luma<u16>, _>::from_raw(w, h, buf).map(DynamicImage::ImageLuma16),
                PixelType::U16x3 => ImageBuffer::<Rgb<u16>, _>::from_raw(w, h, buf).map(DynamicImage::ImageRgb16),
                _ => ImageBuffer::<Rgba<u16>, _>::from_raw(w, h, buf).map(DynamicImage::ImageRgba16),
            };
            return img.ok_or_else(short);
        }
        let mut dst = Image::new(w, h, pixel_type);
        self.inner.resize(&src_ref, &mut dst, options).map_err(|e| format!("resize: {e}"))?;
        let buf = dst.into_vec();
        let img = match pixel_type {
            PixelType::U8 => GrayImage::from_raw(w, h, buf).map(DynamicImage::ImageLuma8),
            PixelType::U8x3 => RgbImage::from_raw(w, h, buf).map(DynamicImage::ImageRgb8),
            _ => RgbaImage::from_raw(w, h, buf).map(DynamicImage::ImageRgba8),
        };
        img.ok_or_else(short)
    }
}
