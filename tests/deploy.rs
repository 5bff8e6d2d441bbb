//! The deployment files against what the server reads. The Containerfile,
//! the Kubernetes manifests, deploy/compose.yaml and the systemd unit are
//! parsed and checked against the routes (`http::Route`), the command line
//! (`cli::Cli`) and the configuration (`config::Config`, reading the
//! container's environment and mounted files through `Environment`). A
//! renamed route, setting, variable or mount fails here, not in a rollout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod deployed;

use std::path::{Path, PathBuf};

use auth_server::cli::{Cli, Command, HealthRoute};
use auth_server::config::Config;
use auth_server::http::Route;
use clap::Parser;
use deployed::{Container, Image, at, get, read, scalar, secret_fixture, selects, seq, text, yaml};
use serde_norway::Value;

/// Variables the server reads that are not settings: the config file's path
/// (read by the binary before the file) and the CA bundle of the database's
/// certificate (read by the TLS client, rustls-native-certs).
const READ_OUTSIDE_CONFIG: [&str; 2] = ["AUTH_SERVER_CONFIG", "SSL_CERT_FILE"];

/// The command a container runs, as the CLI parses it.
fn command(args: &[String]) -> Command {
    Cli::try_parse_from(args)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        .command
        .unwrap_or(Command::Serve)
}

/// The route a health check asks, for a health command.
fn health_route(args: &[String], config: &Config) -> Option<Route> {
    match command(args) {
        Command::Health(health) => Route::from_path(config.base_path(), health.route.path()),
        other => panic!("{args:?} is not a health check: {other:?}"),
    }
}

/// What every container must satisfy: the server starts with this
/// environment and these mounts, reads every variable given, finds every
/// file it is told of, and writes only where it may.
fn check_what_the_server_reads(container: &Container) -> Config {
    let source = &container.source;
    let config = container.config();
    for path in [&config.tls.cert, &config.tls.key] {
        assert!(
            !path.is_empty() && container.file(Path::new(path)).is_some(),
            "{source}: TLS file {path:?} is not mounted"
        );
    }
    if config.stores_signing_keys() && config.kek.is_none() {
        let kek = &config.token.kek_file;
        assert!(
            !kek.is_empty() && container.file(Path::new(kek)).is_some(),
            "{source}: the key-encryption key file {kek:?} (token.kek_file) is not mounted"
        );
    }
    if let Some(bundle) = container.vars.get("SSL_CERT_FILE") {
        assert!(
            container.file(Path::new(bundle)).is_some(),
            "{source}: SSL_CERT_FILE {bundle} is not mounted"
        );
    }
    if config.database.url.is_empty() {
        let dir = config.database.sqlite_path.parent().unwrap();
        assert!(
            container.may_write(dir),
            "{source}: the embedded store's directory {dir:?} is not writable"
        );
    }
    for (setting, path) in [
        ("log.dir", &config.log.dir),
        ("server.pid_file", &config.server.pid_file),
    ] {
        assert!(
            path.is_empty() || container.may_write(Path::new(path).parent().unwrap()),
            "{source}: {setting} {path:?} is not writable"
        );
    }
    let effective = config.to_masked_toml();
    for name in container.vars.keys() {
        if READ_OUTSIDE_CONFIG.contains(&name.as_str()) {
            continue;
        }
        let without = container
            .without(name)
            .try_config()
            .map(|c| c.to_masked_toml());
        assert!(
            without.as_ref().ok() != Some(&effective),
            "{source}: {name} changes nothing: the server does not read it"
        );
    }
    config
}

#[test]
fn the_image_runs_the_server_as_a_user_with_its_state_in_the_volume() {
    let image = Image::parse();
    let uid: u32 = image
        .user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("numeric USER");
    assert_ne!(uid, 0, "the image must not run as root");
    assert!(matches!(command(&image.command), Command::Serve));
    let defaults = Config::default();
    assert_eq!(image.expose, [defaults.server.bind.port()]);
    assert_eq!(image.volumes, std::slice::from_ref(&image.workdir));

    let health = command(&image.healthcheck);
    assert!(
        matches!(&health, Command::Health(h) if h.route == HealthRoute::Ready),
        "{health:?}"
    );
    assert_eq!(
        health_route(&image.healthcheck, &defaults),
        Some(Route::Ready)
    );

    // The image alone, with no config file: every variable it sets is a
    // setting, and whatever the server writes lands in the volume.
    let mut bare = Container::of(&image, "Containerfile");
    bare.writable = image.volumes.clone();
    let config = Config::from_toml("", &bare).unwrap();
    assert_eq!(config.log.dir, "", "logs go to stdout only");
    assert_eq!(config.server.pid_file, "", "nothing reads a pid file");
    // The development certificate and key-encryption key are made there.
    for dir in [
        config.database.sqlite_path.parent().unwrap(),
        &config.tls.dev_cert_dir,
        &config.token.key_dir,
    ] {
        assert!(bare.may_write(dir), "{dir:?} is outside the volume");
    }
    let effective = config.to_masked_toml();
    for (name, _) in &image.env {
        let without = Config::from_toml("", &bare.without(name)).unwrap();
        assert_ne!(
            without.to_masked_toml(),
            effective,
            "{name} is not a setting"
        );
    }
}

