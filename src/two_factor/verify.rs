//! The second step of a login: a challenge plus a TOTP code or a backup code → a session.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::challenge::Challenges;
use super::{backup_codes, factors, Account, CodeCheck, Purpose, Refusal};
use crate::audit::Kind;
use crate::auth::login::LoggedIn;
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

/// Completes a login. Each try uses up one of the challenge's five; a wrong code is 401
/// `invalid_code` (audited, counted as a failed login), and a challenge that is unknown,
/// expired, out of tries or already answered is 401 `challenge_expired`.
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
    let unix_now = u64::try_from(now.timestamp()).unwrap_or_default();
    let check = CodeCheck::new(who, ip, unix_now, Purpose::Login);
    let (checked, method) = match &proof {
        Proof::Totp(code) => (check.run(state, code, async |_, _| Ok(())).await, "totp"),
        Proof::Backup(code) => (spend_backup_code(state, &check, code).await, "backup_code"),
    };
    if let Err(refused) = checked {
        if attempt.is_last {
            challenges.discard(&token).await;
        }
        return Err(refused);
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
