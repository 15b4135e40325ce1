//! The password step of a sign-in: a session at once, or for a user with a second factor the
//! challenge of the second step ([`super::second_step`]).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::{Login, LoginError};
use crate::audit::{Event, EventActor, Kind};
use crate::auth::own_sessions::end_oldest_beyond_cap;
use crate::auth::password;
use crate::auth::{NewSession, SecondFactor, SessionId};
use crate::db::LoginRecord;
use crate::ids::{Role, TenantId, UserId};
use crate::secret::Token;
use crate::two_factor::Account;
use crate::users::User;

/// The body of `POST /api/v1/auth/login`. The password never prints.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub email: String,
    #[schema(value_type = String)]
    pub password: SecretString,
}

/// A successful login: the token (shown once) and who it belongs to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoggedIn {
    #[schema(value_type = String)]
    pub token: Token,
    pub expires_at: DateTime<Utc>,
    pub user: User,
    /// A platform owner without a second factor: the token reaches only `/api/v1/auth/*`
    /// until one is enrolled. Sent only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub enrollment_required: bool,
    /// An administrator reset the password: the token reaches only `/api/v1/auth/*` until
    /// `POST /api/v1/auth/password` sets a new one. Sent only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub password_change_required: bool,
    /// The user's oldest sessions this sign-in ended, being past the cap per user: their
    /// sockets are for the caller to close. Never sent.
    #[serde(skip)]
    pub ended: Vec<SessionId>,
}

/// The password was right and the user has a second factor: the login continues at
/// `POST /api/v1/auth/2fa/verify` with this challenge.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MfaRequired {
    pub mfa_required: bool,
    #[schema(value_type = String)]
    pub challenge: Token,
    pub expires_at: DateTime<Utc>,
}

/// What the password step answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum LoginOutcome {
    Session(LoggedIn),
    MfaRequired(MfaRequired),
}

impl Login {
    /// Checks the credentials and opens a session, or for a user with a second factor issues
    /// the challenge of the second step (revoking any earlier one of that user). A wrong
    /// password and an unknown email give the same error after the same work (an argon2
    /// verification either way). Both outcomes are audited; the password never is. See
    /// [`Login::check_password`] for the limits.
    /// `user_agent` is the client's, kept with the session it opens. Every attempt is counted
    /// by its outcome.
    pub async fn login(
        &self,
        creds: LoginBody,
        ip: IpAddr,
        user_agent: Option<String>,
    ) -> Result<LoginOutcome, LoginError> {
        let result = self.password_step(creds, ip, user_agent).await;
        let outcome = match &result {
            Ok(LoginOutcome::Session(_)) => "success",
            Ok(LoginOutcome::MfaRequired(_)) => "mfa_required",
            Err(e) => e.outcome(),
        };
        self.metrics.login("password", outcome);
        result
    }

    async fn password_step(
        &self,
        creds: LoginBody,
        ip: IpAddr,
        user_agent: Option<String>,
    ) -> Result<LoginOutcome, LoginError> {
        let record = self
            .check_password(ip, creds.email.trim(), creds.password, "login")
            .await?;
        // Only after the password was checked (and found right): a wrong one answers
        // `invalid_credentials` in the same time, so neither a disabled account nor a
        // suspended tenant can be probed.
        self.refuse_closed(&record, ip).await?;
        let role = Role::parse(&record.role)
            .ok_or_else(|| LoginError::UnknownRole(record.role.clone()))?;
        let user = User {
            id: UserId::from(record.id),
            email: record.email.clone(),
            role,
            tenant_id: record.tenant_id.map(TenantId::from),
        };
        let event = Event::new(Kind::AuthLoginSucceeded)
            .actor(EventActor::user(user.id, &user.email, role))
            .ip(ip)
            .tenant(user.tenant_id)
            .details(serde_json::json!({ "mfa_required": record.two_factor_enabled }));
        self.audit.record(event).await?;
        if record.two_factor_enabled {
            return Ok(self.challenge(user, &record).await);
        }
        let enrollment_required = role == Role::PlatformOwner;
        let second_factor = if enrollment_required {
            SecondFactor::EnrollmentRequired
        } else {
            SecondFactor::PasswordOnly
        };
        let issued = self
            .sessions
            .issue(NewSession {
                user_id: user.id,
                tenant_id: user.tenant_id,
                email: user.email.clone(),
                role,
                second_factor,
                password_change_required: record.password_change_required,
                ip: Some(ip),
                user_agent,
            })
            .await;
        let seen = Seen::of(&record);
        match self
            .confirm_still_open(user.id, &user.email, &seen, &issued.token)
            .await?
        {
            Recheck::Unchanged => {}
            // The password that was checked is no longer the account's (reset or changed
            // meanwhile): it proves nothing now.
            Recheck::Changed(now) if now.password_hash != record.password_hash => {
                return Err(LoginError::InvalidCredentials)
            }
            // The same password, but a second factor was enabled meanwhile: the sign-in
            // continues as it would have had it started a moment later.
            Recheck::Changed(now) if now.two_factor_enabled => {
                return Ok(self.challenge(user, &now).await);
            }
            Recheck::Changed(_) => return Err(LoginError::InvalidCredentials),
        }
        let actor = EventActor::user(user.id, &user.email, role);
        let ended = end_oldest_beyond_cap(
            &self.sessions,
            &self.audit,
            user.id,
            actor,
            user.tenant_id,
            ip,
        )
        .await?;
        Ok(LoginOutcome::Session(LoggedIn {
            token: issued.token,
            expires_at: issued.expires_at,
            user,
            enrollment_required,
            password_change_required: record.password_change_required,
            ended,
        }))
    }

