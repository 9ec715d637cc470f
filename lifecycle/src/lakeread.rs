//! Reading the lake's Parquet files back (with the `parquet` crate, no DuckDB): the
//! expiry sweep finds what is due from `lake/variants/dt=DAY/`, never by listing objects.

use crate::LifecycleError;
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, Utc};
use imagelake_core::lake::{DeletionRow, Table, VariantRow};
use imagelake_core::store::{list_all, ObjectStore, StoreError};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The prefix of one table-day partition.
pub fn day_prefix(table: Table, day: NaiveDate) -> String {
    format!("lake/{}/dt={}/", table.name(), day.format("%Y-%m-%d"))
}

/// The day of a lake key (`lake/{table}/dt=YYYY-MM-DD/...`).
pub fn day_of_key(key: &str) -> Option<NaiveDate> {
    let d = key.split('/').find_map(|seg| seg.strip_prefix("dt="))?;
    NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()
}

/// All record batches of one partition. A file deleted by compaction between the listing
/// and the read makes the partition be listed again (its rows are then in the merged file).
pub async fn read_day(store: &dyn ObjectStore, table: Table, day: NaiveDate) -> Result<(Vec<RecordBatch>, usize), LifecycleError> {
    let prefix = day_prefix(table, day);
    let mut attempt = 0;
    'again: loop {
        attempt += 1;
        let files: Vec<String> =
            list_all(store, &prefix).await?.into_iter().map(|m| m.key).filter(|k| k.ends_with(".parquet")).collect();
        let mut batches = Vec::new();
        for key in &files {
            let bytes = match store.get(key, None).await {
                Ok(g) => g.bytes().await?,
                Err(StoreError::NotFound(_)) if attempt < 5 => continue 'again,
                Err(e) => return Err(e.into()),
            };
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .and_then(|b| b.build())
                .map_err(|e| LifecycleError::LakeRead(key.clone(), e.to_string()))?;
            for batch in reader {
                batches.push(batch.map_err(|e| LifecycleError::LakeRead(key.clone(), e.to_string()))?);
            }
        }
        return Ok((batches, files.len()));
    }
}

struct Cols<'a> {
    batch: &'a RecordBatch,
    file: &'static str,
}

impl<'a> Cols<'a> {
    fn col(&self, name: &str, t: &DataType) -> Result<ArrayRef, LifecycleError> {
        let c = self
            .batch
            .column_by_name(name)
            .ok_or_else(|| LifecycleError::LakeRead(self.file.into(), format!("no column {name}")))?;
        arrow::compute::cast(c, t).map_err(|e| LifecycleError::LakeRead(self.file.into(), format!("{name}: {e}")))
    }
    fn strings(&self, name: &str) -> Result<Vec<Option<String>>, LifecycleError> {
        let c = self.col(name, &DataType::Utf8)?;
        let a = c.as_string::<i32>();
        Ok((0..a.len()).map(|i| (!a.is_null(i)).then(|| a.value(i).to_string())).collect())
    }
    fn ints(&self, name: &str) -> Result<Vec<i64>, LifecycleError> {
        let c = self.col(name, &DataType::Int64)?;
        let a = c.as_primitive::<Int64Type>();
        Ok((0..a.len()).map(|i| if a.is_null(i) { 0 } else { a.value(i) }).collect())
    }
    fn times(&self, name: &str) -> Result<Vec<DateTime<Utc>>, LifecycleError> {
        let c = self.col(name, &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())))?;
        let a = c.as_primitive::<TimestampMicrosecondType>();
        Ok((0..a.len()).map(|i| DateTime::from_timestamp_micros(a.value(i)).unwrap_or_default()).collect())
    }
}

fn s(v: Option<String>) -> String {
    v.unwrap_or_default()
}

/// The `variants` rows of one day.
pub async fn variant_rows(store: &dyn ObjectStore, day: NaiveDate) -> Result<(Vec<VariantRow>, usize), LifecycleError> {
    let (batches, files) = read_day(store, Table::Variants, day).await?;
    let mut out = Vec::new();
    for b in &batches {
        let c = Cols { batch: b, file: "variants" };
        let (ev, img, cust, var, fmt) =
            (c.strings("event_id")?, c.strings("image_id")?, c.strings("customer_id")?, c.strings("variant")?, c.strings("format")?);
        let (w, h, bytes) = (c.ints("width")?, c.ints("height")?, c.ints("bytes")?);
        let (created, expires) = (c.times("created_at")?, c.times("expires_at")?);
        for i in 0..b.num_rows() {
            out.push(VariantRow {
                event_id: s(ev[i].clone()),
                image_id: s(img[i].clone()),
                customer_id: s(cust[i].clone()),
                variant: s(var[i].clone()),
                format: s(fmt[i].clone()),
                width: w[i].max(0) as u32,
                height: h[i].max(0) as u32,
                bytes: bytes[i].max(0) as u64,
                created_at: created[i],
                expires_at: expires[i],
            });
        }
    }
    Ok((out, files))
}

/// The `deletions` rows of one day.
pub async fn deletion_rows(store: &dyn ObjectStore, day: NaiveDate) -> Result<Vec<DeletionRow>, LifecycleError> {
    let (batches, _) = read_day(store, Table::Deletions, day).await?;
    let mut out = Vec::new();
    for b in &batches {
        let c = Cols { batch: b, file: "deletions" };
        let (ev, img, cust, kind, var, reason) = (
            c.strings("event_id")?,
            c.strings("image_id")?,
            c.strings("customer_id")?,
            c.strings("kind")?,
            c.strings("variant")?,
            c.strings("reason")?,
        );
        let (bytes, at) = (c.ints("bytes")?, c.times("deleted_at")?);
        for i in 0..b.num_rows() {
            out.push(DeletionRow {
                event_id: s(ev[i].clone()),
                image_id: s(img[i].clone()),
                customer_id: s(cust[i].clone()),
                kind: s(kind[i].clone()),
                variant: var[i].clone(),
                bytes: bytes[i].max(0) as u64,
                reason: s(reason[i].clone()),
                deleted_at: at[i],
            });
        }
    }
    Ok(out)
}
