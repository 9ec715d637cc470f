//! Formats and colour (issue 16), through the real binary: HEIC (iPhone-style, rotated by
//! `irot`), AVIF and BMP sources; AVIF variants; ICC-tagged and CMYK sources converted to
//! sRGB, each variant compared with an independent LittleCMS conversion of the source
//! (`scripts/colour_check.py`: Pillow's ImageCms and a CIEDE2000 of our own, checked
//! against Sharma's test pairs); animated GIF and WebP sources becoming animated WebP
//! variants; and a GIF of 10,000 frames failing cleanly with `decode_limit`.
//!
//! The fixtures are made by `scripts/format-fixtures.sh` (cached) into
//! `$IMAGELAKE_TEST_FORMAT_DIR`, by default `~/.cache/imagelake/format-fixtures`.

mod common;

use common::lake::python;
use common::{Backend, Client, Server, Setup};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// ΔE2000 against the reference conversion: the issue's targets.
const MAX_MEAN_DE: f64 = 2.0;
const MAX_P99_DE: f64 = 5.0;

const PRESETS: &str = r#"
[processor]
variants = [
  { name = "check", width = 400, height = 400, format = "png" },
  { name = "modern", width = 256, height = 256, formats = ["avif", "webp", "jpeg"], quality = 60, speed = 8 },
  { name = "anim", width = 150, height = 150, format = "webp", quality = 80 },
]
"#;

fn fixtures() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::var_os("IMAGELAKE_TEST_FORMAT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/imagelake/format-fixtures"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/format-fixtures.sh");
        let status = Command::new(&script).arg(&dir).stdout(Stdio::null()).status().expect("format-fixtures.sh");
        assert!(status.success(), "{} {}: {status}", script.display(), dir.display());
        dir
    })
    .clone()
}

async fn fixture(name: &str) -> (PathBuf, Vec<u8>) {
    let dir = tokio::task::spawn_blocking(fixtures).await.unwrap();
    let path = dir.join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, bytes)
}

async fn server(backend: Backend) -> (Server, Client) {
    let s = Setup::new(backend).toml(PRESETS).start().await;
    let c = s.client();
    (s, c)
}

/// Uploads `bytes` and waits for the final record.
async fn process(c: &Client, key: &str, bytes: Vec<u8>) -> serde_json::Value {
    let res = c.upload(key, bytes, "application/octet-stream").await;
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    let id = res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    c.wait_done(key, &id, Duration::from_secs(120)).await
}

/// Downloads one format of a variant (the explicit URL) into a temporary file.
async fn download(c: &Client, key: &str, rec: &serde_json::Value, name: &str, ext: &str) -> (PathBuf, Vec<u8>) {
    let id = rec["id"].as_str().unwrap();
    let res = c.get(key, &format!("/v1/images/{id}/variants/{name}.{ext}")).send().await.unwrap();
    assert_eq!(res.status(), 200, "{name}.{ext} of {rec}");
    let body = res.bytes().await.unwrap().to_vec();
    let path = imagelake_core::testing::temp_dir("formats").join(format!("{name}.{ext}"));
    std::fs::write(&path, &body).unwrap();
    (path, body)
}

fn variant<'a>(rec: &'a serde_json::Value, name: &str, format: &str) -> &'a serde_json::Value {
    rec["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name && v["format"] == format)
        .unwrap_or_else(|| panic!("no {name}/{format} in {rec}"))
}

/// `scripts/colour_check.py`: mean and p99 ΔE2000 of `variant` against the source
/// converted to sRGB by LittleCMS (Pillow's ImageCms) and resized to the variant's size.
fn colour_check(source: &Path, variant: &Path, extra: &[&str]) -> (f64, f64) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/colour_check.py");
    let out = Command::new(python()).arg(&script).arg(source).arg(variant).arg("--json").args(extra).output().expect("python");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "colour_check: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(text.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {text}"));
    (v["mean"].as_f64().unwrap(), v["p99"].as_f64().unwrap())
}