    /// The challenge of the second step for `user`, whose password was just checked against
    /// `record` (the challenge keeps what was seen, see [`Seen`]).
    async fn challenge(&self, user: User, record: &LoginRecord) -> LoginOutcome {
        let account = Account {
            user_id: user.id,
            tenant_id: user.tenant_id,
            email: user.email,
            role: user.role,
        };
        let issued = self
            .challenges
            .issue(&account, &Seen::of(record), crate::timestamp::now())
            .await;
        LoginOutcome::MfaRequired(MfaRequired {
            mfa_required: true,
            challenge: issued.token,
            expires_at: issued.expires_at,
        })
    }

    /// The second look that closes the race with a concurrent disable, password reset,
    /// password change or second-factor change: the session of `token` was issued (and added
    /// to its user's set) before this look, and every one of those changes is written to the
    /// database before it ends the user's sessions (`end_all`, `end_others`). So either this
    /// look sees the change, or the change committed later and its ending of sessions finds
    /// this one. Without it, a sign-in that checked the old password (or saw no second factor)
    /// while the change was being made could keep a full session the change never saw — after
    /// an administrator's reset, even one without `password_change_required`.
    ///
    /// A disabled or vanished account revokes the session and is `AccountDisabled`; an account
    /// whose credentials differ from `seen` revokes it and is `Changed` with the account as it
    /// is now, for the caller to decide what the sign-in becomes.
    pub(super) async fn confirm_still_open(
        &self,
        user: UserId,
        email: &str,
        seen: &Seen,
        token: &Token,
    ) -> Result<Recheck, LoginError> {
        let now = self
            .db
            .login_lookup(email)
            .await?
            .filter(|r| UserId::from(r.id) == user && !r.disabled);
        let Some(now) = now else {
            self.sessions.revoke(token).await;
            return Err(LoginError::AccountDisabled);
        };
        if Seen::of(&now) == *seen {
            return Ok(Recheck::Unchanged);
        }
        self.sessions.revoke(token).await;
        Ok(Recheck::Changed(now))
    }

    /// Refuses the right password of a disabled account (`AccountDisabled`) or of a user of a
    /// suspended tenant (`TenantSuspended`), audited as a failed login with that reason.
    pub(super) async fn refuse_closed(
        &self,
        record: &LoginRecord,
        ip: IpAddr,
    ) -> Result<(), LoginError> {
        let (reason, refusal) = if record.disabled {
            ("account_disabled", LoginError::AccountDisabled)
        } else if !self
            .suspensions
            .admits(record.tenant_id.map(TenantId::from))
        {
            ("tenant_suspended", LoginError::TenantSuspended)
        } else {
            return Ok(());
        };
        let event = Event::new(Kind::AuthLoginFailed)
            .actor(EventActor::sign_in_attempt(
                &record.email,
                Some(UserId::from(record.id)),
            ))
            .ip(ip)
            .tenant(record.tenant_id.map(TenantId::from))
            .details(serde_json::json!({ "reason": reason }));
        self.audit.record(event).await?;
        Err(refusal)
    }

