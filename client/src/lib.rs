//! imagelake-client: the command-line client of the HTTP API, built into the same
//! `imagelake` binary as the services (`imagelake upload|status|download|list|post|stats`).
//!
//! It speaks HTTP only (no service crate, no core): every file is streamed from disk to
//! the socket and from the socket to disk, so a multi-GB image never sits in memory.
//! Results go to stdout, progress bars and messages to stderr (hidden when stderr is
//! not a terminal). A failed request exits non-zero with the server's problem+json
//! `detail` and `code`.

mod api;
mod direct;
mod download;
mod images;
mod posts;
mod profile;
mod progress;
mod stats;
mod tus;
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
        /// Files larger than this go up resumably (tus, in chunks; run the same command
        /// again to resume an interrupted upload). 0: every file. Accepts KiB/MiB/GiB.
        #[arg(long, value_name = "BYTES", value_parser = parse_bytes, default_value = "64MiB")]
        resumable_above: u64,
        /// The size of each chunk of a resumable upload (one PATCH request each).
        #[arg(long, value_name = "BYTES", value_parser = parse_chunk_size, default_value = "64MiB")]
        chunk_size: u64,
        /// A resumable upload retries a dropped connection or a server error this many
        /// times in a row (with backoff) before it gives up.
        #[arg(long, default_value_t = 10)]
        retries: u32,
        /// Send the bytes straight to the object store (S3 presigned multipart) instead
        /// of through the server.
        #[arg(long)]
        direct: bool,
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
        /// One of the variant's stored formats (a preset may list several). Default: the
        /// server's choice, the preset's preferred format.
        #[arg(long, requires = "variant", value_parser = ["jpg", "jpeg", "png", "webp", "avif"])]
        format: Option<String>,
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
    /// Posts (an image with a caption, published once it is processed) and their comments.
    Post {
        #[command(subcommand)]
        command: PostCommand,
    },
    /// Run a statistics report: summary, customers, types, volume, processing, usage, engagement.
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
        /// Rows of the engagement report (the most-commented posts): 1 to 1000, default 10.
        #[arg(long)]
        limit: Option<u32>,
        /// Output: an aligned table, or the server's CSV or JSON as it is.
        #[arg(long, value_enum, default_value_t = StatsFormat::Table)]
        format: StatsFormat,
    },
}

