//! The command line: argument definitions and the one-shot admin commands.
//! `serve` hands over to [`crate::app`]; `keys` commands are in `cli/keys.rs`,
//! `federation` commands in `cli/federation.rs`.

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::admin::{self, AdminError, ClientUpdate, NewClient};
use crate::app::{self, AppError};
use crate::audit::{Actor, AuditQuery};
use crate::clock::unix_now;
use crate::config::{Config, Mode};
use crate::domain::client::{AuthMethod, Credential};
use crate::keyring::KeyringError;
use crate::probe::{self, ProbeError};
use crate::store::sqlite::SqliteStore;
use crate::store::sqlite::backup::BackupError;

pub mod client_tls;
pub mod federation;
pub mod keys;
pub mod remote;

pub use federation::FederationCommand;
pub use keys::KeysCommand;
use remote::{AdminApi, RemoteArgs, RemoteError};

/// `--version` output: version and git commit.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("BUILD_GIT_SHA"),
    ")"
);

/// OAuth 2.0 client-credentials token issuer.
#[derive(Debug, Parser)]
#[command(name = "auth-server", version = VERSION_LINE, about)]
pub struct Cli {
    /// Config file (default: config.toml, or AUTH_SERVER_CONFIG).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTPS until SIGTERM/SIGINT (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Validate the configuration and print it with secrets masked.
    CheckConfig,
    /// Ask this instance's own health route over loopback (a container
    /// health check): exit 0 when it answers 200, 1 otherwise.
    Health(HealthArgs),
    /// Manage clients (in the store, or through a server with --server).
    Client(ClientArgs),
    /// Manage issued tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage the signing keys (stored, shared by every instance).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Read the audit trail of administrative changes.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Trusted token issuers (workload identity federation) and the
    /// federated subjects of clients.
    #[command(subcommand)]
    Federation(FederationCommand),
    /// Copy the embedded store to a new file while servers keep running
    /// (SQLite's online backup). PostgreSQL: use pg_dump or base backups.
    Backup {
        /// The backup file to create.
        file: PathBuf,
    },
    /// Replace the embedded store's contents with a backup. Refused while a
    /// server is running on the store.
    Restore {
        /// The backup file.
        file: PathBuf,
    },
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print audit records as JSON lines, oldest first.
    List {
        /// Only records at or after this time: Unix seconds, or a duration
        /// back from now such as `30m`, `12h` or `7d`.
        #[arg(long)]
        since: Option<String>,
        /// Only records about this client (or made by this admin client).
        #[arg(long)]
        client: Option<String>,
        /// At most this many records, the newest (0: all).
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
}

/// Arguments of `health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// `ready` (serving, the store reachable or cached) or `live` (the
    /// process answers).
    #[arg(value_enum, default_value_t = HealthRoute::Ready)]
    pub route: HealthRoute,
    /// Port to ask (default: the port of server.bind).
    #[arg(long)]
    pub port: Option<u16>,
}

/// The health routes `health` can ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HealthRoute {
    /// `GET /health/ready`.
    Ready,
    /// `GET /health/live`.
    Live,
}

impl HealthRoute {
    /// The path asked.
    pub fn path(self) -> &'static str {
        match self {
            Self::Ready => "/health/ready",
            Self::Live => "/health/live",
        }
    }
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Revoke one token (`--jti`) or every token of a client issued until now
    /// (`--client`). Running servers refuse them within about a second.
    Revoke {
        /// The token's `jti` claim.
        #[arg(long, required_unless_present = "client", conflicts_with = "client")]
        jti: Option<String>,
        /// A client id.
        #[arg(long)]
        client: Option<String>,
    },
}

/// `client`: a subcommand, and where it goes.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Through a server's admin API instead of the store.
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: ClientCommand,
}

