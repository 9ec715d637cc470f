//! `imagelake db import`: brings the records an earlier version kept as JSON objects in
//! the object store (`records/{customer}/{id}.json`) into the database.
//!
//! Idempotent: a record whose id is already in the database is left as it is (the
//! database is the newer truth), so the command can run again after an interruption, or
//! while the new version already serves. The old objects are not deleted; once the
//! import is checked, `records/`, `listing/`, `ids/`, `idempotency/` and `lifecycle/`
//! (leases, last runs, the expire watermark, the published usage) can be removed from the
//! bucket.

use super::SharedMeta;
use crate::record::ImageRecord;
use crate::store::SharedStore;
use crate::CoreError;

/// What an import found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Record objects read.
    pub read: u64,
    /// Records written to the database.
    pub imported: u64,
    /// Records whose id was already there.
    pub already: u64,
    /// Objects that are not a readable record (named in `unreadable_keys`, at most 20).
    pub unreadable: u64,
    pub unreadable_keys: Vec<String>,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} record objects read: {} imported, {} already in the database, {} unreadable",
            self.read, self.imported, self.already, self.unreadable
        )?;
        for k in &self.unreadable_keys {
            write!(f, "\n  unreadable: {k}")?;
        }
        Ok(())
    }
}

/// Imports every `records/**.json` object of `store` into `meta`.
pub async fn import_records(store: &SharedStore, meta: &SharedMeta) -> Result<ImportReport, CoreError> {
    let mut report = ImportReport::default();
    let mut after: Option<String> = None;
    loop {
        let page = store.list("records/", after.as_deref(), 1000).await?;
        for obj in &page.objects {
            if !obj.key.ends_with(".json") {
                continue;
            }
            report.read += 1;
            let body = store.get(&obj.key, None).await?.bytes().await?;
            match serde_json::from_slice::<ImageRecord>(&body) {
                Ok(rec) if crate::ids::is_valid_id(&rec.id) => {
                    if meta.import_image(&rec).await? {
                        report.imported += 1;
                    } else {
                        report.already += 1;
                    }
                }
                _ => {
                    report.unreadable += 1;
                    if report.unreadable_keys.len() < 20 {
                        report.unreadable_keys.push(obj.key.clone());
                    }
                }
            }
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    Ok(report)
}
