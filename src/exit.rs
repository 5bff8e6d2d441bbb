//! Process exit codes (sysexits), and which failure gets which: the one
//! place they are decided. Scripts and supervisors rely on them: 78 means
//! "fix the configuration", 64 "fix the command line", anything else a
//! failure that a restart might not fix.

use crate::admin::AdminError;
use crate::app::AppError;
use crate::cli::CliError;
use crate::state::StateError;
use crate::store::StoreError;
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
/// The configuration is wrong or refused (`EX_CONFIG`).
pub const CONFIG: u8 = 78;

/// The exit code of a failed command.
pub fn code(error: &CliError) -> u8 {
    match error {
        CliError::App(e) => app_code(e),
        CliError::Admin(AdminError::Invalid(_)) | CliError::Refused(_) => USAGE,
        CliError::Admin(AdminError::NotFound(_)) => DATA,
        CliError::Admin(_) | CliError::Unhealthy(_) => FAILURE,
    }
}

fn app_code(error: &AppError) -> u8 {
    match error {
        // A configured certificate that is missing, unreadable, not PEM or
        // not matching its key: fix the configuration (or the mount).
        AppError::ImportedSecrets(_)
        | AppError::State(StateError::ScopeRule { .. })
        | AppError::Store(StoreError::Settings(_))
        | AppError::Tls(TlsError::Io { .. } | TlsError::BadPem(_) | TlsError::Rejected(_)) => {
            CONFIG
        }
        AppError::State(StateError::Metrics(_)) => SOFTWARE,
        AppError::Signals(_) => OS,
        AppError::PidFile { .. } => CANT_CREATE,
        AppError::Store(_)
        | AppError::Tls(TlsError::Generate(_))
        | AppError::Key(_)
        | AppError::Bind { .. }
        | AppError::Admin(_) => FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_failures_are_78_and_usage_64() {
        let refused = CliError::App(AppError::ImportedSecrets(vec!["a".into()]));
        assert_eq!(code(&refused), CONFIG);
        let settings = CliError::App(AppError::Store(StoreError::Settings("x".into())));
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
    }
}
