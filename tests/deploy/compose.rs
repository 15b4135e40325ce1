//! The compose file: its services and secrets, read with a YAML parser, and its schema with
//! Compose when installed.

use std::collections::BTreeSet;
use std::process::Command;

use serde_yaml_ng::Value;

use super::{available, deploy, read, SECRET_VARS};

fn compose() -> Value {
    serde_yaml_ng::from_str(&read("compose.yaml")).expect("compose.yaml is YAML")
}

fn keys(map: &Value) -> BTreeSet<String> {
    map.as_mapping()
        .expect("a mapping")
        .keys()
        .map(|k| k.as_str().expect("string keys").to_string())
        .collect()
}

fn strings(list: &Value) -> BTreeSet<String> {
    list.as_sequence()
        .expect("a list")
        .iter()
        .map(|v| v.as_str().expect("names").to_string())
        .collect()
}

#[test]
fn compose_runs_the_server_with_postgres_and_redis_and_secrets_from_files() {
    let doc = compose();
    let services = &doc["services"];
    assert_eq!(
        keys(services),
        BTreeSet::from(["rampart", "postgres", "redis"].map(String::from))
    );
    assert!(services["postgres"]["image"]
        .as_str()
        .is_some_and(|i| i.starts_with("postgres:15")));
    assert!(services["redis"]["image"]
        .as_str()
        .is_some_and(|i| i.starts_with("redis:7")));

    // Every declared secret comes from a file, and every secret a service takes is declared.
    let declared = &doc["secrets"];
    for name in keys(declared) {
        let secret = &declared[name.as_str()];
        assert_eq!(keys(secret), BTreeSet::from(["file".to_string()]), "{name}");
        assert!(secret["file"].as_str().unwrap().starts_with("./secrets/"));
    }
    let mut used = BTreeSet::new();
    for service in keys(services) {
        let service = &services[service.as_str()];
        let taken = match &service["secrets"] {
            Value::Null => BTreeSet::new(),
            list => strings(list),
        };
        for (var, value) in service["environment"].as_mapping().into_iter().flatten() {
            let var = var.as_str().unwrap();
            let value = match value {
                Value::String(s) => s.clone(),
                other => serde_yaml_ng::to_string(other).unwrap(),
            };
            assert!(!SECRET_VARS.contains(&var), "{var} inline; use {var}_FILE");
            assert!(!looks_secret(&value), "{var} looks like a secret: {value}");
            if let Some(name) = value.strip_prefix("/run/secrets/") {
                assert!(var.ends_with("_FILE"), "{var}");
                assert!(taken.contains(name), "{var} reads {name}, not given to it");
            }
        }
        used.extend(taken);
    }
    assert_eq!(
        used,
        keys(declared),
        "declared secrets and used ones differ"
    );

    let server = &services["rampart"];
    let env = &server["environment"];
    for (var, secret) in [
        ("DATABASE_URL_FILE", "database_url"),
        ("REDIS_URL_FILE", "redis_url"),
        ("RAMPART_MASTER_KEY_FILE", "master_key"),
    ] {
        assert_eq!(
            env[var].as_str(),
            Some(format!("/run/secrets/{secret}").as_str())
        );
    }
    let depends = keys(&server["depends_on"]);
    assert!(depends.contains("postgres") && depends.contains("redis"));
}

/// A URL with credentials, or something as long as base64 of a 32-byte key with no spaces.
fn looks_secret(value: &str) -> bool {
    let credentials = value
        .split_once("://")
        .is_some_and(|(_, rest)| rest.split('/').next().unwrap_or("").contains('@'));
    let key_like = value.len() >= 40
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c));
    credentials || key_like
}

#[test]
fn the_secret_detector_sees_inline_secrets() {
    assert!(looks_secret("postgres://rampart:pw@postgres:5432/rampart"));
    assert!(looks_secret("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="));
    assert!(!looks_secret("/run/secrets/database_url"));
    assert!(!looks_secret("redis://redis:6379/0"));
}

/// The compose file's schema, with whichever Compose is installed.
#[test]
fn compose_accepts_the_file() {
    let file = deploy("compose.yaml");
    let run = |program: &str, args: &[&str]| {
        let out = Command::new(program)
            .args(args)
            .arg("-f")
            .arg(&file)
            .args(["config", "-q"])
            .output()
            .expect("compose runs");
        assert!(
            out.status.success(),
            "{program} config: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    if available("docker", &["compose", "version"]) {
        run("docker", &["compose"]);
    } else if available("docker-compose", &["version"]) {
        run("docker-compose", &[]);
    } else {
        eprintln!("no docker compose: compose.yaml is checked by the parser only");
    }
}
