//! `auth-server federation ...`: the trusted issuers of the configuration
//! and the clients' federated subjects. `issuers` and `refresh` fetch the
//! issuers' keys from this host, directly, with the server's settings
//! (`jwks_fetch`): they show whether the keys can be had, not what a
//! running server holds (that is in its `/health/ready` detail and its
//! `auth_federation_issuer_*` metrics; a server fetches again by itself on
//! an unknown `kid`). `subjects` commands write the store, audited, and
//! running servers follow within a change-feed poll.

use std::time::Instant;

use clap::Subcommand;

use super::{CliError, cli_actor};
use crate::admin::federated::{
    add_federated_subject, federated_subjects_of, remove_federated_subject, view,
};
use crate::app;
use crate::clock::unix_now;
use crate::config::{Config, TrustedIssuerConfig};
use crate::domain::federation::FederatedSubject;
use crate::federation::fetch_issuer_keys;
use crate::jwks_fetch::JwksFetcher;

/// `federation` subcommands.
#[derive(Debug, Subcommand)]
pub enum FederationCommand {
    /// Fetch every trusted issuer's keys now and print each one's state:
    /// JWK Set URL, key ids, fetch time, or the error.
    Issuers,
    /// Fetch one trusted issuer's keys now and print its state.
    Refresh {
        /// The issuer's name (`[[federation.issuer]] name`).
        name: String,
    },
    /// A client's federated subjects.
    #[command(subcommand)]
    Subjects(SubjectsCommand),
}

/// `federation subjects` subcommands.
#[derive(Debug, Subcommand)]
pub enum SubjectsCommand {
    /// List a client's federated subjects, as JSON lines.
    List {
        /// Client id.
        client: String,
    },
    /// Let tokens of a trusted issuer whose `sub` matches get the client's
    /// tokens. `*` stands for one segment (`:`-separated, or
    /// `/`-separated in a `spiffe://` ID).
    Add(SubjectArgs),
    /// Remove a federated subject.
    Remove(SubjectArgs),
}

/// A federated subject on the command line.
#[derive(Debug, clap::Args)]
pub struct SubjectArgs {
    /// Client id.
    pub client: String,
    /// The trusted issuer's name.
    #[arg(long)]
    pub issuer: String,
    /// The exact `sub`, or a pattern with `*` segments.
    #[arg(long)]
    pub subject: String,
}

impl SubjectArgs {
    fn subject(self) -> FederatedSubject {
        FederatedSubject {
            client_id: self.client,
            issuer: self.issuer,
            subject: self.subject,
        }
    }
}

/// Runs a `federation` command.
pub async fn run(command: FederationCommand, config: &Config) -> Result<(), CliError> {
    match command {
        FederationCommand::Issuers => {
            if config.federation.issuers.is_empty() {
                println!("no trusted issuers ([[federation.issuer]])");
                return Ok(());
            }
            fetch_and_print(config, &config.federation.issuers).await
        }
        FederationCommand::Refresh { name } => {
            let issuer = config.federation.issuer(&name).ok_or_else(|| {
                CliError::Refused(format!(
                    "no trusted issuer named {name:?} in the configuration"
                ))
            })?;
            fetch_and_print(config, std::slice::from_ref(issuer)).await
        }
        FederationCommand::Subjects(command) => run_subjects(command, config).await,
    }
}

/// Fetches each issuer's keys and prints one line per issuer; fails when
/// any fetch failed.
async fn fetch_and_print(config: &Config, issuers: &[TrustedIssuerConfig]) -> Result<(), CliError> {
    let fetcher =
        JwksFetcher::new(&config.jwks_fetch).map_err(|e| CliError::Refused(e.to_string()))?;
    let mut failed = 0;
    for issuer in issuers {
        let started = Instant::now();
        match fetch_issuer_keys(&fetcher, issuer).await {
            Ok((url, keys)) => {
                let kids: Vec<&str> = keys.kids().collect();
                println!(
                    "{}  {}  keys={} kids=[{}]  jwks_uri={}  fetched in {} ms",
                    issuer.name,
                    issuer.issuer,
                    keys.len(),
                    kids.join(", "),
                    url,
                    started.elapsed().as_millis()
                );
            }
            Err(e) => {
                failed += 1;
                println!("{}  {}  error: {e}", issuer.name, issuer.issuer);
            }
        }
    }
    if failed > 0 {
        return Err(CliError::Refused(format!(
            "the keys of {failed} of {} trusted issuers could not be fetched",
            issuers.len()
        )));
    }
    Ok(())
}

async fn run_subjects(command: SubjectsCommand, config: &Config) -> Result<(), CliError> {
    let store = app::open_store(config)?;
    app::migrate(store.as_ref()).await?;
    let store = store.as_ref();
    let known: Vec<&str> = config
        .federation
        .issuers
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    match command {
        SubjectsCommand::List { client } => {
            for subject in federated_subjects_of(store, &client).await? {
                println!("{}", view(&subject));
            }
        }
        SubjectsCommand::Add(args) => {
            let subject = args.subject();
            add_federated_subject(store, &subject, Some(&known), &cli_actor(), unix_now()).await?;
            println!(
                "{} now maps {} tokens with sub {}",
                subject.client_id, subject.issuer, subject.subject
            );
        }
        SubjectsCommand::Remove(args) => {
            let subject = args.subject();
            remove_federated_subject(store, &subject, &cli_actor(), unix_now()).await?;
            println!(
                "{} no longer maps {} tokens with sub {}",
                subject.client_id, subject.issuer, subject.subject
            );
        }
    }
    Ok(())
}
