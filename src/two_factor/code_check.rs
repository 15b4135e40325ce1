//! Checking a presented code: one TOTP step accepted at most once per user (in the caller's
//! transaction, with the change it confirms), backup codes spent by one statement, and every
//! refusal audited — and, when it confirms a change, counted as a failed sign-in through
//! [`FailedLogins`](super::FailedLogins).

use std::net::IpAddr;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::secret_box::SecretBox;
use super::totp::{self, TotpCode, TotpSecret};
use super::{backup_codes, factors, Account, TwoFactor, TwoFactorError};
use crate::audit::Kind;
use crate::db::{DbError, TenantConn};
use crate::ids::UserId;
use factors::TotpRow;

/// Why a second factor was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Not a valid code for any accepted step (or not a code at all).
    Wrong,
    /// Valid, but for a step already accepted (or older).
    Replayed,
    /// The user has no factor in the state the operation needs.
    NoFactor,
}

/// Why a TOTP code did not pass, inside the transaction.
enum NotAccepted {
    Refused(Refusal),
    /// The stored secret does not decrypt: not the caller's fault, and not a query error.
    SecretUnreadable(uuid::Uuid),
}

/// What a code is presented for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    Login,
    Enable,
    RegenerateBackupCodes,
    Disable,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Login => "login",
            Purpose::Enable => "enable",
            Purpose::RegenerateBackupCodes => "regenerate_backup_codes",
            Purpose::Disable => "disable",
        }
    }

    /// Enabling checks the pending factor; everything else the enabled one.
    fn wants_enabled_factor(self) -> bool {
        self != Purpose::Enable
    }
}

/// One operation confirmed by a second factor: who, from where, at what time (Unix seconds),
/// and for what.
pub(super) struct CodeCheck<'a> {
    pub(super) tf: &'a TwoFactor,
    pub(super) who: &'a Account,
    pub(super) ip: IpAddr,
    pub(super) now: u64,
    pub(super) purpose: Purpose,
}

