//! The Dockerfile: its stages, user, listen address, health check and entry point.

use super::{read, BINARY};

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
    assert!(text.contains(&format!(
        "COPY --from=build /src/target/release/rampart {BINARY}"
    )));
    let health = text
        .split("HEALTHCHECK")
        .nth(1)
        .expect("a HEALTHCHECK")
        .split("ENTRYPOINT")
        .next()
        .unwrap();
    assert!(
        health.contains("/healthz") && health.contains("bash"),
        "{health}"
    );
    assert_eq!(
        starting("ENTRYPOINT"),
        [format!("ENTRYPOINT [\"{BINARY}\"]")]
    );
}
