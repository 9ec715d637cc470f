//! Compaction: merges one table-day partition's small files into as few files as the
//! target size allows, dropping duplicate events (same `event_id`).
//!
//! Crash safety. The merged files are written (atomic puts) *before* any input is
//! deleted, and only the inputs listed at the start are deleted, so a file a writer adds
//! meanwhile is kept. An interrupted run leaves the inputs next to (part of) the merged
//! output: every event is then present at least once, perhaps twice, and the views (which
//! keep one row per `event_id`) read it exactly once. A rerun lists the partition again,
//! merges everything it finds (old inputs and the previous run's outputs alike) and drops
//! the duplicates, so it converges to one copy of each event; it never doubles one.
//!
//! Output files are named `compact-{generation}-{nnnn}-{writer_id}.parquet`, where the
//! generation is derived from the sorted list of input keys. A partition whose files all
//! belong to one generation is already compact, and compacting it again is a no-op.
//!
//! The current day is compacted too, every hour ([`Scope::WriterFiles`]): only the
//! writers' small files merge (into a new generation), the merged files of earlier hours
//! stay as they are, so each run costs the hour's new facts; once the day is closed, one
//! last run merges everything. While a run goes, a fact may be in an input and in the
//! output at once: the views read it once (they deduplicate per `dt` and `event_id`).

use super::schema::schema;
use super::writer::writer_properties;
use super::{layout, LakeError, Table};
use crate::store::{list_all, ObjectMeta, SharedStore};
use arrow::array::{new_null_array, Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use chrono::NaiveDate;
use futures::StreamExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use std::collections::{BTreeSet, HashSet};

/// The default size of a merged file.
pub const DEFAULT_TARGET_BYTES: u64 = 256 * 1024 * 1024;

/// What compacting one partition did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    pub table: Option<Table>,
    pub day: Option<NaiveDate>,
    /// Nothing to do: the partition is empty or already compact.
    pub skipped: bool,
    pub inputs: usize,
    pub input_bytes: u64,
    pub outputs: Vec<String>,
    pub output_bytes: u64,
    pub rows_in: u64,
    pub rows_out: u64,
    pub duplicates_dropped: u64,
}

fn enc(table: Table, e: impl std::fmt::Display) -> LakeError {
    LakeError::Encode(table.name(), e.to_string())
}

/// Which files of a partition a run merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every file (a closed day): the result is one generation.
    All,
    /// The writers' files only (the current day), when there are at least two.
    WriterFiles,
}

/// The generation of a compacted file, from its name; `None` for a writer's file.
fn generation(key: &str) -> Option<&str> {
    let name = key.rsplit('/').next()?;
    let rest = name.strip_prefix("compact-")?;
    rest.split('-').next()
}

/// Event ids seen so far. Lake ids are 32 hex digits (128 bits) and are kept as `u128`;
/// anything else is kept as a string.
#[derive(Default)]
struct Seen {
    hex: HashSet<u128>,
    other: HashSet<Box<str>>,
}

impl Seen {
    /// Whether `id` is new (and remembers it).
    fn insert(&mut self, id: &str) -> bool {
        if id.len() == 32 {
            if let Ok(n) = u128::from_str_radix(id, 16) {
                return self.hex.insert(n);
            }
        }
        self.other.insert(id.into())
    }
}

/// Brings a batch read from any version of the table's files to the current schema:
/// columns matched by name, missing (nullable, newer) columns filled with nulls.
fn conform(table: Table, target: &SchemaRef, batch: &RecordBatch) -> Result<RecordBatch, LakeError> {
    let src = batch.schema();
    for f in src.fields() {
        if target.field_with_name(f.name()).is_err() {
            // A newer writer added a column this binary does not know: merging would drop it.
            return Err(enc(table, format!("column `{}` is not in this version's schema; refusing to compact", f.name())));
        }
    }
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for f in target.fields() {
        match src.index_of(f.name()) {
            Ok(i) => {
                let c = batch.column(i);
                if c.data_type() == f.data_type() {
                    cols.push(c.clone());
                } else {
                    cols.push(arrow::compute::cast(c, f.data_type()).map_err(|e| enc(table, e))?);
                }
            }
            Err(_) if f.is_nullable() => cols.push(new_null_array(f.data_type(), batch.num_rows())),
            Err(_) => return Err(enc(table, format!("required column `{}` is missing", f.name()))),
        }
    }
    RecordBatch::try_new(target.clone(), cols).map_err(|e| enc(table, e))
}

