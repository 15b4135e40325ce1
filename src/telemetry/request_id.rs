//! The request id: taken from the client's `X-Request-Id` when it is a sane token, generated
//! otherwise, and held in a task-local for the length of the request, so that log lines and
//! audit events built while serving it can name it without being handed it.

use std::future::Future;

/// The header that carries the id, both ways.
pub const HEADER: &str = "x-request-id";

/// The longest id accepted from a client.
pub const MAX_LEN: usize = 128;

tokio::task_local! {
    static CURRENT: String;
}

/// The client's id when it is 1–128 characters of `[A-Za-z0-9._-]`, else a new UUID.
pub fn accept_or_generate(presented: Option<&str>) -> String {
    match presented {
        Some(id) if is_sane(id) => id.to_string(),
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

fn is_sane(id: &str) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Runs `fut` as the request `id`.
pub async fn scope<F: Future>(id: String, fut: F) -> F::Output {
    CURRENT.scope(id, fut).await
}

/// The id of the request being served by this task, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_kept_and_others_replaced() {
        assert_eq!(accept_or_generate(Some("abc.DEF_1-2")), "abc.DEF_1-2");
        let long = "a".repeat(MAX_LEN);
        assert_eq!(accept_or_generate(Some(&long)), long);
        for bad in ["", "a b", "a\nb", "é", "a/b", &"a".repeat(MAX_LEN + 1)] {
            let got = accept_or_generate(Some(bad));
            assert_ne!(got, bad);
            assert!(uuid::Uuid::parse_str(&got).is_ok(), "{got}");
        }
        assert!(uuid::Uuid::parse_str(&accept_or_generate(None)).is_ok());
    }

    #[actix_web::test]
    async fn current_is_set_only_inside_the_scope() {
        assert_eq!(current(), None);
        let inside = scope("r-1".into(), async { current() }).await;
        assert_eq!(inside.as_deref(), Some("r-1"));
        assert_eq!(current(), None);
    }
}
