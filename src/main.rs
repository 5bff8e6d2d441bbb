//! The `auth-server` binary: parse arguments, load the configuration, start
//! logging, hand over. Bad usage exits 64, bad configuration 78.

use std::path::PathBuf;
use std::process::ExitCode;

use auth_server::cli::{self, Cli, Command};
use auth_server::config::{Config, ProcessEnvironment};
use auth_server::{exit, logging};
use clap::Parser;

fn main() -> ExitCode {
    let args = match Cli::try_parse() {
        Ok(args) => args,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(exit::USAGE);
        }
    };
    let (path, explicit) = match args
        .config
        .or_else(|| std::env::var_os("AUTH_SERVER_CONFIG").map(PathBuf::from))
    {
        Some(path) => (path, true),
        None => (PathBuf::from("config.toml"), false),
    };
    let config = match Config::load(&path, explicit, &ProcessEnvironment) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("auth-server: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let command = args.command.unwrap_or(Command::Serve);
    let _log_guard = match &command {
        Command::Serve | Command::Migrate => logging::init_server(&config.log).map(Some),
        _ => logging::init_cli("warn").map(|()| None),
    };
    let _log_guard = match _log_guard {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("auth-server: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("auth-server: cannot start the async runtime: {e}");
            return ExitCode::from(exit::OS);
        }
    };
    match runtime.block_on(cli::run(command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "auth-server failed");
            eprintln!("auth-server: {e}");
            ExitCode::from(exit::code(&e))
        }
    }
}