mod embedded {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn heic_avif_and_bmp_sources_are_processed() {
        super::new_sources(super::Backend::Embedded).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tagged_and_cmyk_sources_come_out_srgb() {
        super::colour().await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn animations_stay_animated_and_frame_bombs_fail() {
        super::animation().await
    }
}

mod garage_and_sqs {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn heic_avif_and_bmp_sources_are_processed() {
        super::new_sources(super::Backend::Servers).await
    }
}

async fn new_sources(backend: Backend) {
    let (s, c) = server(backend).await;
    let key = &s.keys.acme;
    // The iPhone-style HEIC: stored landscape, displayed portrait through `irot`.
    let (heic_path, heic) = fixture("iphone.heic").await;
    let rec = process(&c, key, heic).await;
    assert_eq!((rec["status"].as_str(), rec["format"].as_str()), (Some("processed"), Some("heic")), "{rec}");
    assert_eq!(rec["content_type"], "image/heic");
    let (w, h) = (rec["width"].as_u64().unwrap(), rec["height"].as_u64().unwrap());
    assert!(h > w, "upright (portrait) dimensions, got {w}x{h}");
    let check = variant(&rec, "check", "png");
    assert!(check["height"].as_u64() > check["width"].as_u64(), "{check}");
    // Compared with libheif's own upright decode (heif-convert), converted to sRGB.
    let reference = heic_path.with_file_name("iphone-upright.png");
    let (png_path, _) = download(&c, key, &rec, "check", "png").await;
    let (mean, p99) = colour_check(&heic_path, &png_path, &["--reference", reference.to_str().unwrap()]);
    assert!(mean < MAX_MEAN_DE && p99 < MAX_P99_DE, "HEIC: mean ΔE {mean:.2}, p99 {p99:.2}");
    // Three formats of `modern`, the same size, AVIF first.
    let formats: Vec<&str> = rec["variants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["name"] == "modern")
        .map(|v| v["format"].as_str().unwrap())
        .collect();
    assert_eq!(formats, ["avif", "webp", "jpeg"]);
    let (_, avif) = download(&c, key, &rec, "modern", "avif").await;
    assert_eq!(&avif[4..12], b"ftypavif", "an AVIF file");

    for (name, format) in [("photo.avif", "avif"), ("photo.bmp", "bmp")] {
        let (path, bytes) = fixture(name).await;
        let rec = process(&c, key, bytes).await;
        assert_eq!((rec["status"].as_str(), rec["format"].as_str()), (Some("processed"), Some(format)), "{rec}");
        let (png_path, _) = download(&c, key, &rec, "check", "png").await;
        let (mean, p99) = colour_check(&path, &png_path, &[]);
        assert!(mean < MAX_MEAN_DE && p99 < MAX_P99_DE, "{name}: mean ΔE {mean:.2}, p99 {p99:.2}");
    }
}

async fn colour() {
    let (s, c) = server(Backend::Embedded).await;
    let key = &s.keys.acme;
    // A CMYK source without a profile goes through the generic one the processor bundles.
    let generic = concat!(env!("CARGO_MANIFEST_DIR"), "/processor/assets/generic-cmyk.icc");
    for (name, extra) in [
        ("p3.jpg", &[][..]),
        ("adobergb.jpg", &[]),
        ("cmyk.jpg", &[]),
        ("cmyk-noprofile.jpg", &["--cmyk-profile", generic]),
        ("p3-16bit.png", &[]),
        ("adobergb.webp", &[]),
    ] {
        let (path, bytes) = fixture(name).await;
        let rec = process(&c, key, bytes).await;
        assert_eq!(rec["status"], "processed", "{name}: {rec}");
        let (png_path, _) = download(&c, key, &rec, "check", "png").await;
        let (mean, p99) = colour_check(&path, &png_path, extra);
        println!("{name}: mean ΔE2000 {mean:.2}, p99 {p99:.2}");
        assert!(mean < MAX_MEAN_DE && p99 < MAX_P99_DE, "{name}: mean ΔE {mean:.2}, p99 {p99:.2}");
        // The check can fail: the same pixels read as if they were sRGB are far off.
        if name.starts_with("p3") || name.starts_with("adobergb") {
            let (naive, _) = colour_check(&path, &png_path, &["--naive"]);
            assert!(naive > MAX_MEAN_DE, "{name}: ignoring the profile should be visible, mean ΔE {naive:.2}");
        }
        if name == "cmyk-noprofile.jpg" {
            let (naive, _) = colour_check(&path, &png_path, &["--naive-cmyk"]);
            println!("{name} against the naive formula: mean ΔE2000 {naive:.2}");
            assert!(naive > MAX_MEAN_DE, "{name}: the generic profile should be visible, mean ΔE {naive:.2}");
        }
    }
}

async fn animation() {
    let (s, c) = server(Backend::Embedded).await;
    let key = &s.keys.acme;
    for name in ["anim20.gif", "anim20.webp"] {
        let (_, bytes) = fixture(name).await;
        let rec = process(&c, key, bytes).await;
        assert_eq!(rec["status"], "processed", "{name}: {rec}");
        let (_, webp) = download(&c, key, &rec, "anim", "webp").await;
        let frames = webp_frames(&webp);
        assert_eq!(frames.len(), 20, "{name}: every frame kept");
        assert!(frames.iter().all(|&(w, h)| (w, h) == (150, 100)), "{name}: {frames:?}");
        // The PNG preset is a still: the first frame.
        let (_, png) = download(&c, key, &rec, "check", "png").await;
        let still = image::load_from_memory_with_format(&png, image::ImageFormat::Png).unwrap();
        assert_eq!((still.width(), still.height()), (300, 200));
    }
    // 10,000 frames of 1000x1000: 10^10 pixels, over the 2^30 default. It fails at once,
    // in one attempt, and the server is unharmed.
    let (_, bomb) = fixture("bomb.gif").await;
    let rec = process(&c, key, bomb).await;
    assert_eq!((rec["status"].as_str(), rec["error"]["code"].as_str()), (Some("failed"), Some("decode_limit")), "{rec}");
    assert_eq!(rec["attempts"], 1, "{rec}");
    let (_, bytes) = fixture("anim20.gif").await;
    assert_eq!(process(&c, key, bytes).await["status"], "processed");
}

/// Frame sizes of an animated WebP, with `image`'s decoder.
fn webp_frames(bytes: &[u8]) -> Vec<(u32, u32)> {
    use image::AnimationDecoder;
    let d = image::codecs::webp::WebPDecoder::new(std::io::Cursor::new(bytes)).unwrap();
    d.into_frames().map(|f| f.unwrap()).map(|f| f.buffer().dimensions()).collect()
}
