//! imagelake-core: everything the services share.
//!
//! Configuration, ids, API keys, the clock, the object-store, job-queue and metadata-database traits
//! with their implementations, the image record, and the lake's schemas and writer. Service
//! crates depend on this crate and never on each other.

pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod deletion;
pub mod error;
pub mod health;
pub mod http;
pub mod ids;
pub mod job;
pub mod lake;
pub mod media;
pub mod meta;
pub mod metrics;
pub mod openapi;
pub mod post;
pub mod problem;
pub mod queue;
pub mod ratelimit;
pub mod record;
pub mod resumable;
pub mod serve;
pub mod store;
pub mod testing;
pub mod units;
pub mod usage;
pub mod webhook;

pub use error::CoreError;
