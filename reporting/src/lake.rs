//! Where DuckDB reads the lake from, and keeping that place current.
//!
//! With the local backend DuckDB reads the store's own files (`{storage_dir}/objects/lake`).
//! With S3, DuckDB cannot read the bucket (the `httpfs` extension can be neither built
//! offline nor downloaded here), so the lake is mirrored under `{data_dir}/lake-mirror`:
//! each sync lists `lake/`, downloads the files not yet mirrored (lake files are immutable:
//! every flush and every compaction writes a new name) and deletes the mirrored files whose
//! objects are gone (inputs removed by compaction).

use crate::error::ReportingError;
use futures::StreamExt;
use imagelake_core::app::Context;
use imagelake_core::lake::agg::Listing;
use imagelake_core::lake::layout;
use imagelake_core::store::SharedStore;
use std::path::{Path, PathBuf};

pub enum Source {
    /// DuckDB reads the store's directory directly.
    Local { root: PathBuf },
    /// DuckDB reads a mirror of the bucket's `lake/`.
    Mirror { root: PathBuf, store: SharedStore, synced_once: bool },
}

impl Source {
    pub fn from_context(ctx: &Context) -> Self {
        if ctx.store.backend() == "s3" {
            Source::Mirror { root: ctx.config.data_dir.join("lake-mirror"), store: ctx.store.clone(), synced_once: false }
        } else {
            Source::Local { root: ctx.config.storage_dir().join("objects").join("lake") }
        }
    }

    /// The directory that holds `{table}/dt=YYYY-MM-DD/*.parquet` (and `agg_*/...`).
    pub fn root(&self) -> &Path {
        match self {
            Source::Local { root } | Source::Mirror { root, .. } => root,
        }
    }

    /// Brings the directory up to date with the store (a no-op for the local backend).
    /// A failed S3 sync keeps the mirror as it is (answers are then a little stale), unless
    /// the mirror never synced.
    pub async fn sync(&mut self) -> Result<(), ReportingError> {
        let Source::Mirror { root, store, synced_once } = self else { return Ok(()) };
        match sync_mirror(store, root).await {
            Ok((fetched, removed)) => {
                if fetched + removed > 0 {
                    tracing::debug!(fetched, removed, "lake mirror synced");
                }
                *synced_once = true;
                Ok(())
            }
            Err(e) if *synced_once => {
                tracing::warn!(error = %e, "lake mirror sync failed; answering from the last sync");
                Ok(())
            }
            Err(e) => Err(ReportingError::LakeUnavailable(e)),
        }
    }
}

/// Every Parquet file under `root` (fact tables and aggregates): relative key to size. A
/// file in `known` keeps its size there without a `stat` (lake files are immutable: every
/// flush and compaction writes a new name, and the mirror renames a whole download into
/// place), so listing a day of 125 000 small files costs the directory reads alone.
pub fn scan(root: &Path, known: &Listing) -> Listing {
    let mut out = Listing::new();
    for dir in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let Ok(dname) = dir.file_name().into_string() else { continue };
        for part in std::fs::read_dir(dir.path()).into_iter().flatten().flatten() {
            let Ok(pname) = part.file_name().into_string() else { continue };
            for f in std::fs::read_dir(part.path()).into_iter().flatten().flatten() {
                let Ok(fname) = f.file_name().into_string() else { continue };
                let rel = format!("{dname}/{pname}/{fname}");
                if layout::parse(&rel).is_some() {
                    // A size of 0 (a failed `stat`, or an empty file) is asked again.
                    let size =
                        known.get(&rel).copied().filter(|s| *s > 0).unwrap_or_else(|| f.metadata().map(|m| m.len()).unwrap_or(0));
                    out.insert(rel, size);
                }
            }
        }
    }
    out
}

/// Lists `lake/` and makes `root` hold exactly its Parquet files. Returns (fetched, removed).
async fn sync_mirror(store: &SharedStore, root: &Path) -> Result<(usize, usize), String> {
    let remote: Listing = imagelake_core::lake::aggregate::listing(store).await.map_err(|e| e.to_string())?;
    let root_owned = root.to_path_buf();
    let local: Listing =
        tokio::task::spawn_blocking(move || scan(&root_owned, &Listing::new())).await.map_err(|e| e.to_string())?;

    // Files are written before their inputs are deleted, so fetch first, then remove.
    let missing: Vec<(String, u64)> =
        remote.iter().filter(|(k, size)| local.get(k.as_str()) != Some(*size)).map(|(k, s)| (k.clone(), *s)).collect();
    let tmp = root.join(".tmp");
    tokio::fs::create_dir_all(&tmp).await.map_err(|e| e.to_string())?;
    let fetched = missing.len();
    let results: Vec<Result<(), String>> =
        futures::stream::iter(missing).map(|(rel, _)| fetch(store, root, &tmp, rel)).buffer_unordered(8).collect().await;
    for r in results {
        match r {
            Ok(()) => {}
            // Deleted by compaction between the listing and the download: its merged file is listed too.
            Err(e) if e.starts_with("gone:") => {}
            Err(e) => return Err(e),
        }
    }
    let mut removed = 0;
    for rel in local.keys().filter(|k| !remote.contains_key(*k)) {
        if tokio::fs::remove_file(root.join(rel)).await.is_ok() {
            removed += 1;
        }
    }
    Ok((fetched, removed))
}

async fn fetch(store: &SharedStore, root: &Path, tmp: &Path, rel: String) -> Result<(), String> {
    let key = format!("{}{rel}", layout::PREFIX);
    let body = match store.get(&key, None).await {
        Ok(got) => got.bytes().await.map_err(|e| e.to_string())?,
        Err(imagelake_core::store::StoreError::NotFound(_)) => return Err(format!("gone:{key}")),
        Err(e) => return Err(e.to_string()),
    };
    let dest = root.join(&rel);
    if let Some(dir) = dest.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(|e| e.to_string())?;
    }
    // Written aside and renamed, so DuckDB never sees half a file.
    let part = tmp.join(imagelake_core::ids::new_compact_id());
    tokio::fs::write(&part, &body).await.map_err(|e| e.to_string())?;
    tokio::fs::rename(&part, &dest).await.map_err(|e| e.to_string())?;
    Ok(())
}
