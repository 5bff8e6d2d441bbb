//! Process exit codes (sysexits), and which failure gets which: the one
//! place they are decided. Scripts and supervisors rely on them: 78 means
//! "fix the configuration", 64 "fix the command line", anything else a
//! failure that a restart might not fix.

use crate::admin::AdminError;
use crate::app::AppError;
use crate::cli::CliError;
use crate::cli::remote::RemoteError;
use crate::keyring::KeyringError;
use crate::keys::lifecycle::LifecycleError;
use crate::state::StateError;
use crate::store::StoreError;
use crate::store::sqlite::backup::BackupError;
use crate::tls::TlsError;

/// A failure with no more specific code.
pub const FAILURE: u8 = 1;
/// The command line is wrong (`EX_USAGE`).
pub const USAGE: u8 = 64;
/// The input names something that does not exist (`EX_DATAERR`).
pub const DATA: u8 = 65;
/// A bug: something that cannot fail did (`EX_SOFTWARE`).
pub const SOFTWARE: u8 = 70;
/// The operating system refused a resource (`EX_OSERR`).
pub const OS: u8 = 71;
/// A file could not be created (`EX_CANTCREAT`).
pub const CANT_CREATE: u8 = 73;
/// Try again later (`EX_TEMPFAIL`).
pub const TEMPORARY: u8 = 75;
/// The configuration is wrong or refused (`EX_CONFIG`).
pub const CONFIG: u8 = 78;

/// The exit code of a failed command.
pub fn code(error: &CliError) -> u8 {
    match error {
        CliError::App(e) => app_code(e),
        CliError::Admin(AdminError::Invalid(_)) | CliError::Refused(_) => USAGE,
        CliError::Admin(AdminError::NotFound(_)) => DATA,
        CliError::Admin(_) | CliError::Unhealthy(_) => FAILURE,
        CliError::Keys(e) => keys_code(e),
        CliError::Backup(e) => backup_code(e),
        CliError::Remote(e) => remote_code(e),
    }
}

/// A refusal for bad input is usage, for a missing client data; missing
/// credentials, a bad URL or unusable certificates are configuration; a
/// refused admin token or an unreachable server is a plain failure.
fn remote_code(error: &RemoteError) -> u8 {
    match error.status().map(|s| s.as_u16()) {
        Some(400 | 409) => USAGE,
        Some(404) => DATA,
        Some(_) => FAILURE,
        None if matches!(error, RemoteError::Transport { .. }) => FAILURE,
        None => CONFIG,
    }
}

/// A backup that would overwrite a file, or a restore from something that
/// is not a backup, is usage; a store in use is a temporary failure.
fn backup_code(error: &BackupError) -> u8 {
    match error {
        BackupError::Exists(_) | BackupError::BadBackup { .. } => USAGE,
        BackupError::Io { .. } => CANT_CREATE,
        BackupError::InUse(_) => TEMPORARY,
        BackupError::Store(_) => FAILURE,
    }
}

/// A KEK that is missing, malformed or not the one the keys are sealed
/// under is configuration; an operator's request the lifecycle refuses, or
/// a key file that is not a usable key, is usage; an unknown kid is data.
fn keys_code(error: &KeyringError) -> u8 {
    match error {
        e if e.is_configuration() => CONFIG,
        KeyringError::Lifecycle(LifecycleError::UnknownKey(_)) => DATA,
        KeyringError::Lifecycle(_) | KeyringError::Key(_) | KeyringError::WrongAlgorithm { .. } => {
            USAGE
        }
        _ => FAILURE,
    }
}

fn app_code(error: &AppError) -> u8 {
    match error {
        // A configured certificate that is missing, unreadable, not PEM or
        // not matching its key: fix the configuration (or the mount).
        AppError::ImportedSecrets(_)
        | AppError::State(
            StateError::ScopeRule { .. } | StateError::JwksFetch(_) | StateError::Issuer(..),
        )
        | AppError::Store(StoreError::Settings(_))
        | AppError::Tls(TlsError::Io { .. } | TlsError::BadPem(_) | TlsError::Rejected(_)) => {
            CONFIG
        }
        AppError::State(StateError::Metrics(_)) => SOFTWARE,
        AppError::Keys(e) if e.is_configuration() => CONFIG,
        AppError::Signals(_) => OS,
        AppError::PidFile { .. } => CANT_CREATE,
        AppError::Store(_)
        | AppError::Tls(TlsError::Generate(_))
        | AppError::Key(_)
        | AppError::Keys(_)
        | AppError::Bind { .. }
        | AppError::Admin(_)
        | AppError::InstanceId(_) => FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_failures_are_78_and_usage_64() {
        let refused = CliError::App(AppError::ImportedSecrets(vec!["a".into()]));
        assert_eq!(code(&refused), CONFIG);
        let settings = CliError::App(AppError::Store(StoreError::Settings(
            crate::store::SettingsError::NoTrustedRoots,
        )));
        assert_eq!(code(&settings), CONFIG);
        assert_eq!(code(&CliError::Refused("x".into())), USAGE);
        assert_eq!(
            code(&CliError::Admin(AdminError::NotFound("c".into()))),
            DATA
        );
        let missing_certificate = CliError::App(AppError::Tls(TlsError::Io {
            path: "/run/secrets/auth-server/tls.crt".into(),
            source: std::io::ErrorKind::NotFound.into(),
        }));
        assert_eq!(code(&missing_certificate), CONFIG);
        let signals = CliError::App(AppError::Signals(std::io::Error::other("x")));
        assert_eq!(code(&signals), OS, "not a configuration problem");
        let no_kek = KeyringError::Kek(crate::keyring::kek::KekError::Missing);
        assert_eq!(code(&CliError::App(AppError::Keys(no_kek))), CONFIG);
        let unknown = KeyringError::Lifecycle(LifecycleError::UnknownKey("k".into()));
        assert_eq!(code(&CliError::Keys(unknown)), DATA);
        let pending = KeyringError::Lifecycle(LifecycleError::RetiringCurrent("k".into()));
        assert_eq!(code(&CliError::Keys(pending)), USAGE);
    }
}
