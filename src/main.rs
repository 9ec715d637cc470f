//! The `imagelake` command line: wiring only. Each subcommand builds a [`Context`] from
//! the configuration and hands it to the service crates.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use imagelake_core::app::Context;
use imagelake_core::auth::{self, Role};
use imagelake_core::config::Config;
use imagelake_core::meta::ApiKey;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// jemalloc for the whole process, the C++ of the bundled DuckDB included (its `malloc` and
/// `operator new` resolve to jemalloc's unprefixed symbols). DuckDB's own builds ship
/// jemalloc on Linux; the crate's `cc` build does not, and on glibc's malloc the reports
/// ran up to 1.7x slower than the same SQL in Python's duckdb (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "imagelake", version, about = "Image uploads, processed variants, and an analytics lake of every fact")]
struct Cli {
    /// The TOML configuration file. Every key can also be set with IMAGELAKE_* variables.
    #[arg(long, global = true, env = "IMAGELAKE_CONFIG")]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    client: imagelake_client::Connection,
}

#[derive(Subcommand)]
enum Command {
    /// Run every service in one process (ingest, processor, reporting, lifecycle).
    Serve,
    #[command(flatten)]
    Client(imagelake_client::ClientCommand),
    /// Run the upload and download API only.
    Ingest,
    /// Run the job consumer only.
    Processor,
    /// Run the statistics API and dashboard only.
    Reporting,
    /// Run the scheduled jobs only, or one job now (`run`), or show their state (`status`).
    Lifecycle {
        #[command(subcommand)]
        command: Option<LifecycleCommand>,
    },
    /// Work on the metadata lake directly.
    Lake {
        #[command(subcommand)]
        command: LakeCommand,
    },
    /// Render the variants of local files with the processor's pipeline, no server needed.
    Process {
        /// Only these presets (comma-separated names); default: every configured one.
        #[arg(long, value_delimiter = ',')]
        variants: Option<Vec<String>>,
        /// Where to write `{file stem}.{variant}.{ext}`.
        #[arg(long)]
        out: PathBuf,
        /// Files rendered at once (default: the CPUs this process may use).
        #[arg(long)]
        jobs: Option<usize>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Manage API keys (they take effect on running servers within a second).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Work on the metadata database.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Read the record objects an earlier version kept in the object store into the
    /// database (idempotent; prints counts).
    Import,
    /// Apply the schema migrations and print the schema version (servers do it at start).
    Migrate,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a new random key and store its hash in the metadata database.
    Add {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        role: Role,
        /// An analyst key that reads every customer's statistics (by default an analyst
        /// reads its own customer's only).
        #[arg(long)]
        all_customers: bool,
    },
    /// List the keys: id, customer, role, where they came from, when, and whether revoked.
    List,
    /// Revoke a key by its id (from `keys list`); running servers refuse it within a second.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum LifecycleCommand {
    /// Run one job now and print what it did: expire, usage, compact, abort-multipart, reconcile.
    Run {
        job: imagelake_lifecycle::JobName,
        /// Run as if the clock read this time (RFC 3339).
        #[arg(long)]
        at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// List the jobs, their schedules, and their last run and outcome.
    Status,
}

#[derive(Subcommand)]
enum LakeCommand {
    /// Write a realistic synthetic lake into the configured object store.
    Generate {
        #[arg(long, default_value_t = 100_000)]
        images: u64,
        #[arg(long, default_value_t = 200)]
        customers: u32,
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Write only these tables (comma-separated, e.g. `uploads`); default all.
        #[arg(long, value_delimiter = ',')]
        tables: Vec<String>,
    },
    /// Merge the small files of every closed day (before today, UTC).
    Compact {
        /// Compact days before this date instead (YYYY-MM-DD).
        #[arg(long)]
        before: Option<chrono::NaiveDate>,
    },
    /// Make the daily aggregates (lake/agg_*) of every closed day whose facts changed.
    Aggregate,
}

/// Errors end as one line on stderr, `error: ` and the chain of causes (`{:#}`), and exit
/// status 1: never the Debug form that returning them from `main` prints, which adds a
/// backtrace whenever RUST_BACKTRACE (or RUST_LIB_BACKTRACE) is set.
#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Client(cmd) = cli.command {
        return imagelake_client::run(cmd, cli.client).await; // needs no server configuration
    }
    init_logging(&cli.log_format);
    let config = Config::from_env(cli.config.as_deref())?;
    match cli.command {
        Command::Keys { command } => keys(&config, command).await,
        Command::Db { command } => db(config, command).await,
        Command::Serve => serve(config, Services::ALL).await,
        Command::Ingest => serve(config, Services { ingest: true, ..Services::NONE }).await,
        Command::Processor => serve(config, Services { processor: true, ..Services::NONE }).await,
        Command::Reporting => serve(config, Services { reporting: true, ..Services::NONE }).await,
        Command::Lifecycle { command: None } => serve(config, Services { lifecycle: true, ..Services::NONE }).await,
        Command::Lifecycle { command: Some(LifecycleCommand::Run { job, at }) } => {
            let ctx = Context::connect(config).await?;
            let report = imagelake_lifecycle::run_job(&ctx, job, at).await?;
            ctx.lake.flush().await?;
            print!("{report}");
            Ok(())
        }
        Command::Lifecycle { command: Some(LifecycleCommand::Status) } => {
            let ctx = Context::connect(config).await?;
            for s in imagelake_lifecycle::status(&ctx).await {
                println!("{s}");
            }
            Ok(())
        }
        Command::Lake { command } => lake(config, command).await,
        Command::Client(_) => unreachable!("handled before the configuration is read"),
        Command::Process { variants, out, jobs, files } => process(&config, variants, &out, jobs, &files),
    }
}

