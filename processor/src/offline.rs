//! `imagelake process`: the processor's pipeline on local files, with no server, for
//! backfills and benchmarks. Each file is rendered with the configured presets (or a
//! subset) and every variant written to `DIR/{file stem}.{variant}.{ext}`, through a
//! temporary file and a rename, so a crash never leaves a half-written variant.
//!
//! Files are rendered by `jobs` threads (default: the CPUs this process may run on, so
//! `taskset -c 0` gives one). A file that fails is reported with its stable code and the
//! others go on; the summary says how many failed.

use crate::pipeline::{self, Limits, Preset};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What one run did.
#[derive(Debug, Default)]
pub struct Summary {
    pub files: usize,
    pub failed: usize,
    pub variants: usize,
    pub bytes_out: u64,
    pub elapsed: Duration,
}

/// Why the run could not start.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("unknown variant {0:?}; configured: {1}")]
    UnknownVariant(String, String),
    #[error("output directory {0}: {1}")]
    OutDir(PathBuf, std::io::Error),
}

/// The presets named in `only` (all of `configured` when `None`), in configured order.
pub fn select(configured: &[Preset], only: Option<&[String]>) -> Result<Vec<Preset>, OfflineError> {
    let Some(names) = only else { return Ok(configured.to_vec()) };
    for n in names {
        if !configured.iter().any(|p| &p.name == n) {
            let all: Vec<&str> = configured.iter().map(|p| p.name.as_str()).collect();
            return Err(OfflineError::UnknownVariant(n.clone(), all.join(", ")));
        }
    }
    Ok(configured.iter().filter(|p| names.contains(&p.name)).cloned().collect())
}

/// Renders every file into `out`. Progress and failures go to the log (stderr).
pub fn run(files: &[PathBuf], presets: &[Preset], limits: &Limits, out: &Path, jobs: usize) -> Result<Summary, OfflineError> {
    std::fs::create_dir_all(out).map_err(|e| OfflineError::OutDir(out.into(), e))?;
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let summary = Mutex::new(Summary { files: files.len(), ..Summary::default() });
    let jobs = jobs.clamp(1, files.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(file) = files.get(i) else { break };
                let result = render_one(file, presets, limits, out);
                let mut sum = summary.lock().unwrap_or_else(|p| p.into_inner());
                match result {
                    Ok((n, bytes)) => {
                        sum.variants += n;
                        sum.bytes_out += bytes;
                    }
                    Err(message) => {
                        sum.failed += 1;
                        eprintln!("{}: {message}", file.display());
                    }
                }
            });
        }
    });
    let mut sum = summary.into_inner().unwrap_or_else(|p| p.into_inner());
    sum.elapsed = started.elapsed();
    Ok(sum)
}

fn render_one(file: &Path, presets: &[Preset], limits: &Limits, out: &Path) -> Result<(usize, u64), String> {
    let (_, variants) = pipeline::render_file(file, presets, limits).map_err(|e| format!("{}: {e}", e.code()))?;
    let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
    let mut bytes = 0u64;
    for v in &variants {
        let name = format!("{stem}.{}.{}", v.name, v.format.extension());
        let tmp = out.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, &v.bytes)
            .and_then(|()| std::fs::rename(&tmp, out.join(&name)))
            .map_err(|e| format!("io: writing {name}: {e}"))?;
        bytes += v.bytes.len() as u64;
    }
    Ok((variants.len(), bytes))
}

/// The default number of threads: the CPUs this process may run on.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_each_variant_and_reports_failures() {
        let dir = imagelake_core::testing::temp_dir("offline");
        let img = image::RgbImage::from_fn(900, 600, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
        let good = dir.join("photo.jpg");
        img.save_with_format(&good, image::ImageFormat::Jpeg).unwrap();
        let bad = dir.join("notes.jpg");
        std::fs::write(&bad, b"not an image at all").unwrap();
        let presets = select(&pipeline::default_presets(), Some(&["medium".into(), "thumb".into()])).unwrap();
        assert_eq!(presets.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["thumb", "medium"]);
        let out = dir.join("out");
        let sum = run(&[good, bad], &presets, &Limits::default(), &out, 2).unwrap();
        assert_eq!((sum.files, sum.failed, sum.variants), (2, 1, 2));
        let medium = image::open(out.join("photo.medium.jpg")).unwrap();
        assert_eq!((medium.width(), medium.height()), (400, 267));
        let thumb = image::open(out.join("photo.thumb.webp")).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (120, 120));
        assert!(select(&presets, Some(&["nope".into()])).is_err());
    }
}
