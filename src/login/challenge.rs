//! Login challenges: the state between a correct password and the second factor.
//!
//! A challenge is a 256-bit random token handed to the client; the shared store (Redis, or
//! this instance's map while Redis is away) holds it under its SHA-256, so a challenge issued
//! by one instance verifies on any other. It lives `RAMPART_MFA_CHALLENGE_SECS` (5 minutes)
//! and allows [`MAX_TRIES`] tries: each try takes a number from an atomic counter *before*
//! its code is checked, so parallel guesses cannot slip past the limit.
//!
//! An account has at most one live challenge: the store keeps, per user, which challenge is
//! current (`mfa:user:<id>`, swapped atomically), and issuing one ends the one it replaces.
//! Collecting challenges by signing in again therefore buys no extra tries; what bounds the
//! guesses of an account is its login limit, which the second step applies before it checks
//! a code.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::password_step::Seen;
use crate::secret::Token;
use crate::store::SharedStore;
use crate::two_factor::Account;

/// Wrong codes a challenge survives; the try after the last wrong one finds it expired.
pub const MAX_TRIES: i64 = 5;

#[derive(Serialize, Deserialize)]
struct Stored {
    account: Account,
    expires_at: DateTime<Utc>,
    /// The credentials the password step checked. A challenge stored without them (by an
    /// older build) matches no account, so it answers as expired.
    #[serde(default)]
    seen: Seen,
}

/// A new challenge: the token (shown to the client once) and when it expires.
#[derive(Debug)]
pub struct Issued {
    pub token: Token,
    pub expires_at: DateTime<Utc>,
}

/// One try at a live challenge.
#[derive(Debug)]
pub struct Try {
    pub account: Account,
    /// What the password step saw of the account's credentials.
    pub seen: Seen,
    /// True for the last try this challenge allows.
    pub is_last: bool,
}

/// Issues and checks challenges in the shared store (built once, at start-up).
#[derive(Clone)]
pub struct Challenges {
    store: SharedStore,
    ttl: Duration,
}

fn key_of(id: &str) -> String {
    format!("mfa:{id}")
}

/// A challenge's key in the store: the SHA-256 of its token, in hex.
fn key(token: &Token) -> String {
    key_of(&token.digest_hex())
}

fn tries_key(token: &Token) -> String {
    format!("{}:tries", key(token))
}

/// Which challenge of `user` is the live one.
fn current_key(user: crate::ids::UserId) -> String {
    format!("mfa:user:{user}")
}

impl Challenges {
    pub fn new(store: SharedStore, ttl: Duration) -> Self {
        Challenges { store, ttl }
    }

    /// Starts the second step of a login for `account`, whose credentials the password step
    /// saw as `seen`, ending the challenge it had before.
    /// Two logins at once each end the one they replace, so one challenge survives.
    pub async fn issue(&self, account: &Account, seen: &Seen, now: DateTime<Utc>) -> Issued {
        let token = Token::generate();
        let expires_at = now + self.ttl;
        let stored = Stored {
            account: account.clone(),
            expires_at,
            seen: seen.clone(),
        };
        let value = serde_json::to_string(&stored).expect("challenge serializes");
        let new_id = token.digest_hex();
        self.store.put(&key_of(&new_id), &value, self.ttl).await;
        let current = current_key(account.user_id);
        if let Some(old) = self.store.swap(&current, &new_id, self.ttl).await {
            if old != new_id {
                self.store.delete(&key_of(&old), self.ttl).await;
            }
        }
        Issued { token, expires_at }
    }

    /// Takes one try at `token` at time `now`. `None` when the challenge was never issued,
    /// has expired, was used up, or has had [`MAX_TRIES`] tries already. A token from a client
    /// is [`Token::parse`]d first, so a malformed one is never looked up.
    pub async fn begin_try(&self, token: &Token, now: DateTime<Utc>) -> Option<Try> {
        let stored: Stored = serde_json::from_str(&self.store.get(&key(token)).await?).ok()?;
        if stored.expires_at <= now {
            self.discard(token).await;
            return None;
        }
        let n = self.store.incr(&tries_key(token), self.ttl).await;
        if n > MAX_TRIES {
            self.discard(token).await;
            return None;
        }
        Some(Try {
            account: stored.account,
            seen: stored.seen,
            is_last: n == MAX_TRIES,
        })
    }

    /// Ends a challenge whose answer was right, once: true only for the caller that removes it
    /// (Redis `GETDEL`, or this instance's map). Two right answers to one challenge at the
    /// same moment — a code and a backup code, or two backup codes, on two instances — open
    /// one session, not two.
    pub async fn redeem(&self, token: &Token) -> bool {
        self.store.take(&key(token)).await.is_some()
    }

    /// Ends the challenge (used, or out of tries) on every instance.
    pub async fn discard(&self, token: &Token) {
        self.store.delete(&key(token), self.ttl).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Role;
    use crate::ids::UserId;

    async fn store() -> SharedStore {
        SharedStore::connect(None, "t", crate::telemetry::logging::discard())
            .await
            .unwrap()
    }

    fn account() -> Account {
        Account {
            user_id: UserId::random(),
            tenant_id: None,
            email: "a@b.example".into(),
            role: Role::PlatformOwner,
        }
    }

    #[actix_web::test]
    async fn five_tries_then_expired() {
        let store = store().await;
        let c = Challenges::new(store, Duration::from_secs(300));
        let now = crate::timestamp::now();
        let issued = c.issue(&account(), &Seen::default(), now).await;
        for n in 1..=MAX_TRIES {
            let t = c.begin_try(&issued.token, now).await.expect("live");
            assert_eq!(t.is_last, n == MAX_TRIES);
        }
        assert!(c.begin_try(&issued.token, now).await.is_none());
    }

    #[actix_web::test]
    async fn a_new_challenge_ends_the_accounts_previous_one_only() {
        let store = store().await;
        let c = Challenges::new(store, Duration::from_secs(300));
        let now = crate::timestamp::now();
        let (me, other) = (account(), account());
        let first = c.issue(&me, &Seen::default(), now).await;
        let theirs = c.issue(&other, &Seen::default(), now).await;
        let second = c.issue(&me, &Seen::default(), now).await;
        assert!(c.begin_try(&first.token, now).await.is_none(), "replaced");
        assert!(c.begin_try(&second.token, now).await.is_some());
        assert!(c.begin_try(&theirs.token, now).await.is_some());
    }

    #[actix_web::test]
    async fn challenges_expire_and_unknown_ones_never_lived() {
        let store = store().await;
        let c = Challenges::new(store, Duration::from_secs(300));
        let now = crate::timestamp::now();
        let issued = c.issue(&account(), &Seen::default(), now).await;
        assert_eq!(issued.expires_at, now + Duration::from_secs(300));
        let later = issued.expires_at + chrono::Duration::seconds(1);
        assert!(c.begin_try(&issued.token, later).await.is_none());
        // Once found expired it is gone for good, even at an earlier clock.
        assert!(c.begin_try(&issued.token, now).await.is_none());
        assert!(c.begin_try(&Token::generate(), now).await.is_none());
        // A malformed token is not even a `Token`.
        assert!(Token::parse("short").is_none());
    }
}