fn process(
    config: &Config,
    variants: Option<Vec<String>>,
    out: &std::path::Path,
    jobs: Option<usize>,
    files: &[PathBuf],
) -> anyhow::Result<()> {
    use imagelake_processor::{offline, pipeline::Limits};
    let presets = offline::select(&config.processor.variants, variants.as_deref())?;
    let limits = Limits {
        max_pixels: config.processor.max_pixels,
        max_alloc_bytes: config.processor.memory_budget.0,
        max_animation_pixels: config.processor.max_animation_pixels,
    };
    let sum = offline::run(files, &presets, &limits, out, jobs.unwrap_or_else(offline::default_jobs))?;
    let secs = sum.elapsed.as_secs_f64();
    eprintln!(
        "{} files ({} failed), {} variants, {} bytes written to {} in {secs:.2} s ({:.1} images/s)",
        sum.files,
        sum.failed,
        sum.variants,
        sum.bytes_out,
        out.display(),
        (sum.files - sum.failed) as f64 / secs.max(1e-9)
    );
    anyhow::ensure!(sum.failed == 0, "{} of {} files failed", sum.failed, sum.files);
    Ok(())
}

#[derive(Clone, Copy)]
/// Which services this process runs.
struct Services {
    ingest: bool,
    processor: bool,
    reporting: bool,
    lifecycle: bool,
}