/// Accumulates merged rows into files of about `target` bytes.
struct Output<'a> {
    store: &'a SharedStore,
    table: Table,
    schema: SchemaRef,
    prefix: String,
    generation: String,
    writer_id: String,
    target: u64,
    writer: Option<ArrowWriter<Vec<u8>>>,
    written: Vec<(String, u64)>,
}

impl Output<'_> {
    async fn write(&mut self, batch: &RecordBatch) -> Result<(), LakeError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.writer.is_none() {
            let w = ArrowWriter::try_new(Vec::new(), self.schema.clone(), Some(writer_properties()))
                .map_err(|e| enc(self.table, e))?;
            self.writer = Some(w);
        }
        let w = self.writer.as_mut().expect("just set");
        w.write(batch).map_err(|e| enc(self.table, e))?;
        // The in-progress size is an uncompressed estimate; closing row groups of a
        // quarter of the target keeps the written (compressed) size the measure.
        if w.in_progress_size() as u64 >= (self.target / 4).clamp(64 * 1024, 128 << 20) {
            w.flush().map_err(|e| enc(self.table, e))?;
        }
        if (w.bytes_written() + w.in_progress_size()) as u64 >= self.target {
            self.finish_file().await?;
        }
        Ok(())
    }

    async fn finish_file(&mut self) -> Result<(), LakeError> {
        let Some(w) = self.writer.take() else { return Ok(()) };
        let body = w.into_inner().map_err(|e| enc(self.table, e))?;
        let key = format!("{}compact-{}-{:04}-{}.parquet", self.prefix, self.generation, self.written.len(), self.writer_id);
        let size = body.len() as u64;
        self.store.put(&key, Bytes::from(body)).await?;
        self.written.push((key, size));
        Ok(())
    }
}

