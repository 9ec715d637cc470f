//! imagelake-processor: consumes processing jobs, makes the variants, updates the record
//! and writes the job's facts to the lake before it acknowledges the message.

mod budget;
pub mod error;
mod handle;
pub mod offline;
pub mod pipeline;
pub mod relay;
mod webhook;
mod worker;

pub use worker::{run, ProcessorHandle};