/// The Kubernetes object of `kind` in deploy/kubernetes/.
fn kubernetes(kind: &str) -> Value {
    let dir = deployed::repo("deploy/kubernetes");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = format!(
                "deploy/kubernetes/{}",
                path.file_name().unwrap().to_str().unwrap()
            );
            let object = yaml(&name);
            if text(&object, "kind") == kind {
                found.push(object);
            }
        }
    }
    assert_eq!(found.len(), 1, "one {kind} in deploy/kubernetes");
    found.remove(0)
}

/// An entry of a ConfigMap's data (its keys hold dots: no dotted path).
fn config_map_entry<'a>(config_map: &'a Value, key: &str) -> &'a str {
    at(config_map, "data")
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {key} in the ConfigMap"))
}

/// The files a Kubernetes volume puts at `mount`.
fn mount_volume(container: &mut Container, volume: &Value, mount: &Path, config_maps: &Value) {
    let add_items =
        |container: &mut Container, source: &Value, content: &dyn Fn(&str) -> String| {
            let items = seq(source, "items");
            assert!(!items.is_empty(), "list the items mounted from {source:?}");
            for item in items {
                let path = mount.join(text(item, "path"));
                container.files.insert(path, content(text(item, "key")));
            }
        };
    let config_map = |key: &str| -> String { config_map_entry(config_maps, key).to_owned() };
    if let Some(cm) = get(volume, "configMap") {
        assert_eq!(text(cm, "name"), text(config_maps, "metadata.name"));
        add_items(container, cm, &config_map);
    } else if let Some(secret) = get(volume, "secret") {
        add_items(container, secret, &secret_fixture);
    } else if let Some(projected) = get(volume, "projected") {
        for source in seq(projected, "sources") {
            let secret = get(source, "secret").expect("projected secrets only");
            add_items(container, secret, &secret_fixture);
        }
    } else if get(volume, "emptyDir").is_some() {
        container.writable.push(mount.to_owned());
    } else {
        panic!("unexpected volume {volume:?}");
    }
}