/// Merges the files of `table`'s partition `day` into files of about `target_bytes`,
/// keeping one row per `event_id`; writes the merged files, then deletes the inputs.
/// Safe to rerun and to interrupt (see the module documentation).
pub async fn compact_day(
    store: &SharedStore,
    table: Table,
    day: NaiveDate,
    target_bytes: u64,
    writer_id: &str,
    scope: Scope,
) -> Result<CompactReport, LakeError> {
    let prefix = layout::partition_prefix(table.name(), day);
    let mut inputs: Vec<ObjectMeta> = list_all(store.as_ref(), &prefix)
        .await?
        .into_iter()
        .filter(|m| layout::parse(&m.key).is_some())
        .filter(|m| scope == Scope::All || generation(&m.key).is_none())
        .collect();
    inputs.sort_by(|a, b| a.key.cmp(&b.key));
    let mut report = CompactReport {
        table: Some(table),
        day: Some(day),
        inputs: inputs.len(),
        input_bytes: inputs.iter().map(|m| m.size).sum(),
        ..Default::default()
    };
    let generations: BTreeSet<Option<&str>> = inputs.iter().map(|m| generation(&m.key)).collect();
    let compact_already = match scope {
        Scope::All => generations.len() == 1 && generations.iter().next().is_some_and(|g| g.is_some()),
        Scope::WriterFiles => inputs.len() < 2,
    };
    if inputs.is_empty() || compact_already {
        report.skipped = true;
        return Ok(report);
    }

    let generation = crate::ids::event_id(&inputs.iter().map(|m| m.key.as_str()).collect::<Vec<_>>())[..16].to_string();
    let writer_id: String = writer_id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(40).collect();
    let target = schema(table);
    let mut out = Output {
        store,
        table,
        schema: target.clone(),
        prefix: prefix.clone(),
        generation,
        writer_id: if writer_id.is_empty() { "compactor".into() } else { writer_id },
        target: target_bytes.max(1),
        writer: None,
        written: Vec::new(),
    };
    let mut seen = Seen::default();
    // Inputs are fetched a few at a time ahead of the merge (small files on S3 are
    // latency-bound), and merged in key order.
    let mut bodies = futures::stream::iter(inputs.iter().map(|input| async move {
        match store.get(&input.key, None).await {
            Ok(g) => g.bytes().await.map(Some),
            // Deleted since the listing (another compaction finished): its rows are in
            // that compaction's output, which this run reads or will leave alone.
            Err(crate::store::StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }))
    .buffered(8);
    for input in &inputs {
        let Some(body) = bodies.next().await.expect("one body per input")? else { continue };
        let reader = ParquetRecordBatchReaderBuilder::try_new(body)
            .and_then(|b| b.with_batch_size(64 * 1024).build())
            .map_err(|e| enc(table, format!("{}: {e}", input.key)))?;
        for batch in reader {
            let batch = batch.map_err(|e| enc(table, format!("{}: {e}", input.key)))?;
            let batch = conform(table, &target, &batch)?;
            report.rows_in += batch.num_rows() as u64;
            let ids = batch.column(0).as_string::<i32>();
            let keep: arrow::array::BooleanArray =
                (0..ids.len()).map(|i| Some(ids.is_null(i) || seen.insert(ids.value(i)))).collect();
            let kept = filter_record_batch(&batch, &keep).map_err(|e| enc(table, e))?;
            report.rows_out += kept.num_rows() as u64;
            out.write(&kept).await?;
        }
    }
    out.finish_file().await?;
    report.duplicates_dropped = report.rows_in - report.rows_out;
    report.output_bytes = out.written.iter().map(|(_, s)| s).sum();
    report.outputs = out.written.iter().map(|(k, _)| k.clone()).collect();

    // Only now, with every merged file in place, the inputs go.
    let outputs: HashSet<&str> = report.outputs.iter().map(String::as_str).collect();
    let doomed: Vec<String> = inputs.iter().map(|m| m.key.clone()).filter(|k| !outputs.contains(k.as_str())).collect();
    for chunk in doomed.chunks(1000) {
        store.delete_many(chunk).await?;
    }
    tracing::info!(
        table = table.name(),
        day = %day,
        inputs = report.inputs,
        outputs = report.outputs.len(),
        rows = report.rows_out,
        duplicates = report.duplicates_dropped,
        "lake partition compacted"
    );
    Ok(report)
}

/// The days that have files in `table`, in order.
pub async fn partition_days(store: &SharedStore, table: Table) -> Result<Vec<NaiveDate>, LakeError> {
    let prefix = layout::dir_prefix(table.name());
    let days: BTreeSet<NaiveDate> =
        list_all(store.as_ref(), &prefix).await?.iter().filter_map(|m| layout::parse(&m.key)).map(|p| p.day).collect();
    Ok(days.into_iter().collect())
}

/// Compacts every partition of every table (or of `tables`) whose day is before `today`
/// (closed days: writers no longer add to them, except late stragglers), and, with
/// `open_day`, the writers' files of `today` and later days ([`Scope::WriterFiles`]).
pub async fn compact_days(
    store: &SharedStore,
    today: NaiveDate,
    open_day: bool,
    tables: &[Table],
    target_bytes: u64,
    writer_id: &str,
) -> Result<Vec<CompactReport>, LakeError> {
    let tables: &[Table] = if tables.is_empty() { &Table::ALL } else { tables };
    let mut reports = Vec::new();
    for &table in tables {
        for day in partition_days(store, table).await? {
            let scope = if day < today {
                Scope::All
            } else if open_day {
                Scope::WriterFiles
            } else {
                continue;
            };
            reports.push(compact_day(store, table, day, target_bytes, writer_id, scope).await?);
        }
    }
    Ok(reports)
}

/// A table by its name (`uploads`, `jobs`, ...), for command lines.
pub fn parse_table(name: &str) -> Option<Table> {
    Table::ALL.into_iter().find(|t| t.name() == name)
}

/// A day as `YYYY-MM-DD`, for command lines.
pub fn parse_day(s: &str) -> Option<NaiveDate> {
    layout::parse_day(s)
}

/// Today's UTC date: days before it are closed.
pub fn today_utc() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

impl CompactReport {
    /// One line for logs and the command line.
    pub fn summary(&self) -> String {
        let (t, d) = (self.table.map(Table::name).unwrap_or("?"), self.day.map(|d| d.to_string()).unwrap_or_default());
        if self.skipped {
            return format!("{t} dt={d}: already compact ({} files)", self.inputs);
        }
        format!(
            "{t} dt={d}: {} files ({} bytes, {} rows) -> {} files ({} bytes, {} rows), {} duplicates dropped",
            self.inputs,
            self.input_bytes,
            self.rows_in,
            self.outputs.len(),
            self.output_bytes,
            self.rows_out,
            self.duplicates_dropped
        )
    }
}