/// `imagelake post ...`: results on stdout, messages on stderr, exit 1 with the server's
/// `detail` and `code` when a request is refused.
#[derive(Subcommand, Debug)]
pub enum PostCommand {
    /// Create a post from an image file (streamed, with a progress bar) or from an image
    /// already uploaded (--image); prints the post's id.
    #[command(group(clap::ArgGroup::new("source").required(true).args(["file", "image"])))]
    Create {
        /// The image file to upload and post.
        file: Option<PathBuf>,
        /// Post an image already uploaded (its id) instead of a file.
        #[arg(long, value_name = "IMAGE_ID")]
        image: Option<String>,
        /// The caption (up to 2,200 characters; default: none).
        #[arg(long, default_value = "")]
        caption: String,
        /// Who wrote the post.
        #[arg(long)]
        author: Option<String>,
        /// With FILE: the variants to make, comma-separated (default: every configured preset).
        #[arg(long, value_delimiter = ',', conflicts_with = "image")]
        variants: Vec<String>,
        /// A URL that gets the post POSTed (signed) when it is published or failed.
        #[arg(long)]
        callback_url: Option<String>,
        /// Wait until the post is published (or failed: exit 1) and print its status and variants.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// List published posts, newest or most commented first (follows the server's cursor).
    List {
        #[arg(long, value_enum, default_value_t = PostOrder::Newest)]
        order: PostOrder,
        /// How many posts to show at most.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Posts per request.
        #[arg(long, default_value_t = 100, hide = true)]
        page_size: usize,
        /// Print the posts as JSON (an array).
        #[arg(long)]
        json: bool,
    },
    /// Show a post: caption, author, status, comment count, latest comments, variant URLs.
    Show {
        id: String,
        /// Print the post as the server's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Comment on a published post; prints the comment's id.
    Comment {
        /// The post's id.
        id: String,
        /// The comment (`-`: read it from stdin).
        text: String,
        /// Who wrote the comment.
        #[arg(long)]
        author: String,
        /// Print the comment as the server's JSON instead of its id.
        #[arg(long)]
        json: bool,
    },
    /// List a post's comments, newest first (follows the server's cursor).
    Comments {
        /// The post's id.
        id: String,
        /// How many comments to show at most.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Comments per request.
        #[arg(long, default_value_t = 100, hide = true)]
        page_size: usize,
        /// Print the comments as JSON (an array).
        #[arg(long)]
        json: bool,
    },
    /// Delete a post with its comments and its image, or with --comment one comment only.
    Delete {
        /// The post's id.
        id: String,
        /// Delete only this comment of the post.
        #[arg(long, value_name = "COMMENT_ID")]
        comment: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PostOrder {
    Newest,
    /// Most comments first.
    Comments,
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
        ClientCommand::Upload { files, variants, wait, timeout, resumable_above, chunk_size, retries, direct } => {
            let how = if direct {
                upload::How::Direct
            } else {
                upload::How::Auto { resumable_above, tus: tus::Options { chunk_size, retries } }
            };
            upload::run(&api, &files, &variants, how, wait, std::time::Duration::from_secs(timeout)).await
        }
        ClientCommand::Status { id, json } => images::status(&api, &id, json).await,
        ClientCommand::Download { id, variant, format, output } => {
            download::run(&api, &id, variant.as_deref(), format.as_deref(), output).await
        }
        ClientCommand::List { limit, page_size, json } => images::list(&api, limit, page_size, json).await,
        ClientCommand::Post { command } => post(&api, command).await,
        ClientCommand::Stats { report, from, to, customer, interval, by, limit, format } => {
            let limit = limit.map(|n| n.to_string());
            let params =
                [("from", from), ("to", to), ("customer", customer), ("interval", interval), ("by", by), ("limit", limit)];
            stats::run(&api, &report, &params, format).await
        }
    }
}

async fn post(api: &Api, cmd: PostCommand) -> anyhow::Result<()> {
    match cmd {
        PostCommand::Create { file, image, caption, author, variants, callback_url, wait, timeout } => {
            let source = match (&file, &image) {
                (Some(f), _) => posts::Source::File(f),
                (None, Some(i)) => posts::Source::Image(i),
                (None, None) => anyhow::bail!("name an image FILE or --image ID"),
            };
            let new = posts::NewPost {
                source,
                caption: &caption,
                author: author.as_deref(),
                variants: &variants,
                callback_url: callback_url.as_deref(),
            };
            posts::create(api, new, wait, std::time::Duration::from_secs(timeout)).await
        }
        PostCommand::List { order, limit, page_size, json } => posts::list(api, order, limit, page_size, json).await,
        PostCommand::Show { id, json } => posts::show(api, &id, json).await,
        PostCommand::Comment { id, text, author, json } => posts::comment(api, &id, &author, &text, json).await,
        PostCommand::Comments { id, limit, page_size, json } => posts::comments(api, &id, limit, page_size, json).await,
        PostCommand::Delete { id, comment } => posts::delete(api, &id, comment.as_deref()).await,
    }
}

/// A byte count: `1048576`, `512KiB`, `8MiB`, `1GiB` (also `KB`/`MB`/`GB`, `K`/`M`/`G`,
/// which mean the same powers of 1024 here).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("`{text}` is not a byte count (e.g. 1048576, 512KiB, 8MiB, 1GiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (use KiB, MiB or GiB)")),
    };
    n.checked_mul(1 << shift).ok_or_else(|| format!("`{text}` is too large"))
}

fn parse_chunk_size(text: &str) -> Result<u64, String> {
    match parse_bytes(text)? {
        0 => Err("the chunk size must be at least 1 byte".into()),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_bytes, ClientCommand};
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: ClientCommand,
    }

    #[test]
    fn a_download_may_name_a_format_of_a_variant() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["imagelake", "download", "ID"], args].concat()).map(|c| c.command);
        let Ok(ClientCommand::Download { variant, format, .. }) = parse(&["--variant", "web", "--format", "avif"]) else {
            panic!("parsed")
        };
        assert_eq!((variant.as_deref(), format.as_deref()), (Some("web"), Some("avif")));
        let Ok(ClientCommand::Download { format: None, .. }) = parse(&["--variant", "web"]) else { panic!("no format") };
        assert!(parse(&["--format", "png"]).is_err(), "a format is of a variant");
        assert!(parse(&["--variant", "web", "--format", "gif"]).is_err(), "not a format variants are made in");
    }

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("0"), Ok(0));
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("8MiB"), Ok(8 << 20));
        assert_eq!(parse_bytes("64mb"), Ok(64 << 20));
        assert_eq!(parse_bytes("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_bytes("2G"), Ok(2 << 30));
        assert!(parse_bytes("MiB").is_err());
        assert!(parse_bytes("8 parsecs").is_err());
        assert!(parse_bytes("-1").is_err());
    }
}