impl CodeCheck<'_> {
    /// Checks `code` and, when it is accepted, runs `then` in the same transaction (so the
    /// accepted step and the change commit together). A refusal is audited and counted.
    pub(super) async fn run(
        &self,
        code: &SecretString,
        then: impl AsyncFnOnce(&mut TenantConn, TotpRow) -> Result<(), DbError>,
    ) -> Result<(), TwoFactorError> {
        let checked = self.check_totp(code, then).await;
        self.count("totp", &checked);
        checked
    }

    async fn check_totp(
        &self,
        code: &SecretString,
        then: impl AsyncFnOnce(&mut TenantConn, TotpRow) -> Result<(), DbError>,
    ) -> Result<(), TwoFactorError> {
        let Some(code) = TotpCode::parse(code.expose_secret()) else {
            return Err(self.reject(Refusal::Wrong, "totp").await);
        };
        let sealer = SecretBox::new(&self.tf.master_key);
        let enabled = self.purpose.wants_enabled_factor();
        let outcome = self
            .tf
            .db
            .in_scope(&self.who.scope(), async |c| {
                match accept_totp(c, &sealer, self.who.user_id, &code, self.now, enabled).await? {
                    Ok(factor) => then(c, factor).await.map(Ok),
                    Err(not_accepted) => Ok(Err(not_accepted)),
                }
            })
            .await?;
        match outcome {
            Ok(()) => Ok(()),
            Err(NotAccepted::Refused(refusal)) => Err(self.reject(refusal, "totp").await),
            Err(NotAccepted::SecretUnreadable(factor)) => {
                Err(TwoFactorError::SecretUnreadable { factor })
            }
        }
    }

    /// Spends a backup code of the account, or refuses (audited and counted).
    pub(super) async fn spend_backup_code(
        &self,
        input: &SecretString,
    ) -> Result<(), TwoFactorError> {
        let spent = self.spend(input).await;
        self.count("backup_code", &spent);
        spent
    }

    /// Counts one checked code: `accepted`, `refused` (a wrong or replayed code), `no_factor`,
    /// or `error` (it could not be checked).
    fn count(&self, method: &'static str, result: &Result<(), TwoFactorError>) {
        let outcome = match result {
            Ok(()) => "accepted",
            Err(TwoFactorError::InvalidCode) => "refused",
            Err(TwoFactorError::NoEnrollment | TwoFactorError::NotEnabled) => "no_factor",
            Err(_) => "error",
        };
        let purpose = self.purpose.as_str();
        self.tf.metrics.two_factor(purpose, method, outcome);
    }

    async fn spend(&self, input: &SecretString) -> Result<(), TwoFactorError> {
        let who = self.who;
        let Some(code) = backup_codes::normalize(input.expose_secret()) else {
            return Err(self.reject(Refusal::Wrong, "backup_code").await);
        };
        let hash = backup_codes::CodeHasher::new(&self.tf.master_key).hash(who.user_id, &code);
        let spent = self
            .tf
            .db
            .in_scope(&who.scope(), async |c| {
                factors::spend_backup_code(c, who.user_id, &hash).await
            })
            .await?;
        if !spent {
            return Err(self.reject(Refusal::Wrong, "backup_code").await);
        }
        let event = who.event(Kind::TwofaBackupCodeUsed, self.ip, json!({}));
        self.tf.audit.record(event).await?;
        Ok(())
    }

    /// Audits a refused factor, counts it as a failed login and gives the error to answer.
    async fn reject(&self, refusal: Refusal, method: &str) -> TwoFactorError {
        let details = |reason: &str| json!({"method": method, "purpose": self.purpose.as_str(), "reason": reason});
        let event = match (refusal, self.purpose) {
            // A signed-in user asking for something their state does not allow: no guess.
            (Refusal::NoFactor, Purpose::Enable) => return TwoFactorError::NoEnrollment,
            (Refusal::NoFactor, Purpose::RegenerateBackupCodes | Purpose::Disable) => {
                return TwoFactorError::NotEnabled
            }
            (Refusal::Replayed, _) => {
                self.who
                    .event(Kind::TwofaReplayRejected, self.ip, details("replay"))
            }
            (Refusal::Wrong | Refusal::NoFactor, _) => {
                self.who
                    .event(Kind::TwofaFailed, self.ip, details("wrong_code"))
            }
        };
        // The refusal stands whether or not it could be recorded.
        let _ = self.tf.audit.record(event).await;
        // At login the attempt was counted before the check (by the login capability). This
        // is the one place where second-factor failures reach the login limiter.
        if self.purpose != Purpose::Login {
            self.tf.failed_logins.count(self.ip, &self.who.email).await;
        }
        TwoFactorError::InvalidCode
    }
}

/// Inside a transaction: the user's TOTP factor (enabled, or pending when `enabled` is
/// false), if `code` matches a step around `now` newer than every step accepted before; that
/// step is then recorded.
async fn accept_totp(
    c: &mut TenantConn,
    sealer: &SecretBox,
    user: UserId,
    code: &TotpCode,
    now: u64,
    enabled: bool,
) -> Result<Result<TotpRow, NotAccepted>, DbError> {
    let refused = |r| Ok(Err(NotAccepted::Refused(r)));
    let Some(factor) = factors::totp(c, user).await? else {
        return refused(Refusal::NoFactor);
    };
    if factor.is_enabled() != enabled {
        return refused(Refusal::NoFactor);
    }
    let secret = factor
        .secret_ciphertext
        .as_deref()
        .and_then(|sealed| sealer.open(user, sealed).ok())
        .and_then(|bytes| TotpSecret::from_bytes(&bytes));
    let Some(secret) = secret else {
        return Ok(Err(NotAccepted::SecretUnreadable(factor.id)));
    };
    let Some(step) = totp::matching_step(&secret, code, now) else {
        return refused(Refusal::Wrong);
    };
    let step = i64::try_from(step).expect("time steps fit in 63 bits");
    if !factors::accept_step(c, &factor, step).await? {
        return refused(Refusal::Replayed);
    }
    Ok(Ok(factor))
}