    /// Checks `password` for `email` as one login attempt, counted *before* the check (see
    /// `rate_limit::actor::login`): over the account's or the IP's limit,
    /// `TooManyAttempts` and nothing is hashed; when the process's argon2 queue is full,
    /// `Busy`. The right password gives the attempt back; a wrong one (or an unknown email, or
    /// an email no account can have, such as one with control characters) keeps it, is
    /// audited as `auth.login_failed` with `purpose`, and answers `InvalidCredentials`.
    pub async fn check_password(
        &self,
        ip: IpAddr,
        email: &str,
        password: SecretString,
        purpose: &str,
    ) -> Result<LoginRecord, LoginError> {
        let attempt = self
            .limiter
            .reserve_login(ip, email)
            .await?
            .map_err(LoginError::TooManyAttempts)?;
        let checked = match self.lookup(email).await {
            Ok(record) => {
                let stored = record.as_ref().map(|r| r.password_hash.clone());
                password::verify_bounded(password, stored)
                    .await
                    .map(|ok| (ok, record))
                    .map_err(LoginError::from)
            }
            Err(e) => Err(e),
        };
        let (ok, record) = match checked {
            Ok(v) => v,
            // Never checked (busy, or the database failed): not an attempt.
            Err(e) => {
                self.limiter.refund_login(attempt).await?;
                return Err(e);
            }
        };
        if let (true, Some(record)) = (ok, &record) {
            self.limiter.refund_login(attempt).await?;
            return Ok(record.clone());
        }
        let reason = if record.is_some() {
            "wrong_password"
        } else {
            "unknown_email"
        };
        let account = record.as_ref().map(|r| UserId::from(r.id));
        let event = Event::new(Kind::AuthLoginFailed)
            .actor(EventActor::sign_in_attempt(email, account))
            .ip(ip)
            .details(serde_json::json!({ "reason": reason, "purpose": purpose }));
        self.audit.record(event).await?;
        self.lockout.keep_failure(ip, email, attempt).await;
        Err(LoginError::InvalidCredentials)
    }

    /// The login record of `email`, or `None` for an email no account can have (over 254
    /// bytes, or holding a control character such as NUL, which PostgreSQL text cannot even
    /// carry).
    async fn lookup(&self, email: &str) -> Result<Option<LoginRecord>, LoginError> {
        if !plausible_email(email) {
            return Ok(None);
        }
        Ok(self.db.login_lookup(email).await?)
    }
}

/// What a sign-in saw of an account's credentials when it checked them: a digest of the
/// password hash, whether a second factor is on, and whether a new password is required. Every
/// password reset or change writes a new hash (argon2 salts each one), and enabling, disabling
/// or resetting the second factor flips the flag, so two equal `Seen` mean that none of them
/// happened in between (short of a factor removed and enrolled again within one sign-in).
/// Kept with a login challenge, so a digest rather than the hash itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Seen(String);

impl Seen {
    pub fn of(record: &LoginRecord) -> Seen {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(record.password_hash.as_bytes());
        h.update([
            0,
            u8::from(record.two_factor_enabled),
            u8::from(record.password_change_required),
        ]);
        Seen(hex::encode(h.finalize()))
    }
}

/// What [`Login::confirm_still_open`] found.
#[derive(Debug)]
pub(super) enum Recheck {
    Unchanged,
    /// The credentials changed since they were checked: the session was revoked.
    Changed(LoginRecord),
}

/// Whether `email` could belong to an account: at most 254 bytes, no control characters.
pub fn plausible_email(email: &str) -> bool {
    email.len() <= 254 && !email.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::test_json;
    use proptest::prelude::*;

    /// What a login body must be: exactly `email` and `password`, strings.
    fn well_formed(v: &serde_json::Value) -> bool {
        test_json::as_fields(v, &["email", "password"]).is_some_and(|o| {
            o.len() == 2
                && o.get("email").is_some_and(|e| e.is_string())
                && o.get("password").is_some_and(|p| p.is_string())
        })
    }

    proptest! {
        /// Any JSON parses into credentials exactly when it is well formed; everything else is
        /// refused by the parser (400 `bad_request` at the edge), never a panic.
        #[test]
        fn login_bodies_parse_exactly_when_well_formed(
            v in prop_oneof![test_json::value(), test_json::object()]
        ) {
            let parsed = serde_json::from_str::<LoginBody>(&v.to_string());
            prop_assert_eq!(parsed.is_ok(), well_formed(&v));
        }

        /// Arbitrary bytes never panic the parser.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = serde_json::from_slice::<LoginBody>(&bytes);
        }

        /// No email holding a control character (NUL included) is ever looked up: it cannot
        /// belong to an account, and PostgreSQL text cannot carry a NUL.
        #[test]
        fn emails_with_control_characters_are_never_looked_up(
            head in ".{0,20}",
            c in any::<char>().prop_filter("a control character", |c| c.is_control()),
            tail in ".{0,20}",
        ) {
            let email = format!("{head}{c}{tail}");
            prop_assert!(!plausible_email(&email));
        }
    }

    #[test]
    fn ordinary_emails_are_plausible_and_overlong_ones_are_not() {
        assert!(plausible_email("staff@alpha.example"));
        assert!(plausible_email("ünïcode@exämple.test"));
        assert!(!plausible_email(&format!("{}@x.example", "a".repeat(250))));
    }

    #[test]
    fn credentials_never_print_the_password() {
        let creds: LoginBody =
            serde_json::from_str(r#"{"email":"a@b.example","password":"hunter2-hunter2"}"#)
                .unwrap();
        let shown = format!("{creds:?}");
        assert!(
            shown.contains("a@b.example") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
