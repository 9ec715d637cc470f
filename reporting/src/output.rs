//! Encodes DuckDB's Arrow batches as JSON (an array of objects), CSV, an Arrow IPC stream
//! or Parquet: one source, four encodings.

use crate::engine::Answer;
use crate::error::ReportingError;
use crate::params::Format;
use arrow::record_batch::RecordBatch;

fn enc<E: std::fmt::Display>(e: E) -> ReportingError {
    ReportingError::Encode(e.to_string())
}

pub fn encode(answer: &Answer, format: Format) -> Result<Vec<u8>, ReportingError> {
    let batches: Vec<&RecordBatch> = answer.batches.iter().filter(|b| b.num_rows() > 0).collect();
    let mut out = Vec::new();
    match format {
        Format::Json => {
            let mut w = arrow::json::writer::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::JsonArray>(&mut out);
            w.write_batches(&batches).map_err(enc)?;
            w.finish().map_err(enc)?;
        }
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
            if batches.is_empty() {
                // The header alone, so that an empty answer still names its columns.
                w.write(&RecordBatch::new_empty(answer.schema.clone())).map_err(enc)?;
            }
            for b in &batches {
                w.write(b).map_err(enc)?;
            }
        }
        Format::Arrow => {
            let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut out, &answer.schema).map_err(enc)?;
            for b in &batches {
                w.write(b).map_err(enc)?;
            }
            w.finish().map_err(enc)?;
        }
        Format::Parquet => {
            let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, answer.schema.clone(), None).map_err(enc)?;
            for b in &batches {
                w.write(b).map_err(enc)?;
            }
            w.close().map_err(enc)?;
        }
    }
    Ok(out)
}
