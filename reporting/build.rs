//! Picks the lake views the service embeds: `sql/views.sql` (the one definition, shared
//! with the duckdb command line) once it exists, else the crate's development stand-in.

use std::path::Path;

fn main() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = manifest.join("../sql/views.sql");
    let fallback = manifest.join("dev_views.sql");
    println!("cargo:rerun-if-changed={}", shared.display());
    println!("cargo:rerun-if-changed={}", manifest.join("../sql").display());
    println!("cargo:rerun-if-changed={}", fallback.display());
    let chosen = if shared.exists() { shared } else { fallback };
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("views.sql");
    std::fs::copy(&chosen, &out).unwrap_or_else(|e| panic!("copy {}: {e}", chosen.display()));
}