/// `client` subcommands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client and print its secret (shown only this once).
    Create(Box<CreateArgs>),
    /// List clients.
    List,
    /// Show one client (never its secret).
    Show {
        /// Client id.
        id: String,
    },
    /// Change a client's settings.
    Update(Box<UpdateArgs>),
    /// Issue a new secret; the old one works for the grace period.
    RotateSecret {
        /// Client id.
        id: String,
        /// Seconds the previous secret keeps working (0: stop at once).
        #[arg(long, default_value_t = 86_400)]
        grace_secs: u32,
    },
    /// Refuse new tokens and end the client's current tokens.
    Disable {
        /// Client id.
        id: String,
    },
    /// Allow the client to get tokens again. Tokens issued before, also
    /// those issued while the disable was reaching every instance, stay ended.
    Enable {
        /// Client id.
        id: String,
    },
    /// Remove the client.
    Delete {
        /// Client id.
        id: String,
    },
}

/// Arguments of `client create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Human-readable name.
    #[arg(long)]
    pub name: String,
    /// Client id (default: generated).
    #[arg(long)]
    pub id: Option<String>,
    /// Space-separated scopes the client may request.
    #[arg(long, default_value = "")]
    pub scopes: String,
    /// Space-separated default scopes (default: all allowed scopes).
    #[arg(long)]
    pub default_scopes: Option<String>,
    /// An allowed audience (repeatable); the first is the default.
    #[arg(long = "audience")]
    pub audiences: Vec<String>,
    /// Token lifetime in seconds (default: token.lifetime_secs).
    #[arg(long)]
    pub lifetime_secs: Option<u32>,
    /// Per-client rate limit in requests per second.
    #[arg(long)]
    pub rate_limit_rps: Option<u32>,
    /// Read the secret from stdin instead of generating one (development only).
    #[arg(long)]
    pub secret_stdin: bool,
    /// How the client authenticates: client_secret_basic, client_secret_post
    /// (both accept the secret in the header or the body) or private_key_jwt;
    /// a certificate registration (--tls-*) makes it tls_client_auth or
    /// self_signed_tls_client_auth.
    #[arg(long, default_value = "client_secret_basic", value_parser = parse_auth_method)]
    pub auth_method: AuthMethod,
    /// A JWK Set file with the client's public keys (private_key_jwt).
    #[arg(long, conflicts_with = "jwks_uri")]
    pub jwks_file: Option<PathBuf>,
    /// An https:// URL where the client publishes its JWK Set (private_key_jwt).
    #[arg(long)]
    pub jwks_uri: Option<String>,
    /// How the client authenticates with a certificate instead of its secret.
    #[command(flatten)]
    pub tls: client_tls::TlsArgs,
    /// Every token request of the client must carry a DPoP proof.
    #[arg(long)]
    pub require_dpop: bool,
}

fn parse_auth_method(name: &str) -> Result<AuthMethod, String> {
    AuthMethod::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = AuthMethod::ALL.iter().map(|m| m.name()).collect();
        format!("expected one of {}", names.join(", "))
    })
}

/// Arguments of `client update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Client id.
    pub id: String,
    /// New name.
    #[arg(long)]
    pub name: Option<String>,
    /// New space-separated allowed scopes.
    #[arg(long)]
    pub scopes: Option<String>,
    /// New space-separated default scopes.
    #[arg(long)]
    pub default_scopes: Option<String>,
    /// Replace the audiences (repeatable).
    #[arg(long = "audience")]
    pub audiences: Vec<String>,
    /// Remove every audience.
    #[arg(long, conflicts_with = "audiences")]
    pub clear_audiences: bool,
    /// New token lifetime in seconds.
    #[arg(long)]
    pub lifetime_secs: Option<u32>,
    /// Use the server's default lifetime again.
    #[arg(long, conflicts_with = "lifetime_secs")]
    pub clear_lifetime: bool,
    /// New per-client rate limit.
    #[arg(long)]
    pub rate_limit_rps: Option<u32>,
    /// Use the server's default rate limit again.
    #[arg(long, conflicts_with = "rate_limit_rps")]
    pub clear_rate_limit: bool,
    /// New authentication method; moving to private_key_jwt ends the secrets.
    #[arg(long, value_parser = parse_auth_method)]
    pub auth_method: Option<AuthMethod>,
    /// Replace the client's public keys with this JWK Set file.
    #[arg(long, conflicts_with = "jwks_uri")]
    pub jwks_file: Option<PathBuf>,
    /// Fetch the client's public keys from this https:// URL instead.
    #[arg(long)]
    pub jwks_uri: Option<String>,
    /// A new certificate registration (replaces the old one).
    #[command(flatten)]
    pub tls: client_tls::TlsArgs,
    /// Drop the certificate registration: the client uses its secret again.
    #[arg(long)]
    pub clear_tls: bool,
    /// Require a DPoP proof on every token request of the client.
    #[arg(long)]
    pub require_dpop: bool,
    /// No longer require a DPoP proof.
    #[arg(long, conflicts_with = "require_dpop")]
    pub no_require_dpop: bool,
}

