//! The logrotate example: it renames (never `copytruncate`, which would lose lines and cut the
//! chain), lets the server create the new file, keeps the newest rotated file uncompressed, and
//! signals the server; `logrotate --debug` (installed by scripts/deps.sh) accepts it.

use std::process::Command;

use super::{available, read};

const CONFIG: &str = "logrotate/rampart";
const UNIT_LOG: &str = "/var/log/rampart/security_audit.log";

/// The directives of the one block, trimmed, without comments.
fn directives(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_logrotate_example_renames_and_signals_the_server() {
    let text = read(CONFIG);
    let unit = read("systemd/rampart.service");
    assert!(
        unit.contains(&format!("RAMPART_AUDIT_LOG={UNIT_LOG}")),
        "the example rotates the unit's audit log"
    );
    let d = directives(&text);
    assert_eq!(
        d.first().map(String::as_str),
        Some(&*format!("{UNIT_LOG} {{"))
    );
    for needed in ["nocreate", "delaycompress", "postrotate", "endscript"] {
        assert!(d.iter().any(|l| l == needed), "missing {needed}");
    }
    assert!(
        !d.iter().any(|l| l == "copytruncate"),
        "copytruncate cuts the chain"
    );
    assert!(
        d.iter()
            .any(|l| l.starts_with("systemctl reload rampart.service")),
        "postrotate must signal the server"
    );
}

#[test]
fn logrotate_accepts_the_example() {
    if !available("logrotate", &["--version"]) {
        eprintln!("logrotate is not installed (scripts/deps.sh installs it); skipped");
        return;
    }
    let dir = std::env::temp_dir().join(format!("rampart-logrotate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("security_audit.log");
    std::fs::write(&log, "{}\n").unwrap();
    let config = dir.join("rampart");
    std::fs::write(
        &config,
        read(CONFIG).replace(UNIT_LOG, &log.display().to_string()),
    )
    .unwrap();
    // --debug parses and plans the rotation without touching files or running scripts.
    let out = Command::new("logrotate")
        .arg("--debug")
        .arg("--state")
        .arg(dir.join("state"))
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
    assert!(stderr.contains(&log.display().to_string()), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}
