//! The Prometheus alert rules: their syntax (`promtool check rules`) and their behaviour on
//! series that should and should not fire each alert (`promtool test rules` on
//! `alerts_test.yml`). promtool comes with Debian's `prometheus` package, which
//! `scripts/deps.sh prometheus` installs. That the rules' metrics exist in a real scrape is
//! checked with the dashboard's, in the integration tests (`tests/it/metrics.rs`).

use std::process::Command;

use serde_yaml_ng::Value;

use super::{available, deploy, read};

/// The alerts the deployment documents, each with its severity.
const ALERTS: [(&str, &str); 5] = [
    ("RampartBruteForce", "critical"),
    ("RampartCrossTenantProbing", "critical"),
    ("RampartAuditUnavailable", "critical"),
    ("RampartRedisFallback", "warning"),
    ("RampartBanSurge", "warning"),
];

fn promtool(args: &[&str]) -> String {
    assert!(
        available("promtool", &["--version"]),
        "promtool is missing: run scripts/deps.sh prometheus"
    );
    let out = Command::new("promtool")
        .args(args)
        .current_dir(deploy("prometheus"))
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_alert_rules_are_valid_and_their_unit_tests_pass() {
    let checked = promtool(&["check", "rules", "alerts.yml"]);
    assert!(checked.contains("SUCCESS: 5 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "alerts_test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn every_documented_alert_is_there_with_its_severity_and_is_unit_tested() {
    let rules: Value = serde_yaml_ng::from_str(&read("prometheus/alerts.yml")).expect("YAML");
    let found: Vec<(String, String)> = rules["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("rules").iter())
        .map(|r| {
            let name = r["alert"].as_str().expect("alert name").to_string();
            let severity = r["labels"]["severity"].as_str().expect("severity");
            (name, severity.to_string())
        })
        .collect();
    let want: Vec<(String, String)> = ALERTS
        .iter()
        .map(|(a, s)| (a.to_string(), s.to_string()))
        .collect();
    assert_eq!(found, want);
    let tests = read("prometheus/alerts_test.yml");
    for (alert, _) in ALERTS {
        // Each alert is expected both quiet and firing somewhere in the unit tests.
        assert!(
            tests.matches(&format!("alertname: {alert}\n")).count() >= 2,
            "{alert} is not tested firing and quiet"
        );
    }
}