/// Reads a JWK Set file for `--jwks-file`.
fn read_jwks_file(path: Option<PathBuf>) -> Result<Option<String>, CliError> {
    path.map(|path| {
        std::fs::read_to_string(&path)
            .map_err(|e| CliError::Refused(format!("--jwks-file {}: {e}", path.display())))
    })
    .transpose()
}

/// Why a command failed (`crate::exit` maps it to an exit code).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Starting or running the server failed.
    #[error(transparent)]
    App(#[from] AppError),
    /// An admin command failed.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// A `keys` command failed.
    #[error(transparent)]
    Keys(#[from] KeyringError),
    /// The command is not allowed in this mode or with this input.
    #[error("{0}")]
    Refused(String),
    /// A command sent to a server's admin API failed.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// `backup` or `restore` failed.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// `health`: the instance did not answer 200.
    #[error("not healthy: {0}")]
    Unhealthy(#[from] ProbeError),
}

/// Runs a command with a loaded configuration.
pub async fn run(command: Command, config: Config) -> Result<(), CliError> {
    match command {
        Command::Serve => Ok(app::serve(config).await?),
        Command::Migrate => {
            let store = app::open_store(&config)?;
            app::migrate(store.as_ref()).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::CheckConfig => {
            println!("{}", config.to_masked_toml());
            Ok(())
        }
        Command::Health(args) => {
            let status = probe::check(&config, args.route.path(), args.port).await?;
            println!("{} {status}", args.route.path());
            Ok(())
        }
        Command::Client(ClientArgs { remote, command }) => match &remote.server {
            Some(server) => {
                let api =
                    AdminApi::connect(&remote, server, |name| std::env::var(name).ok()).await?;
                run_remote(command, &api).await
            }
            None => run_client(command, &config).await,
        },
        Command::Keys(cmd) => keys::run(cmd, &config).await,
        Command::Federation(cmd) => federation::run(cmd, &config).await,
        Command::Backup { file } => {
            let store = sqlite_store(&config, "backup")?;
            let started = std::time::Instant::now();
            let report = store.backup_to(&file).await?;
            println!(
                "backed up {} clients ({} pages, schema version {}) to {} in {} ms",
                report.clients,
                report.pages,
                report.schema_version,
                file.display(),
                started.elapsed().as_millis()
            );
            Ok(())
        }
        Command::Restore { file } => {
            let store = sqlite_store(&config, "restore")?;
            let live_after = crate::fleet::expired_before(unix_now());
            let report = store.restore_from(&file, live_after).await?;
            app::migrate(&store).await?;
            println!(
                "restored {} clients (schema version {}) from {} into {}",
                report.clients,
                report.schema_version,
                file.display(),
                config.database.sqlite_path.display()
            );
            Ok(())
        }
        Command::Audit(AuditCommand::List {
            since,
            client,
            limit,
        }) => {
            let since = since.map(|s| parse_since(&s, unix_now())).transpose()?;
            let store = app::open_store(&config)?;
            app::migrate(store.as_ref()).await?;
            let query = AuditQuery {
                since,
                client,
                limit,
            };
            let records = store
                .audit_records(&query)
                .await
                .map_err(AdminError::from)?;
            for record in records {
                println!("{}", serde_json::to_string(&record).unwrap_or_default());
            }
            Ok(())
        }
        Command::Token(TokenCommand::Revoke { jti, client }) => {
            let store = app::open_store(&config)?;
            app::migrate(store.as_ref()).await?;
            match (jti, client) {
                (Some(jti), _) => {
                    admin::revoke_jti(store.as_ref(), &jti, &cli_actor(), unix_now()).await?;
                    println!("revoked token {jti}");
                }
                (None, Some(id)) => {
                    let client =
                        admin::revoke_client_tokens(store.as_ref(), &id, &cli_actor(), unix_now())
                            .await?;
                    println!(
                        "revoked every token of {} issued until {}",
                        client.id, client.tokens_valid_after
                    );
                }
                (None, None) => {
                    return Err(CliError::Refused("give --jti or --client".into()));
                }
            }
            Ok(())
        }
    }
}

async fn run_client(command: ClientCommand, config: &Config) -> Result<(), CliError> {
    let store = app::open_store(config)?;
    app::migrate(store.as_ref()).await?;
    let store = store.as_ref();
    let now = unix_now();
    let actor = cli_actor();
    let actor = &actor;
    match command {
        ClientCommand::Create(args) => {
            let imported_secret = if args.secret_stdin {
                if config.environment == Mode::Production {
                    return Err(CliError::Refused(
                        "imported secrets are refused in production; omit --secret-stdin".into(),
                    ));
                }
                Some(read_secret_from_stdin()?)
            } else {
                None
            };
            let created = admin::create_client(
                store,
                NewClient {
                    id: args.id,
                    name: args.name,
                    allowed_scopes: args.scopes,
                    default_scopes: args.default_scopes,
                    audiences: args.audiences,
                    token_lifetime_secs: args.lifetime_secs,
                    rate_limit_rps: args.rate_limit_rps,
                    imported_secret,
                    auth_method: args.auth_method,
                    jwks: read_jwks_file(args.jwks_file)?,
                    jwks_uri: args.jwks_uri,
                    tls_client_auth: args.tls.registration()?,
                    require_dpop: args.require_dpop,
                },
                actor,
                now,
            )
            .await?;
            print_json(&admin::client_view(&created.client));
            match created.client.auth_method.credential() {
                Credential::Certificate => {
                    println!("(the client authenticates with its certificate, never with a secret)")
                }
                Credential::Secret if !created.client.secret_imported => println!(
                    "client_secret: {}\n(store it now: it is not kept and cannot be shown again)",
                    created.secret
                ),
                Credential::Secret | Credential::Assertion => {}
            }
        }
        ClientCommand::List => {
            for client in store.list_clients().await.map_err(AdminError::from)? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    client.id,
                    if client.enabled {
                        "enabled"
                    } else {
                        "disabled"
                    },
                    client.auth_method.name(),
                    client.allowed_scopes,
                    client.name
                );
            }
        }
        ClientCommand::Show { id } => {
            let client = store
                .get_client(&id)
                .await
                .map_err(AdminError::from)?
                .ok_or(AdminError::NotFound(id))?;
            print_json(&admin::client_view(&client));
        }
        ClientCommand::Update(args) => {
            let update = client_update(&args)?;
            print_json(&admin::client_view(
                &admin::update_client(store, &args.id, update, actor, now).await?,
            ));
        }
        ClientCommand::RotateSecret { id, grace_secs } => {
            let (client, secret) = admin::rotate_secret(store, &id, grace_secs, actor, now).await?;
            print_json(&admin::client_view(&client));
            println!(
                "client_secret: {secret}\n(the previous secret works for {grace_secs} more seconds)"
            );
        }
        ClientCommand::Disable { id } => {
            print_json(&admin::client_view(
                &admin::set_enabled(store, &id, false, actor, now).await?,
            ));
        }
        ClientCommand::Enable { id } => {
            print_json(&admin::client_view(
                &admin::set_enabled(store, &id, true, actor, now).await?,
            ));
        }
        ClientCommand::Delete { id } => {
            admin::delete_client(store, &id, actor, now).await?;
            println!("deleted {id}");
        }
    }
    Ok(())
}

/// The audit actor of a command: `cli` and the OS user running it.
pub fn cli_actor() -> Actor {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown".into());
    Actor::cli(&user)
}

/// The embedded store, for `backup` and `restore` (refused with PostgreSQL).
fn sqlite_store(config: &Config, command: &str) -> Result<SqliteStore, CliError> {
    if !config.database.url.is_empty() {
        return Err(CliError::Refused(format!(
            "{command} copies the embedded SQLite store; with PostgreSQL use pg_dump or base \
             backups (see docs/admin.md), and keep the key-encryption key apart from them"
        )));
    }
    Ok(SqliteStore::open(&config.database.sqlite_path).map_err(AdminError::from)?)
}

/// `--since`: Unix seconds, or `<n>s|m|h|d` back from `now`.
fn parse_since(value: &str, now: i64) -> Result<i64, CliError> {
    let refused = || {
        CliError::Refused(format!(
            "--since {value:?}: give Unix seconds or a duration such as 30m, 12h, 7d"
        ))
    };
    if let Ok(at) = value.parse::<i64>() {
        return Ok(at);
    }
    let (n, unit) = match value.char_indices().last() {
        Some((i, _)) => value.split_at(i),
        None => return Err(refused()),
    };
    let n: i64 = n.parse().map_err(|_| refused())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(refused()),
    };
    n.checked_mul(unit)
        .filter(|back| *back >= 0)
        .map(|back| now - back)
        .ok_or_else(refused)
}

