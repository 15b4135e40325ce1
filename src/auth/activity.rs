//! When a session was last used, kept beside it under its own small key
//! (`session_seen:<session id>`, an RFC 3339 time living as long as the session).
//!
//! The hot path stays as cheap as it was: resolving a token adds no store round trip, except
//! that an instance records a session's use at most once every [`SEEN_EVERY`] (one `SET` of the
//! small key; the session record itself is never rewritten, so this cannot race a change of
//! it). The granularity is therefore about a minute: `last_seen_at` may lag the latest request
//! by up to [`SEEN_EVERY`], and with several instances each records at most once per interval.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{Session, SessionId, SessionStore};

/// The most often one instance records that one session was used.
pub const SEEN_EVERY: Duration = Duration::from_secs(60);
/// The most bytes of a client's `User-Agent` a session keeps.
pub const MAX_USER_AGENT_BYTES: usize = 256;
/// Past this many remembered sessions, an instance forgets those it recorded long enough ago.
const TOUCHED_PRUNE_AT: usize = 4096;

/// `ua` cut to at most [`MAX_USER_AGENT_BYTES`], on a character boundary.
pub fn cut_user_agent(mut ua: String) -> String {
    if ua.len() > MAX_USER_AGENT_BYTES {
        let mut end = MAX_USER_AGENT_BYTES;
        while !ua.is_char_boundary(end) {
            end -= 1;
        }
        ua.truncate(end);
    }
    ua
}

fn seen_key(id: &SessionId) -> String {
    format!("session_seen:{}", id.as_str())
}

impl SessionStore {
    /// The same store, recording uses at most every `every` (tests use a short interval).
    pub fn with_seen_every(mut self, every: Duration) -> SessionStore {
        self.seen_every = every;
        self
    }

    /// Remembers that this instance recorded the use of `id` now. False when it already did
    /// within [`SEEN_EVERY`] (then nothing is to be written).
    pub(super) fn note_touched(&self, id: &SessionId) -> bool {
        let now = Instant::now();
        let mut touched = self.touched.lock().expect("touched lock");
        if let Some(at) = touched.get(id.as_str()) {
            if now.duration_since(*at) < self.seen_every {
                return false;
            }
        }
        if touched.len() >= TOUCHED_PRUNE_AT {
            let every = self.seen_every;
            touched.retain(|_, at| now.duration_since(*at) < every);
        }
        touched.insert(id.as_str().to_string(), now);
        true
    }

    /// Records that the live `session` (`id`) is being used, unless this instance did so
    /// within [`SEEN_EVERY`].
    pub(super) async fn seen(&self, id: &SessionId, session: &Session) {
        if !self.note_touched(id) {
            return;
        }
        let now = crate::timestamp::now();
        let remaining = (session.expires_at - now).to_std().unwrap_or_default();
        if remaining.is_zero() {
            return;
        }
        let at = crate::timestamp::format(now);
        self.store.put(&seen_key(id), &at, remaining).await;
    }

    /// When `id` was last used, as recorded (`None`: not since it was opened).
    pub(super) async fn last_seen(&self, id: &SessionId) -> Option<DateTime<Utc>> {
        let text = self.store.get(&seen_key(id)).await?;
        DateTime::parse_from_rfc3339(&text)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Drops what is recorded about the use of `id` (it ended).
    pub(super) async fn forget_seen(&self, id: &SessionId) {
        self.touched
            .lock()
            .expect("touched lock")
            .remove(id.as_str());
        self.store.delete(&seen_key(id), self.ttl()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{NewSession, SecondFactor};
    use crate::ids::{Role, UserId};
    use crate::store::SharedStore;

    async fn store(every: Duration) -> SessionStore {
        let shared = SharedStore::connect(None, "t", crate::telemetry::logging::discard())
            .await
            .unwrap();
        SessionStore::new(shared, Duration::from_secs(600)).with_seen_every(every)
    }

    fn new_session(user: UserId, ua: &str) -> NewSession {
        NewSession {
            user_id: user,
            tenant_id: None,
            email: "a@b.example".into(),
            role: Role::TenantStaff,
            second_factor: SecondFactor::PasswordOnly,
            password_change_required: false,
            ip: None,
            user_agent: Some(ua.into()),
        }
    }

    #[actix_web::test]
    async fn a_use_is_recorded_at_most_once_per_interval() {
        let slow = store(SEEN_EVERY).await;
        let issued = slow.issue(new_session(UserId::random(), "ua")).await;
        let id = SessionId::of_token(&issued.token);
        for _ in 0..3 {
            assert!(slow.resolve(&issued.token).await.is_some());
        }
        // Opening counted as a use: nothing written within the interval.
        assert_eq!(slow.last_seen(&id).await, None);

        let fast = store(Duration::ZERO).await;
        let issued = fast.issue(new_session(UserId::random(), "ua")).await;
        let id = SessionId::of_token(&issued.token);
        let before = crate::timestamp::now();
        assert!(fast.resolve(&issued.token).await.is_some());
        let seen = fast.last_seen(&id).await.expect("recorded");
        assert!(seen >= before - chrono::Duration::milliseconds(1));
    }

    #[test]
    fn user_agents_are_cut_on_a_character_boundary() {
        let long = "é".repeat(200);
        let cut = cut_user_agent(long);
        assert!(cut.len() <= MAX_USER_AGENT_BYTES && cut.len() >= MAX_USER_AGENT_BYTES - 1);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(cut_user_agent("curl/8".into()), "curl/8");
    }
}