impl Services {
    const ALL: Self = Self { ingest: true, processor: true, reporting: true, lifecycle: true };
    const NONE: Self = Self { ingest: false, processor: false, reporting: false, lifecycle: false };
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("IMAGELAKE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: a log file or a collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// With no usable key at all, the first start creates an admin key and writes it to
/// `data_dir/admin.key`, readable by this user only (mode 0600), before it is stored: a
/// key never appears in a terminal's scroll-back or a log collector. Returns the file.
async fn ensure_first_key(ctx: &Context) -> anyhow::Result<Option<PathBuf>> {
    if ctx.meta.list_keys().await?.iter().any(|k| k.revoked_at.is_none()) {
        return Ok(None);
    }
    let key = auth::generate_key();
    let path = ctx.config.data_dir.join("admin.key");
    write_private(&path, &format!("{key}\n")).with_context(|| format!("cannot write the admin key to {}", path.display()))?;
    ctx.meta.add_key(&ApiKey::new(&auth::hash_key(&key), "admin", Role::Admin, "cli", ctx.clock.now())).await?;
    Ok(Some(path))
}

/// Writes `text` to a new file only its owner can read (replacing an older one).
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let _ = std::fs::remove_file(path);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// The database alone (the key commands need neither the store nor the queue).
async fn open_meta(config: &Config) -> anyhow::Result<imagelake_core::meta::SharedMeta> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    let meta = imagelake_core::meta::from_config(config).await?;
    auth::KeyStore::import(&meta, &config.keys, &config.data_dir, chrono::Utc::now()).await?;
    Ok(meta)
}

async fn keys(config: &Config, command: KeysCommand) -> anyhow::Result<()> {
    let meta = open_meta(config).await?;
    let now = chrono::Utc::now();
    match command {
        KeysCommand::Add { customer, role, all_customers } => {
            auth::validate_customer(&customer).map_err(anyhow::Error::msg)?;
            anyhow::ensure!(!all_customers || role == Role::Analyst, "--all-customers is for analyst keys (admins see all)");
            let key = auth::generate_key();
            let entry = ApiKey::new(&auth::hash_key(&key), &customer, role, "cli", now).for_all_customers(all_customers);
            meta.add_key(&entry).await?;
            println!("{key}");
            eprintln!("stored key {} (its SHA-256 only) in the {} database", entry.id, meta.backend());
        }
        KeysCommand::List => {
            println!("{:<16}  {:<20}  {:<8}  {:<6}  {:<20}  revoked", "id", "customer", "role", "source", "created");
            for k in meta.list_keys().await? {
                let mut role = format!("{:?}", k.role).to_lowercase();
                if k.all_customers {
                    role.push('*'); // an analyst of every customer
                }
                let created = k.created_at.format("%Y-%m-%dT%H:%M:%SZ");
                let revoked = k.revoked_at.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_else(|| "-".into());
                println!("{:<16}  {:<20}  {:<8}  {:<6}  {created:<20}  {revoked}", k.id, k.customer, role, k.source);
            }
        }
        KeysCommand::Revoke { id } => {
            anyhow::ensure!(meta.revoke_key(&id, now).await?, "no unrevoked key with id {id}");
            eprintln!("revoked {id}");
        }
    }
    Ok(())
}

async fn db(config: Config, command: DbCommand) -> anyhow::Result<()> {
    match command {
        DbCommand::Migrate => {
            let meta = open_meta(&config).await?;
            println!("{} schema at version {}", meta.backend(), imagelake_core::meta::SqlMetadata::latest_version());
        }
        DbCommand::Import => {
            let ctx = Context::connect(config).await?;
            let report = imagelake_core::meta::import::import_records(&ctx.store, &ctx.meta).await?;
            println!("{report}");
        }
    }
    Ok(())
}

async fn serve(config: Config, services: Services) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    imagelake_core::metrics::install();
    let ctx = Context::connect(config).await?;
    let first_key = ensure_first_key(&ctx).await?;
    let shutdown = CancellationToken::new();

