//! The systemd unit: a parser of its sections and keys, and `systemd-analyze` when installed.

use std::collections::BTreeSet;
use std::process::Command;

use super::{available, deploy, read, BINARY, SECRET_VARS};

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
            "Type",
            "ExecStart",
            "ExecReload",
            "Restart",
            "RestartSec",
            "KillSignal",
            "TimeoutStopSec",
            "DynamicUser",
            "User",
            "Group",
            "StateDirectory",
            "StateDirectoryMode",
            "LogsDirectory",
            "LogsDirectoryMode",
            "WorkingDirectory",
            "UMask",
            "EnvironmentFile",
            "Environment",
            "LoadCredential",
            "NoNewPrivileges",
            "CapabilityBoundingSet",
            "AmbientCapabilities",
            "ProtectSystem",
            "ProtectHome",
            "PrivateTmp",
            "PrivateDevices",
            "ProtectKernelTunables",
            "ProtectKernelModules",
            "ProtectKernelLogs",
            "ProtectControlGroups",
            "ProtectClock",
            "ProtectHostname",
            "ProtectProc",
            "RestrictAddressFamilies",
            "RestrictNamespaces",
            "RestrictRealtime",
            "RestrictSUIDSGID",
            "LockPersonality",
            "MemoryDenyWriteExecute",
            "RemoveIPC",
            "SystemCallArchitectures",
            "SystemCallFilter",
            "SystemCallErrorNumber",
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
        assert!(
            known.1.contains(&key.as_str()),
            "unknown key [{section}] {key}"
        );
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
    // `systemctl reload` (logrotate's postrotate) reopens the audit log.
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID");
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
    assert!(
        env.contains(&"RAMPART_DATA_DIR=/var/lib/rampart"),
        "{env:?}"
    );
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
