//! `auth-server keys ...`: the signing keys in the store, opened directly
//! like the `client` commands. Running servers follow every change through
//! the change feed within about a second.

use std::path::PathBuf;

use clap::Subcommand;

use super::CliError;
use crate::app;
use crate::clock::unix_now;
use crate::config::Config;
use crate::keys::lifecycle::{KeyRecord, KeyState};

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the signing keys: kid, algorithm, state, created, promotes at,
    /// retires at.
    List,
    /// Publish a new key, which signs once `token.key_publish_ahead_secs`
    /// have passed. With --now (the current key leaked): the new key signs
    /// at once and the current key is retired, its tokens refused everywhere.
    Rotate {
        /// Replace the current key at once and retire it.
        #[arg(long = "now")]
        immediately: bool,
    },
    /// Import a PKCS#8 PEM private key (of `token.algorithm`) as the next key.
    Import {
        /// The PEM file.
        file: PathBuf,
    },
    /// Retire a next or previous key: out of the JWKS, its tokens refused.
    Retire {
        /// The key's id (it may start with `-`, as base64url ids can).
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

/// Runs a `keys` command.
pub async fn run(command: KeysCommand, config: &Config) -> Result<(), CliError> {
    if !config.stores_signing_keys() {
        return Err(CliError::Refused(
            "token.algorithm is HS256: it signs with JWT_SECRET (JWT_SECRET_PREVIOUS verifies); \
             no signing keys are stored"
                .into(),
        ));
    }
    let store = app::open_store(config)?;
    app::migrate(store.as_ref()).await?;
    let ring = app::open_key_ring(config, store)?;
    let now = unix_now();
    let actor = super::cli_actor();
    match command {
        KeysCommand::List => {
            println!("kid\talg\tstate\tcreated\tpromotes_at\tretires_at");
            for r in ring.records().await? {
                println!("{}", list_line(&r));
            }
        }
        KeysCommand::Rotate { immediately: false } => {
            let next = ring.rotate(&actor, now).await?;
            println!(
                "published next key {} ({}); it signs from {}",
                next.kid,
                next.alg.name(),
                utc(next.promote_at)
            );
        }
        KeysCommand::Rotate { immediately: true } => {
            let current = ring.rotate_now(&actor, now).await?;
            println!(
                "key {} ({}) signs now; the key it replaced is retired and its tokens are refused",
                current.kid,
                current.alg.name()
            );
        }
        KeysCommand::Import { file } => {
            let pem = std::fs::read(&file)
                .map_err(|e| CliError::Refused(format!("cannot read {}: {e}", file.display())))?;
            let next = ring.import(&pem, &actor, now).await?;
            println!(
                "imported key {} ({}) as next; it signs from {}",
                next.kid,
                next.alg.name(),
                utc(next.promote_at)
            );
        }
        KeysCommand::Retire { kid } => {
            let retired = ring.retire(&kid, &actor, now).await?;
            println!("retired key {}; its tokens are refused", retired.kid);
        }
    }
    Ok(())
}

/// One `keys list` line, tab-separated.
fn list_line(r: &KeyRecord) -> String {
    let retires = match r.state {
        KeyState::Retired => r.retired_at,
        _ => r.retire_at,
    };
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}",
        r.kid,
        r.alg.name(),
        r.state.name(),
        utc(Some(r.created_at)),
        utc(r.promote_at.filter(|_| r.state == KeyState::Next)),
        utc(retires),
    )
}

/// Unix seconds as RFC 3339 UTC (`2026-01-02T03:04:05Z`), `-` for none.
fn utc(at: Option<i64>) -> String {
    let Some(at) = at else {
        return "-".into();
    };
    let (days, secs) = (at.div_euclid(86_400), at.rem_euclid(86_400));
    let (year, month, day) = crate::clock::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_rfc3339_utc() {
        assert_eq!(utc(None), "-");
        assert_eq!(utc(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(utc(Some(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(utc(Some(1_767_225_599)), "2025-12-31T23:59:59Z");
        assert_eq!(utc(Some(-1)), "1969-12-31T23:59:59Z");
    }
}