#[test]
fn the_kubernetes_manifests_match_what_the_server_reads() {
    let image = Image::parse();
    let deployment = kubernetes("Deployment");
    let config_map = kubernetes("ConfigMap");
    let pod = at(&deployment, "spec.template.spec");
    let labels = at(&deployment, "spec.template.metadata.labels");
    let spec = at(pod, "containers.0");
    assert_eq!(seq(pod, "containers").len(), 1);
    assert_eq!(at(&deployment, "spec.replicas").as_u64(), Some(3));
    assert!(selects(
        at(&deployment, "spec.selector.matchLabels"),
        labels
    ));

    // The container as the pod spec builds it.
    let mut container = Container::of(&image, "deployment.yaml");
    if let Some(dir) = get(spec, "workingDir") {
        container.workdir = PathBuf::from(scalar(dir));
    }
    for var in seq(spec, "env") {
        let value = get(var, "value")
            .map(scalar)
            .expect("env values, not valueFrom");
        container.vars.insert(text(var, "name").to_owned(), value);
    }
    let volumes = seq(pod, "volumes");
    for mount in seq(spec, "volumeMounts") {
        let name = text(mount, "name");
        let volume = volumes
            .iter()
            .find(|v| text(v, "name") == name)
            .unwrap_or_else(|| panic!("no volume {name}"));
        if get(volume, "emptyDir").is_none() {
            assert_eq!(get(mount, "readOnly"), Some(&Value::Bool(true)), "{name}");
        }
        let path = PathBuf::from(text(mount, "mountPath"));
        mount_volume(&mut container, volume, &path, &config_map);
    }
    let config = check_what_the_server_reads(&container);
    assert_eq!(
        config_map_entry(&config_map, "config.toml"),
        read("deploy/config.toml"),
        "the ConfigMap holds deploy/config.toml"
    );
    assert!(!config.database.url.is_empty(), "replicas share PostgreSQL");

    // Ports and probes.
    let mut args = vec!["auth-server".to_owned()];
    args.extend(seq(spec, "args").iter().map(scalar));
    assert!(matches!(command(&args), Command::Serve));
    let port = at(spec, "ports.0");
    let port_number = at(port, "containerPort").as_u64().unwrap();
    assert_eq!(port_number, u64::from(config.server.bind.port()));
    assert!(image.expose.contains(&config.server.bind.port()));
    let names_the_port = |p: &Value| {
        let p = scalar(p);
        p == text(port, "name") || p == port_number.to_string()
    };
    for (probe, route) in [
        ("startupProbe", Route::Live),
        ("livenessProbe", Route::Live),
        ("readinessProbe", Route::Ready),
    ] {
        let get_ = at(spec, &format!("{probe}.httpGet"));
        assert_eq!(text(get_, "scheme"), "HTTPS", "{probe}");
        assert!(names_the_port(at(get_, "port")), "{probe}");
        assert_eq!(
            Route::from_path(config.base_path(), text(get_, "path")),
            Some(route),
            "{probe}"
        );
    }

    // Hardening and resources.
    let security = at(spec, "securityContext");
    assert_eq!(
        get(security, "readOnlyRootFilesystem"),
        Some(&Value::Bool(true))
    );
    assert_eq!(
        get(security, "allowPrivilegeEscalation"),
        Some(&Value::Bool(false))
    );
    assert!(seq(security, "capabilities.drop").contains(&Value::from("ALL")));
    for context in [security, at(pod, "securityContext")] {
        assert_ne!(get(context, "runAsNonRoot"), Some(&Value::Bool(false)));
        assert_ne!(get(context, "runAsUser").and_then(Value::as_u64), Some(0));
    }
    assert_eq!(
        get(at(pod, "securityContext"), "runAsNonRoot"),
        Some(&Value::Bool(true))
    );
    for resource in ["requests.cpu", "requests.memory", "limits.memory"] {
        assert!(
            get(spec, &format!("resources.{resource}")).is_some(),
            "{resource}"
        );
    }
    let pre_stop = get(spec, "lifecycle.preStop.sleep.seconds").map_or(0, |s| s.as_u64().unwrap());
    let unready = config.server.unready_delay_ms.div_ceil(1000);
    let grace = at(pod, "terminationGracePeriodSeconds").as_u64().unwrap();
    assert!(
        grace > pre_stop + unready + config.server.shutdown_timeout_secs,
        "the drain must end before the kubelet's SIGKILL"
    );
    assert!(
        pre_stop + unready > 0,
        "keep serving a few seconds after termination starts, while the endpoints drop the pod"
    );

    // The Service and the budget select these pods.
    let service = kubernetes("Service");
    assert!(selects(at(&service, "spec.selector"), labels));
    for p in seq(&service, "spec.ports") {
        assert!(names_the_port(at(p, "targetPort")));
    }
    let budget = kubernetes("PodDisruptionBudget");
    assert!(selects(at(&budget, "spec.selector.matchLabels"), labels));
    assert!(at(&budget, "spec.minAvailable").as_u64().unwrap() < 3);
}

