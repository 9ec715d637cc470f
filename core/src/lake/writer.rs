//! `LakeWriter`: buffers events per table and writes them as Parquet files, Firehose
//! style: a flush happens when a table's buffer reaches `flush_rows` rows or
//! `flush_bytes` bytes, when its oldest event is `flush_age` old, on [`LakeWriter::flush`],
//! and at shutdown.
//!
//! One flush writes one file per (table, day) under
//! `lake/{table}/dt=YYYY-MM-DD/{writer_id}-{uuidv7}.parquet`, through a single atomic
//! put, so that a reader never sees half a file. If the write fails, the events go back
//! into the buffer for the next flush.

use super::{schema, Event, Table};
use crate::clock::SharedClock;
use crate::config::LakeConfig;
use crate::store::{SharedStore, StoreError};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// The Parquet or Arrow encoder failed (a bug: the rows follow the schema).
    #[error("encoding {0} rows: {1}")]
    Encode(&'static str, String),
    /// The object store refused the file; the events stay buffered.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Default)]
struct Buffer {
    events: Vec<Event>,
    bytes: usize,
    oldest: Option<DateTime<Utc>>,
}

/// What one flush wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlushReport {
    pub files: Vec<String>,
    pub rows: usize,
    pub bytes: u64,
}

pub struct LakeWriter {
    store: SharedStore,
    writer_id: String,
    cfg: LakeConfig,
    clock: SharedClock,
    buffers: Mutex<HashMap<Table, Buffer>>,
    wake: Notify,
    /// Serialises flushes, so that a failed flush's events are put back before the next one.
    flushing: tokio::sync::Mutex<()>,
}

/// A rough size of an event in memory and on the wire, for the byte threshold.
fn approx_size(e: &Event) -> usize {
    serde_json::to_vec(e).map(|v| v.len()).unwrap_or(256)
}

impl LakeWriter {
    /// `writer_id` names this process in file names (letters, digits, `-`).
    pub fn new(store: SharedStore, writer_id: &str, cfg: LakeConfig, clock: SharedClock) -> Arc<Self> {
        let writer_id: String = writer_id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(40).collect();
        Arc::new(Self {
            store,
            writer_id,
            cfg,
            clock,
            buffers: Mutex::default(),
            wake: Notify::new(),
            flushing: tokio::sync::Mutex::new(()),
        })
    }

    pub fn writer_id(&self) -> &str {
        &self.writer_id
    }

    /// Buffers events without waiting; the background flusher writes them (access-log
    /// semantics: a crash can lose what was buffered since the last flush).
    pub fn append_buffered(&self, event: Event) {
        let due = self.push(vec![event]);
        if due {
            self.wake.notify_one();
        }
    }

    /// Buffers events, flushing at once when a threshold is reached.
    pub async fn append(&self, events: Vec<Event>) -> Result<(), LakeError> {
        if self.push(events) {
            self.flush().await?;
        }
        Ok(())
    }

    /// Buffers events and returns once they (and everything buffered before) are in
    /// flushed files: what a caller needs before it acknowledges the facts' source.
    pub async fn write_durable(&self, events: Vec<Event>) -> Result<FlushReport, LakeError> {
        self.push(events);
        self.flush().await
    }

    /// Returns whether a size threshold is reached.
    fn push(&self, events: Vec<Event>) -> bool {
        let now = self.clock.now();
        let mut bufs = self.buffers.lock().unwrap();
        let mut due = false;
        for e in events {
            let b = bufs.entry(e.table()).or_default();
            b.bytes += approx_size(&e);
            b.oldest.get_or_insert(now);
            b.events.push(e);
            due |= b.events.len() >= self.cfg.flush_rows || b.bytes as u64 >= self.cfg.flush_bytes.0;
        }
        due
    }

    /// Rows waiting to be written.
    pub fn buffered(&self) -> usize {
        self.buffers.lock().unwrap().values().map(|b| b.events.len()).sum()
    }

    /// Writes everything buffered. On failure, the events are buffered again.
    pub async fn flush(&self) -> Result<FlushReport, LakeError> {
        let _one_at_a_time = self.flushing.lock().await;
        let taken: Vec<(Table, Buffer)> = self.buffers.lock().unwrap().drain().collect();
        let mut report = FlushReport::default();
        let mut failed: Vec<Event> = Vec::new();
        let mut first_error = None;
        for (table, buf) in taken {
            // One file per day partition.
            let mut by_day: BTreeMap<chrono::NaiveDate, Vec<Event>> = BTreeMap::new();
            for e in buf.events {
                by_day.entry(e.time().date_naive()).or_default().push(e);
            }
            for (day, events) in by_day {
                match self.write_file(table, day, &events).await {
                    Ok((key, size)) => {
                        crate::metrics::lake_file(table.name(), events.len(), size, true);
                        report.rows += events.len();
                        report.bytes += size;
                        report.files.push(key);
                    }
                    Err(e) => {
                        crate::metrics::lake_file(table.name(), events.len(), 0, false);
                        tracing::warn!(table = table.name(), error = %e, "lake flush failed; events stay buffered");
                        failed.extend(events);
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        if !failed.is_empty() {
            self.push(failed);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    async fn write_file(&self, table: Table, day: chrono::NaiveDate, events: &[Event]) -> Result<(String, u64), LakeError> {
        let body = encode(table, events)?;
        let size = body.len() as u64;
        let key =
            super::layout::file_key(table.name(), day, &format!("{}-{}.parquet", self.writer_id, uuid::Uuid::now_v7().simple()));
        self.store.put(&key, body).await?;
        Ok((key, size))
    }

    /// Flushes tables whose oldest event is older than `flush_age`, or that reached a
    /// threshold, until `shutdown` fires; then flushes everything once more.
    pub async fn run_flusher(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let tick = (self.cfg.flush_age.0 / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(tick) => {}
            }
            if self.is_due() {
                if let Err(e) = self.flush().await {
                    tracing::warn!(error = %e, "lake flush failed; retrying");
                }
            }
        }
        if let Err(e) = self.flush().await {
            tracing::error!(error = %e, rows = self.buffered(), "final lake flush failed");
        }
    }

    fn is_due(&self) -> bool {
        let now = self.clock.now();
        let age = chrono::Duration::from_std(self.cfg.flush_age.0).unwrap_or(chrono::Duration::seconds(60));
        self.buffers.lock().unwrap().values().any(|b| {
            !b.events.is_empty()
                && (b.events.len() >= self.cfg.flush_rows
                    || b.bytes as u64 >= self.cfg.flush_bytes.0
                    || b.oldest.is_some_and(|o| now - o >= age))
        })
    }
}

/// Parquet properties of every lake file: zstd, page statistics, large row groups.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("valid level")))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(1 << 20))
        .set_created_by("imagelake".into())
        .build()
}

/// Encodes one table's events as one Parquet file.
pub fn encode(table: Table, events: &[Event]) -> Result<Bytes, LakeError> {
    let refs: Vec<&Event> = events.iter().collect();
    let batch = schema::to_batch(table, &refs).map_err(|e| LakeError::Encode(table.name(), e.to_string()))?;
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(writer_properties()))
        .map_err(|e| LakeError::Encode(table.name(), e.to_string()))?;
    w.write(&batch).map_err(|e| LakeError::Encode(table.name(), e.to_string()))?;
    w.close().map_err(|e| LakeError::Encode(table.name(), e.to_string()))?;
    Ok(Bytes::from(buf))
}
