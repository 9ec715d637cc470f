//! Every photograph of the corpus (`scripts/corpus.sh`: real JPEG, PNG and WebP files from
//! Debian's wallpaper packages, up to 18 MP) through the real binary, on both backends:
//! upload, wait for `processed`, download every variant, decode it, and check its format
//! and size against the record and the preset it was made from.
//!
//! `scripts/test` builds the corpus (cached) and exports `IMAGELAKE_TEST_CORPUS`.

#[macro_use]
mod common;

use common::{Backend, Server};
use futures::StreamExt;
use imagelake_core::config::{Fit, ProcessorConfig, VariantPreset};
use std::path::PathBuf;
use std::time::Duration;

fn corpus() -> Vec<PathBuf> {
    let dir = std::env::var("IMAGELAKE_TEST_CORPUS")
        .expect("IMAGELAKE_TEST_CORPUS: run through scripts/test, or point it at the output of scripts/corpus.sh");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "the corpus in {dir} has only {} files", files.len());
    files
}

/// A variant's size must be what its preset makes of an upright `src` image.
fn check_size(p: &VariantPreset, src: (u32, u32), got: (u32, u32), what: &str) {
    let (sw, sh) = src;
    match p.fit {
        Fit::Cover => assert_eq!(got, (p.width.min(sw), p.height.min(sh)), "{what}: cover"),
        Fit::Contain => {
            assert!(got.0 <= p.width && got.1 <= p.height, "{what}: {got:?} outside the box");
            assert!(got.0 <= sw && got.1 <= sh, "{what}: upscaled");
            assert!(got.0 == p.width || got.1 == p.height || got == src, "{what}: {got:?} does not fill the box");
            let (ra, rb) = (f64::from(got.0) / f64::from(got.1), f64::from(sw) / f64::from(sh));
            assert!((ra / rb - 1.0).abs() < 0.02 + 1.0 / f64::from(got.0.min(got.1)), "{what}: aspect {got:?} vs {src:?}");
        }
    }
}

async fn every_corpus_image_is_processed(backend: Backend) {
    let files = corpus();
    let server = Server::with(backend).await;
    let c = server.client();
    let key = server.keys.acme.clone();
    let presets = ProcessorConfig::default().variants;

    let uploads = futures::stream::iter(files.iter().cloned())
        .map(|f| {
            let (c, key) = (c.clone(), key.clone());
            async move {
                let body = tokio::fs::read(&f).await.unwrap();
                let res = c.upload(&key, body, "application/octet-stream").await;
                assert_eq!(res.status(), 202, "{}", f.display());
                let rec: serde_json::Value = res.json().await.unwrap();
                (f, rec["id"].as_str().unwrap().to_string())
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await;

    let mut checked = 0;
    for (file, id) in &uploads {
        let name = file.file_name().unwrap().to_string_lossy();
        let done = c.wait_done(&key, id, Duration::from_secs(600)).await;
        assert_eq!(done["status"], "processed", "{name}: {done}");
        let (w, h) = (done["width"].as_u64().unwrap() as u32, done["height"].as_u64().unwrap() as u32);
        let upright = if matches!(done["exif"]["orientation"].as_u64(), Some(5..=8)) { (h, w) } else { (w, h) };
        let variants = done["variants"].as_array().unwrap();
        assert_eq!(variants.len(), presets.len(), "{name}");
        for (v, p) in variants.iter().zip(&presets) {
            let what = format!("{name} {}", p.name);
            assert_eq!(v["name"], p.name.as_str());
            assert_eq!(v["format"], p.format().as_str(), "{what}");
            let res = c.get(&key, &format!("/v1/images/{id}/variants/{}", p.name)).send().await.unwrap();
            assert_eq!(res.status(), 200, "{what}");
            assert_eq!(res.headers()["content-type"], p.format().content_type(), "{what}");
            let body = res.bytes().await.unwrap();
            assert_eq!(body.len() as u64, v["bytes"].as_u64().unwrap(), "{what}");
            let format = image::guess_format(&body).unwrap();
            assert_eq!(format.extensions_str()[0], p.format().extension(), "{what}");
            let img = image::load_from_memory_with_format(&body, format).unwrap_or_else(|e| panic!("{what}: {e}"));
            let got = (img.width(), img.height());
            assert_eq!(
                (u64::from(got.0), u64::from(got.1)),
                (v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap()),
                "{what}"
            );
            check_size(p, upright, got, &what);
            checked += 1;
        }
    }
    eprintln!("{} images, {checked} variants decoded and checked", uploads.len());
}

on_every_backend!(every_corpus_image_is_processed);
