//! The deploy files (`deploy/`) checked without deploying: the systemd unit's syntax and
//! hardening (with `systemd-analyze` when it is installed, and always with a small parser), the
//! compose file's services and secrets (and its schema with `docker compose` or `docker-compose`
//! when one is installed), and the Dockerfile's essentials. Building the image needs a Docker
//! engine and its base images, which the tests do not have.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;

const BINARY: &str = "/usr/local/bin/rampart";
/// The variables that carry secrets: only their `*_FILE` variants may appear.
const SECRET_VARS: [&str; 4] = [
    "DATABASE_URL",
    "REDIS_URL",
    "RAMPART_MASTER_KEY",
    "POSTGRES_PASSWORD",
];

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(deploy(path)).unwrap_or_else(|e| panic!("deploy/{path}: {e}"))
}

fn available(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

// ---------------------------------------------------------------- systemd

/// `(section, key, value)` for each setting of a unit file; panics on a line that is none of
/// a section header, a setting, a comment or blank.
fn unit_settings(text: &str) -> Vec<(String, String, String)> {
    let mut section = None;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_string());
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not key=value: {line}", n + 1));
        assert!(
            !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric()),
            "line {}: bad key {key:?}",
            n + 1
        );
        let section = section
            .clone()
            .unwrap_or_else(|| panic!("line {}: setting before any section", n + 1));
        out.push((section, key.to_string(), value.trim().to_string()));
    }
    out
}

/// The keys the unit may use, by section: a misspelt key is caught without systemd.
const UNIT_KEYS: &[(&str, &[&str])] = &[
    ("Unit", &["Description", "After", "Wants", "Documentation"]),
    (
        "Service",
        &[
            "Type", "ExecStart", "Restart", "RestartSec", "KillSignal", "TimeoutStopSec",
            "DynamicUser", "User", "Group", "StateDirectory", "StateDirectoryMode",
            "LogsDirectory", "LogsDirectoryMode", "WorkingDirectory", "UMask",
            "EnvironmentFile", "Environment", "LoadCredential", "NoNewPrivileges",
            "CapabilityBoundingSet", "AmbientCapabilities", "ProtectSystem", "ProtectHome",
            "PrivateTmp", "PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules",
            "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock", "ProtectHostname",
            "ProtectProc", "RestrictAddressFamilies", "RestrictNamespaces", "RestrictRealtime",
            "RestrictSUIDSGID", "LockPersonality", "MemoryDenyWriteExecute", "RemoveIPC",
            "SystemCallArchitectures", "SystemCallFilter", "SystemCallErrorNumber",
            "LimitNOFILE",
        ],
    ),
    ("Install", &["WantedBy"]),
];

#[test]
fn the_systemd_unit_is_hardened_and_takes_its_secrets_as_credentials() {
    let settings = unit_settings(&read("systemd/rampart.service"));
    for (section, key, _) in &settings {
        let known = UNIT_KEYS
            .iter()
            .find(|(s, _)| s == section)
            .unwrap_or_else(|| panic!("unknown section [{section}]"));
        assert!(known.1.contains(&key.as_str()), "unknown key [{section}] {key}");
    }
    let values = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(s, k, _)| s == "Service" && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
    };
    let one = |key: &str| -> &str {
        match values(key).as_slice() {
            [v] => v,
            other => panic!("{key}: expected one value, got {other:?}"),
        }
    };
    assert_eq!(one("ExecStart"), format!("{BINARY} serve"));
    assert!(one("DynamicUser") == "yes" || !values("User").is_empty());
    for (key, want) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("CapabilityBoundingSet", ""),
        ("StateDirectory", "rampart"),
        ("LogsDirectory", "rampart"),
    ] {
        assert_eq!(one(key), want, "{key}");
    }
    assert_eq!(values("SystemCallFilter").first(), Some(&"@system-service"));
    assert!(!values("EnvironmentFile").is_empty());

    let env: Vec<&str> = values("Environment");
    // The data and audit directories are the ones systemd creates and lets the service write.
    assert!(env.contains(&"RAMPART_DATA_DIR=/var/lib/rampart"), "{env:?}");
    assert!(
        env.iter()
            .any(|e| e.starts_with("RAMPART_AUDIT_LOG=/var/log/rampart/")),
        "{env:?}"
    );
    let credentials: BTreeSet<&str> = values("LoadCredential")
        .iter()
        .map(|c| c.split_once(':').expect("LoadCredential=name:path").0)
        .collect();
    for (var, credential) in [
        ("DATABASE_URL", "database_url"),
        ("REDIS_URL", "redis_url"),
        ("RAMPART_MASTER_KEY", "master_key"),
    ] {
        assert!(credentials.contains(credential), "{credential}");
        let file_setting = format!("{var}_FILE=%d/{credential}");
        assert!(env.contains(&file_setting.as_str()), "{file_setting}");
    }
    for e in &env {
        let name = e.split_once('=').map_or(*e, |(n, _)| n);
        assert!(!SECRET_VARS.contains(&name), "a secret inline: {name}");
    }
}

/// `systemd-analyze verify` (syntax, values, the unit's dependencies) and `security` (the
/// exposure score), when systemd is installed. Only the missing binary may be reported: the
/// unit names where it is installed, not where the build put it.
#[test]
fn systemd_analyze_accepts_the_unit() {
    if !available("systemd-analyze", &["--version"]) {
        eprintln!("systemd-analyze is not installed: the unit is checked by the parser only");
        return;
    }
    let unit = deploy("systemd/rampart.service");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let missing_binary = format!("Command {BINARY} is not executable");
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains(&missing_binary))
        .collect();
    assert!(complaints.is_empty(), "systemd-analyze verify: {stderr}");
    assert!(
        out.status.success() || stderr.contains(&missing_binary),
        "systemd-analyze verify failed: {stderr}"
    );

    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exposure above 2.0: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------- compose

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
    assert_eq!(used, keys(declared), "declared secrets and used ones differ");

    let server = &services["rampart"];
    let env = &server["environment"];
    for (var, secret) in [
        ("DATABASE_URL_FILE", "database_url"),
        ("REDIS_URL_FILE", "redis_url"),
        ("RAMPART_MASTER_KEY_FILE", "master_key"),
    ] {
        assert_eq!(env[var].as_str(), Some(format!("/run/secrets/{secret}").as_str()));
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

// ---------------------------------------------------------------- Dockerfile

#[test]
fn the_image_builds_in_two_stages_and_runs_unprivileged() {
    let text = read("Dockerfile");
    let instructions: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let starting = |word: &str| -> Vec<&str> {
        instructions
            .iter()
            .copied()
            .filter(|l| l.starts_with(word))
            .collect()
    };
    let stages = starting("FROM ");
    assert_eq!(stages.len(), 2, "{stages:?}");
    assert!(stages[0].starts_with("FROM rust:") && stages[0].ends_with(" AS build"));
    assert!(stages[1].starts_with("FROM debian:") && stages[1].contains("-slim"));
    let user = starting("USER ");
    assert_eq!(user, ["USER rampart"]);
    assert!(text.contains("RAMPART_BIND=0.0.0.0:8080"));
    assert!(text.contains(&format!("COPY --from=build /src/target/release/rampart {BINARY}")));
    let health = text
        .split("HEALTHCHECK")
        .nth(1)
        .expect("a HEALTHCHECK")
        .split("ENTRYPOINT")
        .next()
        .unwrap();
    assert!(health.contains("/healthz") && health.contains("bash"), "{health}");
    assert_eq!(starting("ENTRYPOINT"), [format!("ENTRYPOINT [\"{BINARY}\"]")]);
}
