//! Logging: JSON lines through tracing, formatted once and written to stdout
//! and to `<log.dir>/auth-server.log` (rotated by size) in batches by one
//! background thread (`logging/batch.rs`); the access line is rendered by
//! its own code (`logging/access.rs`) into the same buffer. Level from
//! `log.level`, overridden by `RUST_LOG`.

use std::path::Path;

use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogConfig;

pub mod access;
mod batch;
mod rotating;

pub use rotating::RotatingFile;

/// How often buffered log lines are written out.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// Log bytes held between two flushes before lines are dropped.
const MAX_PENDING_BYTES: usize = 16 << 20;

/// Name of the log file inside `log.dir`.
pub const LOG_FILE: &str = "auth-server.log";

/// Keeps the background writer alive; dropping it flushes what is left.
#[must_use = "dropping the guard stops logging"]
pub struct LogGuard {
    _flusher: batch::Flusher,
}

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The level filter does not parse.
    #[error("invalid log level {0:?}")]
    BadLevel(String),
    /// The log directory or file cannot be created.
    #[error("cannot open the log file in {dir}: {source}")]
    Directory {
        /// The directory.
        dir: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The background writer thread could not be started.
    #[error("cannot start the log writer: {0}")]
    Writer(std::io::Error),
    /// A global subscriber was already installed.
    #[error("logging already initialised")]
    AlreadySet,
}

/// Installs the global subscriber for the server.
pub fn init_server(config: &LogConfig) -> Result<LogGuard, LoggingError> {
    let filter = filter(&config.level)?;
    let mut sinks: Vec<batch::Sink> = vec![Box::new(std::io::stdout())];
    if !config.dir.is_empty() {
        let file = RotatingFile::open(
            Path::new(&config.dir),
            LOG_FILE,
            config.max_file_bytes,
            config.max_files,
        )
        .map_err(|source| LoggingError::Directory {
            dir: config.dir.clone(),
            source,
        })?;
        sinks.push(Box::new(file));
    }
    let (writer, flusher) =
        batch::start(sinks, FLUSH_INTERVAL, MAX_PENDING_BYTES).map_err(LoggingError::Writer)?;
    let access_sink = writer.clone();
    tracing_subscriber::registry()
        .with(filter)
        .with(json_layer(writer))
        .try_init()
        .map_err(|_| LoggingError::AlreadySet)?;
    access::install(access_sink);
    Ok(LogGuard { _flusher: flusher })
}

/// Installs a plain stderr subscriber for one-shot CLI commands, whose
/// stdout carries their result; audit records go to stderr as JSON lines.
pub fn init_cli(level: &str) -> Result<(), LoggingError> {
    use tracing_subscriber::Layer;
    let audit =
        tracing_subscriber::filter::Targets::new().with_target("audit", tracing::Level::INFO);
    let plain = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_filter(filter(level)?)
        .with_filter(tracing_subscriber::filter::filter_fn(|m| {
            m.target() != "audit"
        }));
    tracing_subscriber::registry()
        .with(plain)
        .with(json_layer(std::io::stderr).with_filter(audit))
        .try_init()
        .map_err(|_| LoggingError::AlreadySet)
}

fn json_layer<S, W>(writer: W) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(writer)
}

fn filter(level: &str) -> Result<EnvFilter, LoggingError> {
    match std::env::var("RUST_LOG") {
        Ok(from_env) if !from_env.is_empty() => {
            EnvFilter::try_new(&from_env).map_err(|_| LoggingError::BadLevel(from_env))
        }
        _ => EnvFilter::try_new(level).map_err(|_| LoggingError::BadLevel(level.to_owned())),
    }
}