#[test]
fn the_compose_file_matches_what_the_server_reads() {
    let image = Image::parse();
    let compose = yaml("deploy/compose.yaml");
    let server = at(&compose, "services.auth-server");
    let mut container = Container::of(&image, "compose.yaml");
    // Compose makes an anonymous volume for each VOLUME of the image.
    container.writable = image.volumes.clone();
    let environment = at(server, "environment")
        .as_mapping()
        .expect("environment as a map");
    for (name, value) in environment {
        container.vars.insert(scalar(name), scalar(value));
    }
    for volume in seq(server, "volumes") {
        let spec = scalar(volume);
        let mut parts = spec.split(':');
        let (source, target) = (parts.next().unwrap(), PathBuf::from(parts.next().unwrap()));
        let read_only = parts.next() == Some("ro");
        if let Some(relative) = source.strip_prefix("./") {
            assert!(read_only, "{spec}: bind mounts are read-only");
            let local = deployed::repo("deploy").join(relative);
            if local.is_file() {
                container
                    .files
                    .insert(target, read(&format!("deploy/{relative}")));
            } else {
                // A directory of secrets made by scripts/container.sh secrets.
                container.secret_dirs.push(target);
            }
        } else {
            container.writable.push(target);
        }
    }
    let config = check_what_the_server_reads(&container);

    assert_eq!(at(server, "read_only"), &Value::Bool(true));
    assert!(seq(server, "cap_drop").contains(&Value::from("ALL")));
    let mut args = vec!["auth-server".to_owned()];
    args.extend(seq(server, "command").iter().map(scalar));
    assert!(matches!(command(&args), Command::Serve));
    let mut health: Vec<String> = seq(server, "healthcheck.test").iter().map(scalar).collect();
    assert_eq!(health.remove(0), "CMD");
    assert_eq!(health_route(&health, &config), Some(Route::Ready));
    let port = scalar(at(server, "ports.0"));
    assert!(
        port.ends_with(&format!(":{}", config.server.bind.port())),
        "{port}"
    );
    let grace = text(server, "stop_grace_period")
        .trim_end_matches('s')
        .parse::<u64>()
        .unwrap();
    assert!(grace > config.server.shutdown_timeout_secs);

    // The database the URL names is the compose service, with its user,
    // database and the password file the server reads too.
    let postgres = at(&compose, "services.postgres");
    let url = url::Url::parse(&config.database.url).unwrap();
    assert!(get(&compose, &format!("services.{}", url.host_str().unwrap())).is_some());
    assert_eq!(url.username(), text(postgres, "environment.POSTGRES_USER"));
    assert_eq!(
        url.path(),
        format!("/{}", text(postgres, "environment.POSTGRES_DB"))
    );
    assert_eq!(
        text(postgres, "environment.POSTGRES_PASSWORD_FILE"),
        container.vars["DB_PASSWORD_FILE"]
    );
}

/// `Key=Value` lines of the unit's `[Service]` section (repeated keys kept).
fn unit_settings(unit: &str) -> Vec<(String, String)> {
    unit.split("\n[")
        .find(|s| s.starts_with("Service]"))
        .expect("[Service]")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn the_systemd_unit_runs_the_binary_the_deploy_scripts_swap() {
    let unit = read("deploy/auth-server.service");
    let settings = unit_settings(&unit);
    let one = |key: &str| -> &str {
        let mut values = settings.iter().filter(|(k, _)| k == key);
        let (_, value) = values.next().unwrap_or_else(|| panic!("no {key}="));
        assert!(values.next().is_none(), "one {key}=");
        value
    };
    let all = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split_whitespace())
            .collect()
    };
    let dir = Path::new(one("WorkingDirectory"));
    // scripts/swap-lib.sh runs bin/auth-server from DEPLOY_DIR.
    assert!(read("scripts/swap-lib.sh").contains("\nbin=bin/auth-server\n"));
    assert!(all("Environment").contains(&format!("DEPLOY_DIR={}", dir.display()).as_str()));
    let exec: Vec<String> = one("ExecStart")
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(Path::new(&exec[0]), dir.join("bin/auth-server"));
    assert!(matches!(command(&exec), Command::Serve));

    // config.toml in the working directory: the pid file and every
    // directory the server writes are where the unit says.
    let config =
        Config::from_toml(&read("config.toml"), &std::collections::BTreeMap::new()).unwrap();
    assert_eq!(Path::new(one("PIDFile")), dir.join(&config.server.pid_file));
    let writable = all("ReadWritePaths");
    for written in [
        Path::new("bin"),
        Path::new(&config.server.pid_file).parent().unwrap(),
        Path::new(&config.log.dir),
        config.database.sqlite_path.parent().unwrap(),
    ] {
        let path = dir.join(written);
        assert!(
            writable.iter().any(|w| path.starts_with(w)),
            "{} is not in ReadWritePaths",
            path.display()
        );
    }
    let stop: u64 = one("TimeoutStopSec").parse().unwrap();
    assert!(stop > config.server.shutdown_timeout_secs);
    assert_eq!(one("Restart"), "on-failure");
    assert!(unit.contains("scripts/deploy.sh") && unit.contains("scripts/rollback.sh"));

    verify_with_systemd(&unit, dir);
}

/// `systemd-analyze verify`, where systemd is installed: the unit with its
/// directory moved to a temporary one holding the real binary.
fn verify_with_systemd(unit: &str, dir: &Path) {
    let Ok(version) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("systemd-analyze is not installed: the unit was not verified by systemd");
        return;
    };
    assert!(version.status.success());
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("bin")).unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_auth-server"),
        root.path().join("bin/auth-server"),
    )
    .unwrap();
    let moved = unit.replace(dir.to_str().unwrap(), root.path().to_str().unwrap());
    let file = root.path().join("auth-server.service");
    std::fs::write(&file, moved).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
}
