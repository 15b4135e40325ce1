//! The request id: taken from the client's `X-Request-Id` when it is a sane token, generated
//! otherwise, and held in a task-local for the length of the request, so that log lines and
//! audit events built while serving it can name it without being handed it. Beside it the
//! task-local holds what the log lines of the request also name: the client's address and,
//! once the caller is authenticated, their user and tenant.

use std::cell::Cell;
use std::future::Future;
use std::net::IpAddr;

use uuid::Uuid;

/// The header that carries the id, both ways.
pub const HEADER: &str = "x-request-id";

/// The longest id accepted from a client.
pub const MAX_LEN: usize = 128;

tokio::task_local! {
    static CURRENT: Context;
}

/// What the log lines of one request name.
#[derive(Debug)]
pub struct Context {
    pub id: String,
    pub client: Option<IpAddr>,
    caller: Cell<Option<Caller>>,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub user: Uuid,
    pub tenant: Option<Uuid>,
}

impl Context {
    /// The caller, once the request was authenticated.
    pub fn caller(&self) -> Option<Caller> {
        self.caller.get()
    }
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

/// Runs `fut` as the request `id` from `client`.
pub async fn scope<F: Future>(id: String, client: Option<IpAddr>, fut: F) -> F::Output {
    let context = Context {
        id,
        client,
        caller: Cell::new(None),
    };
    CURRENT.scope(context, fut).await
}

/// The id of the request being served by this task, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(|c| c.id.clone()).ok()
}

/// Runs `f` on the context of the request being served by this task, if any.
pub fn with_current<R>(f: impl FnOnce(&Context) -> R) -> Option<R> {
    CURRENT.try_with(f).ok()
}

/// Records who is calling (the authentication extractor does, once it knows); outside a
/// request it does nothing.
pub fn set_caller(user: Uuid, tenant: Option<Uuid>) {
    let _ = CURRENT.try_with(|c| c.caller.set(Some(Caller { user, tenant })));
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
        let inside = scope("r-1".into(), None, async { current() }).await;
        assert_eq!(inside.as_deref(), Some("r-1"));
        assert_eq!(current(), None);
        let user = Uuid::new_v4();
        let caller = scope("r-2".into(), None, async {
            assert_eq!(with_current(Context::caller), Some(None));
            set_caller(user, None);
            with_current(Context::caller)
        })
        .await;
        assert_eq!(caller, Some(Some(Caller { user, tenant: None })));
        // Outside a request there is nothing to set.
        set_caller(user, None);
        assert_eq!(with_current(Context::caller), None);
    }
}
