//! imagelake-client: the command-line client of the HTTP API, built into the same
//! `imagelake` binary as the services (`imagelake upload|status|download|list|stats`).
//!
//! It speaks HTTP only (no service crate, no core): every file is streamed from disk to
//! the socket and from the socket to disk, so a multi-GB image never sits in memory.
//! Results go to stdout, progress bars and messages to stderr (hidden when stderr is
//! not a terminal). A failed request exits non-zero with the server's problem+json
//! `detail` and `code`.

mod api;
mod download;
mod images;
mod profile;
mod progress;
mod stats;
mod upload;

pub use api::{Api, ApiError};
pub use profile::Connection;

use clap::{Subcommand, ValueEnum};
use std::path::PathBuf;

/// The client's subcommands, flattened into the `imagelake` command line.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Upload image files (streamed, with a progress bar); prints each image's id.
    Upload {
        /// The files to upload.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The variants to make, comma-separated (default: every configured preset).
        #[arg(long, value_delimiter = ',')]
        variants: Vec<String>,
        /// Wait until each image is processed (or failed) and print its variants.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Show an image's record.
    Status {
        id: String,
        /// Print the record as the server's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Download an image's original (or a variant) to a file.
    Download {
        id: String,
        /// A variant's name (thumb, medium...) instead of the original.
        #[arg(long)]
        variant: Option<String>,
        /// The file to write (`-` for stdout). Default: ID[-VARIANT].EXT in the current directory.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// List your images, newest first (follows the server's cursor).
    List {
        /// How many images to show at most.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Images per request.
        #[arg(long, default_value_t = 200, hide = true)]
        page_size: usize,
        /// Print the records as JSON (an array).
        #[arg(long)]
        json: bool,
    },
    /// Run a statistics report: summary, customers, types, volume, processing, usage.
    Stats {
        report: String,
        /// Start (inclusive): RFC 3339 time or a date (YYYY-MM-DD).
        #[arg(long)]
        from: Option<String>,
        /// End (exclusive; a date includes that day): RFC 3339 time or a date.
        #[arg(long)]
        to: Option<String>,
        /// Only this customer.
        #[arg(long)]
        customer: Option<String>,
        /// Time bucket of the volume report: hour, day, week, month.
        #[arg(long)]
        interval: Option<String>,
        /// Grouping of the types report: format or content_type.
        #[arg(long)]
        by: Option<String>,
        /// Output: an aligned table, or the server's CSV or JSON as it is.
        #[arg(long, value_enum, default_value_t = StatsFormat::Table)]
        format: StatsFormat,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatsFormat {
    Table,
    Csv,
    Json,
}

/// Runs one client command against the server `conn` resolves to.
pub async fn run(cmd: ClientCommand, conn: Connection) -> anyhow::Result<()> {
    let api = Api::new(conn.resolve()?)?;
    match cmd {
        ClientCommand::Upload { files, variants, wait, timeout } => {
            upload::run(&api, &files, &variants, wait, std::time::Duration::from_secs(timeout)).await
        }
        ClientCommand::Status { id, json } => images::status(&api, &id, json).await,
        ClientCommand::Download { id, variant, output } => download::run(&api, &id, variant.as_deref(), output).await,
        ClientCommand::List { limit, page_size, json } => images::list(&api, limit, page_size, json).await,
        ClientCommand::Stats { report, from, to, customer, interval, by, format } => {
            let params = [("from", from), ("to", to), ("customer", customer), ("interval", interval), ("by", by)];
            stats::run(&api, &report, &params, format).await
        }
    }
}