    let grace = ctx.config.shutdown_grace.0;
    let mut background = Vec::new();
    background.push(tokio::spawn(ctx.lake.clone().run_flusher(shutdown.child_token())));
    // The API routes, under the per-key rate limit; the probes and the document are not.
    let mut api = axum::Router::new();
    let mut api_parts = Vec::new();
    if services.ingest {
        api = api.merge(imagelake_ingest::router());
        api_parts.push(imagelake_ingest::openapi());
    }
    if services.reporting {
        api = api.merge(imagelake_reporting::router(ctx.clone()).await?);
        api_parts.push(imagelake_reporting::openapi());
    }
    let mut routes = imagelake_core::health::router().merge(imagelake_core::ratelimit::limit(api, &ctx.config.http));
    // `/metrics` on the main listener, unless it has one of its own.
    if ctx.config.metrics_listen.is_none() {
        routes = routes.merge(imagelake_core::metrics::router());
    }
    // The document of the routes this process serves.
    routes = routes.merge(imagelake_core::openapi::router(&imagelake_core::openapi::document(api_parts)));
    if services.processor {
        background.push(imagelake_processor::run(ctx.clone(), shutdown.child_token(), grace));
        background.push(imagelake_processor::relay::run(ctx.clone(), shutdown.child_token()));
    }
    if services.lifecycle {
        imagelake_lifecycle::validate_schedules(&ctx)?;
        background.push(imagelake_lifecycle::spawn(ctx.clone(), shutdown.child_token()));
    }
    if services.ingest {
        // Jobs committed but not sent (a queue outage, a crash) go out from here.
        background.push(imagelake_ingest::outbox::run_sweeper(ctx.clone(), shutdown.child_token()));
        // The capacity gate follows the database's byte counters, which every process
        // (other ingests, processors, the lifecycle) updates with its records.
        let c = ctx.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                if let Err(e) = c.refresh_usage().await {
                    tracing::warn!(error = %e, "could not read the usage counters");
                }
            }
        });
    }
    let app =
        imagelake_core::http::cors(imagelake_core::http::layers(routes.with_state(ctx.clone())), &ctx.config.http.cors_origins);

    let listener = tokio::net::TcpListener::bind(&ctx.config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", ctx.config.listen))?;
    let addr = listener.local_addr()?;
    println!("imagelake listening on http://{addr}");
    println!(
        "  data:   {} (storage {}, queue {}, database {})",
        ctx.config.data_dir.display(),
        ctx.store.backend(),
        ctx.queue.backend(),
        ctx.meta.backend()
    );
    if let Some(path) = first_key {
        println!("  admin key: {} (readable by you only; the database keeps its hash)", path.display());
    }
    println!("  try:    curl http://{addr}/healthz");
    if let Some(addr) = &ctx.config.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        println!("  metrics: http://{}/metrics", listener.local_addr()?);
        let metrics = imagelake_core::http::layers(
            imagelake_core::metrics::router().merge(imagelake_core::health::router()).with_state(ctx.clone()),
        );
        let (http, token) = (ctx.config.http.clone(), shutdown.clone());
        tokio::spawn(async move { imagelake_core::serve::serve(listener, metrics, &http, token).await });
    }
    let (token, delay) = (shutdown.clone(), ctx.config.shutdown_delay.0);
    tokio::spawn(async move {
        wait_for_signal().await;
        // Out of the load balancer first, then stop accepting.
        imagelake_core::health::start_draining();
        if !delay.is_zero() {
            tracing::info!(?delay, "draining: /readyz answers 503 until the listener closes");
            tokio::time::sleep(delay).await;
        }
        token.cancel();
    });
    let server = imagelake_core::serve::serve(listener, app, &ctx.config.http, shutdown.clone());
    // After SIGTERM, in-flight requests get the grace period; uploads cut off then are
    // not acknowledged, and clean up after themselves.
    tokio::select! {
        _ = server => {}
        _ = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "requests still running after the grace period were cut off");
        }
    }
    // In-flight requests are done; let the processor drain and the lake flush.
    shutdown.cancel();
    for task in background {
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

async fn lake(config: Config, command: LakeCommand) -> anyhow::Result<()> {
    use imagelake_core::lake::compact;
    use imagelake_lakegen::{generate, GenerateOptions};
    let ctx = Context::connect(config).await?;
    match command {
        LakeCommand::Generate { images, customers, days, seed, tables } => {
            let mut only = Vec::new();
            for name in &tables {
                only.push(compact::parse_table(name).ok_or_else(|| anyhow::anyhow!("--tables: no lake table `{name}`"))?);
            }
            let opts = GenerateOptions { images, customers, days, seed, only, ..Default::default() };
            let r = generate(&ctx.store, opts).await?;
            for (table, rows) in &r.rows {
                println!("{:<10} {rows:>12} rows", table.name());
            }
            println!("{} files, {} bytes, {:.1} s", r.files, r.bytes, r.seconds);
        }
        LakeCommand::Aggregate => {
            let started = std::time::Instant::now();
            let r = imagelake_core::lake::aggregate::aggregate_closed_days(
                &ctx.store,
                ctx.clock.now(),
                &ctx.config.data_dir.join("tmp"),
            )
            .await?;
            println!(
                "{} days with facts, {} already current, {} aggregated ({} input files, {} bytes, {} rows) in {:.1} s",
                r.days,
                r.current,
                r.built.len(),
                r.input_files,
                r.input_bytes,
                r.rows_in,
                started.elapsed().as_secs_f64()
            );
        }
        LakeCommand::Compact { before } => {
            let before = before.unwrap_or_else(|| ctx.clock.now().date_naive());
            let target = ctx.config.lake.compact_target.0;
            let reports = compact::compact_days(&ctx.store, before, false, &[], target, ctx.lake.writer_id()).await?;
            for r in reports.iter().filter(|r| !r.skipped) {
                println!(
                    "{} {}: {} files ({} bytes) -> {} files ({} bytes)",
                    r.table.map(|t| t.name()).unwrap_or("?"),
                    r.day.map(|d| d.to_string()).unwrap_or_default(),
                    r.inputs,
                    r.input_bytes,
                    r.outputs.len(),
                    r.output_bytes
                );
            }
        }
    }
    Ok(())
}
