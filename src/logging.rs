//! Logging: JSON lines through tracing, to stdout and to
//! `<log.dir>/auth-server.log` (rotated by size), written off the request
//! path by background writers. Level from `log.level`, overridden by `RUST_LOG`.

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogConfig;

mod rotating;

pub use rotating::RotatingFile;

/// Name of the log file inside `log.dir`.
pub const LOG_FILE: &str = "auth-server.log";

/// Keeps the background writers alive; dropping it flushes them.
#[must_use = "dropping the guard stops logging"]
pub struct LogGuard {
    _guards: Vec<WorkerGuard>,
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
    /// A global subscriber was already installed.
    #[error("logging already initialised")]
    AlreadySet,
}

/// Installs the global subscriber for the server.
pub fn init_server(config: &LogConfig) -> Result<LogGuard, LoggingError> {
    let filter = filter(&config.level)?;
    let (stdout, stdout_guard) = tracing_appender::non_blocking(std::io::stdout());
    let mut guards = vec![stdout_guard];
    let file_layer = if config.dir.is_empty() {
        None
    } else {
        let appender = RotatingFile::open(
            Path::new(&config.dir),
            LOG_FILE,
            config.max_file_bytes,
            config.max_files,
        )
        .map_err(|source| LoggingError::Directory {
            dir: config.dir.clone(),
            source,
        })?;
        let (file, guard) = tracing_appender::non_blocking(appender);
        guards.push(guard);
        Some(json_layer(file))
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(json_layer(stdout))
        .with(file_layer)
        .try_init()
        .map_err(|_| LoggingError::AlreadySet)?;
    Ok(LogGuard { _guards: guards })
}

/// Installs a plain stderr subscriber for one-shot CLI commands, whose
/// stdout carries their result.
pub fn init_cli(level: &str) -> Result<(), LoggingError> {
    tracing_subscriber::fmt()
        .with_env_filter(filter(level)?)
        .with_writer(std::io::stderr)
        .with_target(false)
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
