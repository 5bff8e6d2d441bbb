//! Where settings come from besides `config.toml`: the environment (read
//! through [`Environment`], which tests replace with a map), the secret
//! files that `<NAME>_FILE` variables name, and the
//! `AUTH_SERVER_<SECTION>_<KEY>` overrides applied to the raw table before
//! it is typed.

use std::collections::BTreeMap;
use std::path::Path;

use super::ConfigError;

/// Prefix of per-setting environment overrides: `AUTH_SERVER_<SECTION>_<KEY>`.
pub const ENV_PREFIX: &str = "AUTH_SERVER_";

/// The variable holding the key-encryption key (base64 of 32 bytes).
pub const KEK_VAR: &str = "AUTH_SERVER_KEK";

/// Variables read by name, besides the `AUTH_SERVER_<SECTION>_<KEY>`
/// overrides. `AUTH_SERVER_CONFIG` is read by the binary before the file.
pub const NAMED_VARS: &[&str] = &[
    "AUTH_SERVER_CONFIG",
    "ENVIRONMENT",
    "DATABASE_URL",
    "DB_PASSWORD",
    "JWT_SECRET",
    "JWT_SECRET_PREVIOUS",
    KEK_VAR,
    "METRICS_TOKEN",
];

/// Secrets that may come from a file instead: `<NAME>_FILE` names a file
/// whose contents stand for `<NAME>` (container and Kubernetes secrets are
/// mounted as files). Setting both is refused. The key-encryption key has a
/// file setting of its own, `token.kek_file`.
pub const FILE_VARS: &[&str] = &[
    "DATABASE_URL",
    "DB_PASSWORD",
    "JWT_SECRET",
    "JWT_SECRET_PREVIOUS",
    "METRICS_TOKEN",
];

/// Suffix of the variables that name a secret's file.
pub const FILE_SUFFIX: &str = "_FILE";

/// Where environment variables, and the secret files they name, come from.
pub trait Environment {
    /// All variables, as name/value pairs.
    fn vars(&self) -> Vec<(String, String)>;

    /// The contents of a file named by a `<NAME>_FILE` variable.
    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// The real process environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn vars(&self) -> Vec<(String, String)> {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect()
    }
}

impl Environment for BTreeMap<String, String> {
    fn vars(&self) -> Vec<(String, String)> {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// Sections that `AUTH_SERVER_<SECTION>_<KEY>` can address.
const SECTIONS: &[&str] = &[
    "server",
    "tls",
    "http",
    "token",
    "database",
    "cache",
    "dpop",
    "limits",
    "log",
    "audit",
    "registration",
    "dev",
    "client_auth",
    "jwks_fetch",
    "federation",
];

/// Replaces each `<NAME>_FILE` of [`FILE_VARS`] by `<NAME>` holding the
/// file's contents, trailing line breaks dropped (`echo secret > file` and
/// `kubectl create secret --from-file` both leave one).
pub(super) fn read_secret_files(
    vars: Vec<(String, String)>,
    env: &dyn Environment,
) -> Result<Vec<(String, String)>, ConfigError> {
    let is_set = |name: &str| vars.iter().any(|(n, _)| n == name);
    let mut out = Vec::with_capacity(vars.len());
    for (name, value) in &vars {
        let Some(secret) = name
            .strip_suffix(FILE_SUFFIX)
            .filter(|secret| FILE_VARS.contains(secret))
        else {
            out.push((name.clone(), value.clone()));
            continue;
        };
        let refuse = |reason: String| ConfigError::SecretFile {
            var: name.clone(),
            reason,
        };
        if is_set(secret) {
            return Err(refuse(format!("set {secret} or {name}, not both")));
        }
        if value.is_empty() {
            return Err(refuse("is empty; it must name a file".into()));
        }
        let contents = env
            .read_file(Path::new(value))
            .map_err(|e| refuse(format!("cannot read {value}: {e}")))?;
        let contents = contents.trim_end_matches(['\n', '\r']);
        if contents.is_empty() {
            return Err(refuse(format!("{value} is empty")));
        }
        out.push((secret.to_owned(), contents.to_owned()));
    }
    Ok(out)
}

/// Applies `AUTH_SERVER_<SECTION>_<KEY>` and the named variables to the raw
/// table before typing, so overrides get the same validation as the file.
pub(super) fn apply_env_overrides(
    table: &mut toml::Table,
    vars: &[(String, String)],
) -> Result<(), ConfigError> {
    for (name, value) in vars {
        match name.as_str() {
            "ENVIRONMENT" => {
                table.insert("environment".into(), value.to_ascii_lowercase().into());
            }
            "DATABASE_URL" => set_in_section(table, "database", "url", value.clone().into()),
            "AUTH_SERVER_CONFIG" | KEK_VAR => {}
            _ => {
                let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                    continue;
                };
                let rest = rest.to_ascii_lowercase();
                let value = parse_env_value(value);
                // Section names may hold underscores themselves.
                let in_section = SECTIONS.iter().find_map(|section| {
                    let key = rest.strip_prefix(section)?.strip_prefix('_')?;
                    Some((*section, key))
                });
                match in_section {
                    Some((section, key)) => set_in_section(table, section, key, value),
                    None => {
                        table.insert(rest, value);
                    }
                }
            }
        }
    }
    Ok(())
}

fn set_in_section(table: &mut toml::Table, section: &str, key: &str, value: toml::Value) {
    let entry = table
        .entry(section.to_owned())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(t) = entry {
        t.insert(key.to_owned(), value);
    }
}

/// Environment values are strings; numbers and booleans are typed like TOML.
fn parse_env_value(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match raw {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(raw.to_owned()),
    }
}
