//! The second step of a login: a challenge plus a TOTP code or a backup code → a session.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::challenge::Challenges;
use super::{backup_codes, factors, Account, CodeCheck, Purpose, Refusal};
use crate::audit::Kind;
use crate::auth::login::{self, LoggedIn};
use crate::auth::SecondFactor;
use crate::error::ApiError;
use crate::state::AppState;
use crate::users::User;

/// The body of `POST /api/v1/auth/2fa/verify`: the challenge and exactly one of the two.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    pub challenge: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub backup_code: Option<String>,
}

impl std::fmt::Debug for VerifyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifyBody(..)")
    }
}

enum Proof {
    Totp(String),
    Backup(String),
}

impl VerifyBody {
    fn proof(self) -> Result<(String, Proof), ApiError> {
        match (self.code, self.backup_code) {
            (Some(code), None) => Ok((self.challenge, Proof::Totp(code))),
            (None, Some(code)) => Ok((self.challenge, Proof::Backup(code))),
            _ => Err(ApiError::BadRequest(
                "send either code or backup_code, not both".into(),
            )),
        }
    }
}

/// Completes a login. Each try uses up one of the challenge's five, and is counted as a login
/// attempt of the challenge's account and of `ip` *before* its code is checked: over either
/// login limit it is 429 `too_many_attempts` and no code is checked. A wrong code is 401
/// `invalid_code` (audited; the attempt stays counted as a failed login), a right one gives
/// the attempt back. A challenge that is unknown, expired, out of tries, replaced by a newer
/// login or already answered is 401 `challenge_expired`.
pub async fn verify_login(
    state: &AppState,
    body: VerifyBody,
    ip: IpAddr,
    now: DateTime<Utc>,
) -> Result<LoggedIn, ApiError> {
    let (token, proof) = body.proof()?;
    let challenges = Challenges::new(&state.store, state.config.limits.mfa_challenge_ttl());
    let attempt = challenges
        .begin_try(&token, now)
        .await
        .ok_or(ApiError::ChallengeExpired)?;
    let who = &attempt.account;
    let reserved = state
        .limiter
        .reserve_login(ip, &who.email)
        .await?
        .map_err(ApiError::TooManyAttempts)?;
    let unix_now = u64::try_from(now.timestamp()).unwrap_or_default();
    let check = CodeCheck::new(who, ip, unix_now, Purpose::Login);
    let (checked, method) = match &proof {
        Proof::Totp(code) => (check.run(state, code, async |_, _| Ok(())).await, "totp"),
        Proof::Backup(code) => (spend_backup_code(state, &check, code).await, "backup_code"),
    };
    match checked {
        Ok(()) => state.limiter.refund_login(reserved).await?,
        Err(refused @ ApiError::InvalidCode(_)) => {
            if attempt.is_last {
                challenges.discard(&token).await;
            }
            login::keep_failure(state, ip, &who.email, reserved).await;
            return Err(refused);
        }
        // Not an answer to the challenge (the database or the trail failed): not counted.
        Err(other) => {
            state.limiter.refund_login(reserved).await?;
            return Err(other);
        }
    }
    if !challenges.redeem(&token).await {
        // Another right answer to this challenge was accepted first; its factor is spent
        // all the same (the step, or the backup code).
        return Err(ApiError::ChallengeExpired);
    }
    let event = who.event(Kind::TwofaVerified, ip, json!({"method": method}));
    state.audit.record(event).await?;
    open_session(state, who).await
}

/// Spends a backup code of the challenge's user, or refuses (audited and counted).
async fn spend_backup_code(
    state: &AppState,
    check: &CodeCheck<'_>,
    input: &str,
) -> Result<(), ApiError> {
    let who = check.who;
    let Some(code) = backup_codes::normalize(input) else {
        return Err(check.reject(state, Refusal::Wrong, "backup_code").await);
    };
    let hash = backup_codes::CodeHasher::new(&state.master_key).hash(who.user_id, &code);
    let spent = state
        .db
        .in_scope(&who.scope(), async |c| {
            factors::spend_backup_code(c, who.user_id, &hash).await
        })
        .await?;
    if !spent {
        return Err(check.reject(state, Refusal::Wrong, "backup_code").await);
    }
    let event = who.event(Kind::TwofaBackupCodeUsed, check.ip, json!({}));
    state.audit.record(event).await?;
    Ok(())
}

async fn open_session(state: &AppState, who: &Account) -> Result<LoggedIn, ApiError> {
    let issued = state
        .sessions
        .issue(
            who.user_id,
            who.tenant_id,
            &who.email,
            who.role,
            SecondFactor::Verified,
        )
        .await;
    Ok(LoggedIn {
        token: issued.token,
        expires_at: issued.expires_at,
        user: User {
            id: who.user_id,
            email: who.email.clone(),
            role: who.role,
            tenant_id: who.tenant_id,
        },
        enrollment_required: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::test_json;
    use proptest::prelude::*;

    /// What a verify body must be: `challenge` and exactly one of `code`, `backup_code`, all
    /// strings, nothing else (`null` counts as absent for the two optional fields).
    fn accepted(v: &serde_json::Value) -> bool {
        let Some(o) = test_json::as_fields(v, &["challenge", "code", "backup_code"]) else {
            return false;
        };
        let known = ["challenge", "code", "backup_code"];
        let optional = |k: &str| match o.get(k) {
            None | Some(serde_json::Value::Null) => Some(false),
            Some(serde_json::Value::String(_)) => Some(true),
            Some(_) => None,
        };
        o.keys().all(|k| known.contains(&k.as_str()))
            && o.get("challenge").is_some_and(|c| c.is_string())
            && matches!(
                (optional("code"), optional("backup_code")),
                (Some(true), Some(false)) | (Some(false), Some(true))
            )
    }

    proptest! {
        /// Any JSON yields a proof exactly when it is one the contract accepts; the rest is a
        /// parser refusal or 400 `bad_request`, never a panic.
        #[test]
        fn verify_bodies_yield_a_proof_exactly_when_accepted(
            v in prop_oneof![test_json::value(), test_json::object()]
        ) {
            let proof = serde_json::from_str::<VerifyBody>(&v.to_string())
                .map_err(|_| ApiError::BadRequest(String::new()))
                .and_then(VerifyBody::proof);
            match proof {
                Ok(_) => prop_assert!(accepted(&v)),
                Err(e) => {
                    prop_assert!(!accepted(&v));
                    prop_assert_eq!(e.code(), "bad_request");
                }
            }
        }
    }
}