/// The changes `client update` asks for.
fn client_update(args: &UpdateArgs) -> Result<ClientUpdate, CliError> {
    Ok(ClientUpdate {
        name: args.name.clone(),
        allowed_scopes: args.scopes.clone(),
        default_scopes: args.default_scopes.clone(),
        audiences: if args.clear_audiences {
            Some(Vec::new())
        } else {
            Some(args.audiences.clone()).filter(|a| !a.is_empty())
        },
        token_lifetime_secs: clear_or_set(args.clear_lifetime, args.lifetime_secs),
        rate_limit_rps: clear_or_set(args.clear_rate_limit, args.rate_limit_rps),
        auth_method: args.auth_method,
        jwks: read_jwks_file(args.jwks_file.clone())?,
        jwks_uri: args.jwks_uri.clone(),
        tls_client_auth: match (args.clear_tls, args.tls.registration()?) {
            (true, Some(_)) => {
                return Err(CliError::Refused(
                    "--clear-tls and a certificate registration exclude each other".into(),
                ));
            }
            (true, None) => Some(None),
            (false, registration) => registration.map(Some),
        },
        require_dpop: match (args.require_dpop, args.no_require_dpop) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
    })
}

/// A `client` command through a server's admin API; prints what the
/// store-backed command prints.
async fn run_remote(command: ClientCommand, api: &AdminApi) -> Result<(), CliError> {
    use http::Method;
    use remote::segment;
    let print_with_secret = |mut shown: serde_json::Value, note: &str| {
        let secret = shown
            .as_object_mut()
            .and_then(|o| o.remove("client_secret"))
            .and_then(|s| s.as_str().map(str::to_owned))
            .unwrap_or_default();
        print_json(&shown);
        println!("client_secret: {secret}\n({note})");
    };
    match command {
        ClientCommand::Create(args) => {
            if args.secret_stdin || args.tls.registration()?.is_some() {
                return Err(CliError::Refused(
                    "--secret-stdin and certificate registrations work on the store only, \
                     not with --server"
                        .into(),
                ));
            }
            let body = serde_json::json!({
                "client_id": args.id,
                "name": args.name,
                "allowed_scopes": args.scopes,
                "default_scopes": args.default_scopes,
                "allowed_audiences": args.audiences,
                "token_lifetime_secs": args.lifetime_secs,
                "rate_limit_rps": args.rate_limit_rps,
                "require_dpop": args.require_dpop,
                "token_endpoint_auth_method": args.auth_method.name(),
                "jwks": read_jwks_file(args.jwks_file)?.as_deref().map(remote::jwks_value),
                "jwks_uri": args.jwks_uri,
            });
            let created = api.call(Method::POST, "/clients", Some(body)).await?;
            if created.get("client_secret").is_some() {
                print_with_secret(
                    created,
                    "store it now: it is not kept and cannot be shown again",
                );
            } else {
                print_json(&created);
            }
        }
        ClientCommand::List => {
            let mut after = String::new();
            loop {
                let path = format!("/clients?limit=1000&after={}", segment(&after));
                let page = api.call(Method::GET, &path, None).await?;
                for client in page["clients"].as_array().into_iter().flatten() {
                    let text = |key: &str| client[key].as_str().unwrap_or_default().to_owned();
                    let state = if client["enabled"] == true {
                        "enabled"
                    } else {
                        "disabled"
                    };
                    println!(
                        "{}\t{state}\t{}\t{}",
                        text("client_id"),
                        text("allowed_scopes"),
                        text("name")
                    );
                }
                match page["next_after"].as_str() {
                    Some(next) => after = next.to_owned(),
                    None => break,
                }
            }
        }
        ClientCommand::Show { id } => {
            let path = format!("/clients/{}", segment(&id));
            print_json(&api.call(Method::GET, &path, None).await?);
        }
        ClientCommand::Update(args) => {
            let update = client_update(&args)?;
            if update.tls_client_auth.is_some() {
                return Err(CliError::Refused(
                    "certificate registrations work on the store only, not with --server".into(),
                ));
            }
            let body = remote::update_body(&update);
            let path = format!("/clients/{}", segment(&args.id));
            print_json(&api.call(Method::PATCH, &path, Some(body)).await?);
        }
        ClientCommand::RotateSecret { id, grace_secs } => {
            let path = format!("/clients/{}/rotate-secret", segment(&id));
            let body = serde_json::json!({ "grace_secs": grace_secs });
            let rotated = api.call(Method::POST, &path, Some(body)).await?;
            print_with_secret(
                rotated,
                &format!("the previous secret works for {grace_secs} more seconds"),
            );
        }
        ClientCommand::Disable { id } => {
            let path = format!("/clients/{}/disable", segment(&id));
            print_json(&api.call(Method::POST, &path, None).await?);
        }
        ClientCommand::Enable { id } => {
            let path = format!("/clients/{}/enable", segment(&id));
            print_json(&api.call(Method::POST, &path, None).await?);
        }
        ClientCommand::Delete { id } => {
            let path = format!("/clients/{}", segment(&id));
            api.call(Method::DELETE, &path, None).await?;
            println!("deleted {id}");
        }
    }
    Ok(())
}

