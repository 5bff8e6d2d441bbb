//! What a deployed container sees, built from the deployment files: its
//! environment, the files mounted into it and the directories it may write.
//! It is an [`Environment`], so the real configuration code reads it exactly
//! as the server would inside the container.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use auth_server::config::{Config, ConfigError, Environment};
use serde_norway::Value;

/// A file of the repository.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The text of a file of the repository.
pub fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A YAML file of the repository.
pub fn yaml(path: &str) -> Value {
    serde_norway::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `value` at a dotted path of keys and sequence indexes (`a.b.0.c`).
pub fn at<'a>(value: &'a Value, path: &str) -> &'a Value {
    get(value, path).unwrap_or_else(|| panic!("no {path}"))
}

/// `value` at a dotted path, if it is there.
pub fn get<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(value, |v, key| match key.parse::<usize>() {
            Ok(index) => v.as_sequence()?.get(index),
            Err(_) => v.get(key),
        })
}

/// The string at a dotted path.
pub fn text<'a>(value: &'a Value, path: &str) -> &'a str {
    at(value, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string"))
}

/// The sequence at a dotted path (empty when absent).
pub fn seq<'a>(value: &'a Value, path: &str) -> &'a [Value] {
    get(value, path)
        .and_then(Value::as_sequence)
        .map_or(&[], Vec::as_slice)
}

/// A scalar as text (ports and modes may be numbers or strings).
pub fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// Whether every label of `selector` is among `labels`.
pub fn selects(selector: &Value, labels: &Value) -> bool {
    selector.as_mapping().is_some_and(|wanted| {
        !wanted.is_empty() && wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
    })
}

/// What a secret's file holds in these tests: something the configuration
/// accepts for it (a TLS database URL, or 48 characters).
pub fn secret_fixture(name: &str) -> String {
    match name {
        "database-url" => {
            "postgres://auth_server@db.example.internal:5432/auth?sslmode=require".into()
        }
        _ => "0123456789abcdef".repeat(3),
    }
}

/// The runtime stage of the Containerfile.
#[derive(Debug, Default)]
pub struct Image {
    /// `USER`.
    pub user: String,
    /// `WORKDIR`.
    pub workdir: PathBuf,
    /// `VOLUME`s.
    pub volumes: Vec<PathBuf>,
    /// `EXPOSE`d ports.
    pub expose: Vec<u16>,
    /// `ENV` pairs.
    pub env: Vec<(String, String)>,
    /// `HEALTHCHECK ... CMD [...]`.
    pub healthcheck: Vec<String>,
    /// `ENTRYPOINT [...]` then `CMD [...]`.
    pub command: Vec<String>,
}

impl Image {
    /// Parses the instructions after the last `FROM` (exec forms only).
    pub fn parse() -> Self {
        let joined = read("Containerfile")
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("\\\n", " ");
        let stage = joined.rsplit_once("\nFROM ").expect("a FROM instruction").1;
        let json = |s: &str| -> Vec<String> {
            serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("{s}: {e}"))
        };
        let mut image = Self::default();
        let (mut entrypoint, mut cmd) = (Vec::new(), Vec::new());
        for line in stage.lines().skip(1) {
            let Some((instruction, args)) = line.trim().split_once(' ') else {
                continue;
            };
            match instruction {
                "USER" => image.user = args.trim().to_owned(),
                "WORKDIR" => image.workdir = PathBuf::from(args.trim()),
                "VOLUME" => image.volumes.push(PathBuf::from(args.trim())),
                "EXPOSE" => image.expose.push(args.trim().parse().expect("EXPOSE port")),
                "ENV" => {
                    for pair in args.split_whitespace() {
                        let (k, v) = pair.split_once('=').expect("ENV name=value");
                        image
                            .env
                            .push((k.to_owned(), v.trim_matches('"').to_owned()));
                    }
                }
                "HEALTHCHECK" => {
                    let (_, exec) = args.split_once(" CMD ").expect("HEALTHCHECK ... CMD [...]");
                    image.healthcheck = json(exec);
                }
                "ENTRYPOINT" => entrypoint = json(args),
                "CMD" => cmd = json(args),
                _ => {}
            }
        }
        image.command = [entrypoint, cmd].concat();
        image
    }
}

/// A container as the deployment files describe it.
#[derive(Debug, Default, Clone)]
pub struct Container {
    /// Which file described it, for messages.
    pub source: String,
    /// Its environment: the image's, then the deployment's.
    pub vars: BTreeMap<String, String>,
    /// Files mounted one by one (configuration, secrets), by absolute path.
    pub files: BTreeMap<PathBuf, String>,
    /// Directories mounted whole from a directory of secrets: any file in
    /// them is there.
    pub secret_dirs: Vec<PathBuf>,
    /// Directories it may write (volumes); everything else is read-only.
    pub writable: Vec<PathBuf>,
    /// Its working directory.
    pub workdir: PathBuf,
}

impl Environment for Container {
    fn vars(&self) -> Vec<(String, String)> {
        self.vars
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        self.file(path)
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
}

impl Container {
    /// A container of `image` described by `source`.
    pub fn of(image: &Image, source: &str) -> Self {
        Self {
            source: source.into(),
            vars: image.env.iter().cloned().collect(),
            workdir: image.workdir.clone(),
            ..Self::default()
        }
    }

    /// `path` as the container resolves it.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.workdir.join(path)
    }

    /// The contents of a mounted file.
    pub fn file(&self, path: &Path) -> Option<String> {
        let path = self.resolve(path);
        if let Some(text) = self.files.get(&path) {
            return Some(text.clone());
        }
        let name = path.file_name()?.to_str()?;
        self.secret_dirs
            .iter()
            .any(|dir| path.parent() == Some(dir.as_path()))
            .then(|| secret_fixture(name))
    }

    /// Whether the container may write in `dir`.
    pub fn may_write(&self, dir: &Path) -> bool {
        let dir = self.resolve(dir);
        self.writable.iter().any(|w| dir.starts_with(w))
    }

    /// The configuration file named by `AUTH_SERVER_CONFIG`.
    pub fn config_text(&self) -> String {
        let path = self
            .vars
            .get("AUTH_SERVER_CONFIG")
            .unwrap_or_else(|| panic!("{}: AUTH_SERVER_CONFIG is not set", self.source));
        self.file(Path::new(path)).unwrap_or_else(|| {
            panic!(
                "{}: {path} (AUTH_SERVER_CONFIG) is not mounted",
                self.source
            )
        })
    }

    /// The configuration the server would run with, or why it would refuse.
    pub fn try_config(&self) -> Result<Config, ConfigError> {
        Config::from_toml(&self.config_text(), self)
    }

    /// The configuration the server would run with.
    pub fn config(&self) -> Config {
        self.try_config()
            .unwrap_or_else(|e| panic!("{}: the server would refuse to start: {e}", self.source))
    }

    /// The same container without the variable `name`.
    pub fn without(&self, name: &str) -> Self {
        let mut less = self.clone();
        less.vars.remove(name);
        less
    }
}
