//! Arrow schemas of the lake's tables, and the conversion of rows into record batches.
//! Times are UTC microseconds; byte counts are signed 64-bit (what BI tools expect).

use super::{Event, Table};
use arrow::array::{ArrayRef, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use std::sync::Arc;

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The schema of `table`; the one place the lake's columns are defined.
pub fn schema(table: Table) -> SchemaRef {
    use DataType::{Int32, Int64, Utf8};
    let f = |name: &str, t: DataType, nullable: bool| Field::new(name, t, nullable);
    let fields = match table {
        Table::Uploads => vec![
            f("event_id", Utf8, false),
            f("image_id", Utf8, false),
            f("customer_id", Utf8, false),
            f("uploaded_at", ts(), false),
            f("content_type", Utf8, false),
            f("format", Utf8, false),
            f("bytes", Int64, false),
            f("width", Int32, true),
            f("height", Int32, true),
            f("sha256", Utf8, false),
        ],
        Table::Jobs => vec![
            f("event_id", Utf8, false),
            f("job_id", Utf8, false),
            f("image_id", Utf8, false),
            f("customer_id", Utf8, false),
            f("attempt", Int32, false),
            f("status", Utf8, false),
            f("enqueued_at", ts(), false),
            f("started_at", ts(), false),
            f("finished_at", ts(), false),
            f("duration_ms", Int64, false),
            f("error_code", Utf8, true),
            f("output_bytes", Int64, false),
        ],
        Table::Variants => vec![
            f("event_id", Utf8, false),
            f("image_id", Utf8, false),
            f("customer_id", Utf8, false),
            f("variant", Utf8, false),
            f("format", Utf8, false),
            f("width", Int32, false),
            f("height", Int32, false),
            f("bytes", Int64, false),
            f("created_at", ts(), false),
            f("expires_at", ts(), false),
        ],
        Table::Deletions => vec![
            f("event_id", Utf8, false),
            f("image_id", Utf8, false),
            f("customer_id", Utf8, false),
            f("kind", Utf8, false),
            f("variant", Utf8, true),
            f("bytes", Int64, false),
            f("reason", Utf8, false),
            f("deleted_at", ts(), false),
        ],
        Table::Downloads => vec![
            f("event_id", Utf8, false),
            f("image_id", Utf8, false),
            f("customer_id", Utf8, false),
            f("variant", Utf8, true),
            f("bytes", Int64, false),
            f("served_at", ts(), false),
        ],
        Table::Usage => vec![
            f("event_id", Utf8, false),
            f("taken_at", ts(), false),
            f("customer_id", Utf8, true),
            f("originals_bytes", Int64, false),
            f("variants_bytes", Int64, false),
            f("objects", Int64, false),
            f("capacity_bytes", Int64, false),
        ],
        Table::Posts => vec![
            f("event_id", Utf8, false),
            f("post_id", Utf8, false),
            f("customer_id", Utf8, false),
            f("image_id", Utf8, false),
            f("author", Utf8, true),
            f("event", Utf8, false),
            f("error_code", Utf8, true),
            f("caption_chars", Int32, false),
            f("at", ts(), false),
        ],
        Table::Comments => vec![
            f("event_id", Utf8, false),
            f("comment_id", Utf8, false),
            f("post_id", Utf8, false),
            f("customer_id", Utf8, false),
            f("author", Utf8, false),
            f("event", Utf8, false),
            f("chars", Int32, false),
            f("at", ts(), false),
        ],
    };
    Arc::new(Schema::new(fields))
}

/// Column builders, one per schema field, filled row by row.
enum Col {
    S(StringBuilder),
    I32(Int32Builder),
    I64(Int64Builder),
    T(TimestampMicrosecondBuilder),
}

/// A value of one cell.
enum V<'a> {
    S(Option<&'a str>),
    I32(Option<u32>),
    I64(u64),
    T(DateTime<Utc>),
}

impl Col {
    fn new(t: &DataType) -> Self {
        match t {
            DataType::Utf8 => Col::S(StringBuilder::new()),
            DataType::Int32 => Col::I32(Int32Builder::new()),
            DataType::Int64 => Col::I64(Int64Builder::new()),
            _ => Col::T(TimestampMicrosecondBuilder::new().with_timezone("UTC")),
        }
    }

    fn push(&mut self, v: V<'_>) {
        match (self, v) {
            (Col::S(b), V::S(s)) => b.append_option(s),
            (Col::I32(b), V::I32(n)) => b.append_option(n.map(|n| n.min(i32::MAX as u32) as i32)),
            (Col::I64(b), V::I64(n)) => b.append_value(n.min(i64::MAX as u64) as i64),
            (Col::T(b), V::T(t)) => b.append_value(t.timestamp_micros()),
            _ => unreachable!("row values follow the schema"),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Col::S(mut b) => Arc::new(b.finish()),
            Col::I32(mut b) => Arc::new(b.finish()),
            Col::I64(mut b) => Arc::new(b.finish()),
            Col::T(mut b) => Arc::new(b.finish()),
        }
    }
}

fn cells(e: &Event) -> Vec<V<'_>> {
    use V::*;
    let s = |x| S(Some(x));
    match e {
        Event::Upload(r) => vec![
            s(&r.event_id),
            s(&r.image_id),
            s(&r.customer_id),
            T(r.uploaded_at),
            s(&r.content_type),
            s(&r.format),
            I64(r.bytes),
            I32(r.width),
            I32(r.height),
            s(&r.sha256),
        ],
        Event::Job(r) => vec![
            s(&r.event_id),
            s(&r.job_id),
            s(&r.image_id),
            s(&r.customer_id),
            I32(Some(r.attempt)),
            s(r.status.as_str()),
            T(r.enqueued_at),
            T(r.started_at),
            T(r.finished_at),
            I64(r.duration_ms.max(0) as u64),
            S(r.error_code.as_deref()),
            I64(r.output_bytes),
        ],
        Event::Variant(r) => vec![
            s(&r.event_id),
            s(&r.image_id),
            s(&r.customer_id),
            s(&r.variant),
            s(&r.format),
            I32(Some(r.width)),
            I32(Some(r.height)),
            I64(r.bytes),
            T(r.created_at),
            T(r.expires_at),
        ],
        Event::Deletion(r) => vec![
            s(&r.event_id),
            s(&r.image_id),
            s(&r.customer_id),
            s(r.kind.as_str()),
            S(r.variant.as_deref()),
            I64(r.bytes),
            s(r.reason.as_str()),
            T(r.deleted_at),
        ],
        Event::Download(r) => {
            vec![s(&r.event_id), s(&r.image_id), s(&r.customer_id), S(r.variant.as_deref()), I64(r.bytes), T(r.served_at)]
        }
        Event::Usage(r) => vec![
            s(&r.event_id),
            T(r.taken_at),
            S(r.customer_id.as_deref()),
            I64(r.originals_bytes),
            I64(r.variants_bytes),
            I64(r.objects),
            I64(r.capacity_bytes),
        ],
        Event::Post(r) => vec![
            s(&r.event_id),
            s(&r.post_id),
            s(&r.customer_id),
            s(&r.image_id),
            S(r.author.as_deref()),
            s(r.event.as_str()),
            S(r.error_code.as_deref()),
            I32(Some(r.caption_chars)),
            T(r.at),
        ],
        Event::Comment(r) => vec![
            s(&r.event_id),
            s(&r.comment_id),
            s(&r.post_id),
            s(&r.customer_id),
            s(&r.author),
            s(r.event.as_str()),
            I32(Some(r.chars)),
            T(r.at),
        ],
    }
}

/// Rows of one table as a record batch. Every event must belong to `table`.
pub fn to_batch(table: Table, events: &[&Event]) -> Result<RecordBatch, ArrowError> {
    let schema = schema(table);
    let mut cols: Vec<Col> = schema.fields().iter().map(|f| Col::new(f.data_type())).collect();
    for e in events {
        debug_assert_eq!(e.table(), table);
        for (col, v) in cols.iter_mut().zip(cells(e)) {
            col.push(v);
        }
    }
    RecordBatch::try_new(schema, cols.into_iter().map(Col::finish).collect())
}