fn clear_or_set(clear: bool, value: Option<u32>) -> Option<Option<u32>> {
    if clear { Some(None) } else { value.map(Some) }
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

fn read_secret_from_stdin() -> Result<String, CliError> {
    let mut secret = String::new();
    std::io::stdin()
        .take(1024)
        .read_to_string(&mut secret)
        .map_err(|e| CliError::Refused(format!("cannot read the secret from stdin: {e}")))?;
    Ok(secret.trim_end_matches(['\r', '\n']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_id_may_start_with_a_hyphen() {
        // base64url ids do, one in 64: `keys retire -jX...` must not read
        // as a flag.
        use clap::Parser;
        let cli = Cli::try_parse_from(["auth-server", "keys", "retire", "-jX0aZ"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Keys(KeysCommand::Retire { kid })) if kid == "-jX0aZ"
        ));
    }

    #[test]
    fn since_takes_seconds_or_a_duration_back() {
        assert_eq!(parse_since("1700000000", 0).unwrap(), 1_700_000_000);
        assert_eq!(parse_since("30m", 10_000).unwrap(), 10_000 - 1_800);
        assert_eq!(parse_since("7d", 1_000_000).unwrap(), 1_000_000 - 604_800);
        for bad in ["", "d", "7w", "-3h", "1é", "99999999999999999999d"] {
            assert!(parse_since(bad, 0).is_err(), "{bad}");
        }
    }
}
