//! The second step of a sign-in: a challenge plus a TOTP code or a backup code → a session.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::password_step::{LoggedIn, Recheck, Seen};
use super::{Login, LoginError};
use crate::audit::{EventActor, Kind};
use crate::auth::own_sessions::end_oldest_beyond_cap;
use crate::auth::{NewSession, SecondFactor};
use crate::secret::Token;
use crate::two_factor::{Account, Proof, TwoFactorError};
use crate::users::User;

/// The body of `POST /api/v1/auth/2fa/verify`: the challenge and exactly one of the two.
/// Nothing of it prints.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    #[schema(value_type = String)]
    pub challenge: SecretString,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub code: Option<SecretString>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub backup_code: Option<SecretString>,
}

impl VerifyBody {
    fn proof(self) -> Result<(SecretString, Proof), LoginError> {
        match (self.code, self.backup_code) {
            (Some(code), None) => Ok((self.challenge, Proof::Totp(code))),
            (None, Some(code)) => Ok((self.challenge, Proof::BackupCode(code))),
            _ => Err(LoginError::AmbiguousProof),
        }
    }
}

impl Login {
    /// Completes a login. Each try uses up one of the challenge's five, and is counted as a
    /// login attempt of the challenge's account and of `ip` *before* its code is checked: over
    /// either login limit it is `TooManyAttempts` and no code is checked. A wrong code is
    /// `InvalidCode` (audited; the attempt stays counted as a failed login), a right one gives
    /// the attempt back. A challenge that is malformed, unknown, expired, out of tries,
    /// replaced by a newer login or already answered is `ChallengeExpired`.
    /// `user_agent` is the client's, kept with the session it opens.
    /// Every attempt is counted by its outcome.
    pub async fn verify_second_factor(
        &self,
        body: VerifyBody,
        ip: IpAddr,
        user_agent: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<LoggedIn, LoginError> {
        let result = self.second_step(body, ip, user_agent, now).await;
        let outcome = result
            .as_ref()
            .map_or_else(LoginError::outcome, |_| "success");
        self.metrics.login("second_factor", outcome);
        result
    }

    async fn second_step(
        &self,
        body: VerifyBody,
        ip: IpAddr,
        user_agent: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<LoggedIn, LoginError> {
        let (challenge, proof) = body.proof()?;
        let token = Token::parse(challenge.expose_secret()).ok_or(LoginError::ChallengeExpired)?;
        let attempt = self
            .challenges
            .begin_try(&token, now)
            .await
            .ok_or(LoginError::ChallengeExpired)?;
        let who = &attempt.account;
        // The account as it stands now: disabled since the password step changes what this
        // step may open, and a password reset or changed, or a second factor removed or
        // reset, since then ends the sign-in (the password it checked, or the factor it
        // asked for, is no longer the account's).
        let current = self
            .db
            .login_lookup(&who.email)
            .await?
            .filter(|r| r.id == who.user_id.as_uuid())
            .ok_or(LoginError::ChallengeExpired)?;
        self.refuse_closed(&current, ip).await?;
        if Seen::of(&current) != attempt.seen {
            self.challenges.discard(&token).await;
            return Err(LoginError::ChallengeExpired);
        }
        let reserved = self
            .limiter
            .reserve_login(ip, &who.email)
            .await?
            .map_err(LoginError::TooManyAttempts)?;
        let unix_now = crate::timestamp::unix_secs(now);
        match self
            .two_factor
            .check_sign_in(who, &proof, ip, unix_now)
            .await
        {
            Ok(()) => self.limiter.refund_login(reserved).await?,
            Err(TwoFactorError::InvalidCode) => {
                if attempt.is_last {
                    self.challenges.discard(&token).await;
                }
                self.lockout.keep_failure(ip, &who.email, reserved).await;
                return Err(LoginError::InvalidCode);
            }
            // Not an answer to the challenge (the database or the trail failed): not counted.
            Err(other) => {
                self.limiter.refund_login(reserved).await?;
                return Err(other.into());
            }
        }
        if !self.challenges.redeem(&token).await {
            // Another right answer to this challenge was accepted first; its factor is spent
            // all the same (the step, or the backup code).
            return Err(LoginError::ChallengeExpired);
        }
        let event = who.event(Kind::TwofaVerified, ip, json!({"method": proof.method()}));
        self.audit.record(event).await?;
        // A challenge issued before the tenant was suspended opens no session after it.
        if !self.suspensions.admits(who.tenant_id) {
            return Err(LoginError::TenantSuspended);
        }
        let mut opened = self
            .open_verified_session(who, ip, user_agent, current.password_change_required)
            .await;
        // A change made while the code was checked: see `confirm_still_open`.
        match self
            .confirm_still_open(who.user_id, &who.email, &attempt.seen, &opened.token)
            .await?
        {
            Recheck::Unchanged => {}
            Recheck::Changed(_) => return Err(LoginError::ChallengeExpired),
        }
        let actor = EventActor::user(who.user_id, &who.email, who.role);
        opened.ended = end_oldest_beyond_cap(
            &self.sessions,
            &self.audit,
            who.user_id,
            actor,
            who.tenant_id,
            ip,
        )
        .await?;
        Ok(opened)
    }

    async fn open_verified_session(
        &self,
        who: &Account,
        ip: IpAddr,
        user_agent: Option<String>,
        password_change_required: bool,
    ) -> LoggedIn {
        let issued = self
            .sessions
            .issue(NewSession {
                user_id: who.user_id,
                tenant_id: who.tenant_id,
                email: who.email.clone(),
                role: who.role,
                second_factor: SecondFactor::Verified,
                password_change_required,
                ip: Some(ip),
                user_agent,
            })
            .await;
        LoggedIn {
            token: issued.token,
            expires_at: issued.expires_at,
            user: User {
                id: who.user_id,
                email: who.email.clone(),
                role: who.role,
                tenant_id: who.tenant_id,
            },
            enrollment_required: false,
            password_change_required,
            ended: Vec::new(),
        }
    }
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
        /// parser refusal or `AmbiguousProof` (both 400 `bad_request`), never a panic.
        #[test]
        fn verify_bodies_yield_a_proof_exactly_when_accepted(
            v in prop_oneof![test_json::value(), test_json::object()]
        ) {
            match serde_json::from_str::<VerifyBody>(&v.to_string()).map(VerifyBody::proof) {
                Ok(Ok(_)) => prop_assert!(accepted(&v)),
                Ok(Err(e)) => {
                    prop_assert!(!accepted(&v));
                    prop_assert!(matches!(e, LoginError::AmbiguousProof));
                }
                Err(_) => prop_assert!(!accepted(&v)),
            }
        }
    }

    #[test]
    fn verify_bodies_never_print_their_secrets() {
        let body: VerifyBody =
            serde_json::from_str(r#"{"challenge":"challenge-text","code":"123456"}"#).unwrap();
        let shown = format!("{body:?}");
        assert!(
            !shown.contains("challenge-text") && !shown.contains("123456"),
            "{shown}"
        );
    }
}
