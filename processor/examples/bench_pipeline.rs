//! Benchmark driver for the image pipeline (see scripts/bench-pipeline.sh).
//!
//! ```text
//! bench_pipeline [--box WxH] [--format jpeg|png|webp] [--quality Q] [--presets default]
//!                [--out DIR] [--repeat N] FILE...
//! ```
//!
//! Renders every FILE sequentially on the calling thread (one preset fitted into the
//! box, or the default presets), optionally writes the variants to DIR, and prints one
//! summary line: `images=N failed=F seconds=S images_per_s=R bytes_out=B`.
//! Failures are reported on stderr with their error code and do not stop the run.

use std::path::PathBuf;
use std::time::Instant;

use imagelake_processor::pipeline::{self, Limits, OutputFormat, Preset};

fn usage() -> ! {
    eprintln!(
        "usage: bench_pipeline [--box WxH] [--format jpeg|png|webp] [--quality Q] \
         [--presets default] [--out DIR] [--repeat N] FILE..."
    );
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut width, mut height, mut quality) = (400u32, 300u32, 80u8);
    let mut format = OutputFormat::Jpeg;
    let mut default_presets = false;
    let mut out: Option<PathBuf> = None;
    let mut repeat = 1usize;
    let mut files = Vec::new();
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--box" => {
                let v = value();
                let (w, h) = v.split_once('x').unwrap_or_else(|| usage());
                width = w.parse().unwrap_or_else(|_| usage());
                height = h.parse().unwrap_or_else(|_| usage());
            }
            "--format" => {
                format = serde_json::from_value(serde_json::Value::String(value()))
                    .unwrap_or_else(|_| usage())
            }
            "--quality" => quality = value().parse().unwrap_or_else(|_| usage()),
            "--presets" => default_presets = value() == "default",
            "--out" => out = Some(PathBuf::from(value())),
            "--repeat" => repeat = value().parse().unwrap_or_else(|_| usage()),
            "-h" | "--help" => usage(),
            _ => files.push(PathBuf::from(arg)),
        }
    }
    if files.is_empty() {
        usage();
    }
    let presets = if default_presets {
        pipeline::default_presets()
    } else {
        vec![Preset {
            name: "out".into(),
            width,
            height,
            format,
            quality,
        }]
    };
    if let Some(dir) = &out {
        std::fs::create_dir_all(dir).expect("create output directory");
    }
    let limits = Limits::default();

    let (mut done, mut failed, mut bytes_out) = (0usize, 0usize, 0usize);
    let start = Instant::now();
    for _ in 0..repeat {
        for file in &files {
            match pipeline::render_file(file, &presets, &limits) {
                Ok((_, variants)) => {
                    done += 1;
                    for v in variants {
                        bytes_out += v.bytes.len();
                        if let Some(dir) = &out {
                            let stem = file.file_stem().unwrap_or_default().to_string_lossy();
                            let name = if presets.len() == 1 {
                                format!("{stem}.{}", v.format.extension())
                            } else {
                                format!("{stem}-{}.{}", v.name, v.format.extension())
                            };
                            std::fs::write(dir.join(name), &v.bytes).expect("write variant");
                        }
                    }
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("{}: {} ({})", file.display(), e, e.code());
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "images={done} failed={failed} seconds={secs:.3} images_per_s={:.2} bytes_out={bytes_out}",
        done as f64 / secs.max(1e-9)
    );
}
