//! Two-factor authentication: the factors themselves — TOTP enrollment, enabling, disabling,
//! backup codes — and the check of a code for an account, which the login capability calls at
//! the second step of a sign-in (this module issues no sessions).
//!
//! Rules (README "Two-factor authentication"): codes are RFC 6238 (SHA-1, 6 digits, 30 s) with
//! one step of skew each way; a time step once accepted for a user is never accepted again for
//! that user, which the database enforces with one conditional UPDATE; backup codes are spent
//! with one DELETE … RETURNING; secrets are stored only sealed with AES-256-GCM; wrong codes are
//! audited and count as failed logins. Secrets and codes never reach the audit trail or logs.

pub(crate) mod backup_codes;
mod code_check;
mod error;
mod factors;
pub mod secret_box;
pub mod totp;

use std::net::IpAddr;
use std::sync::Arc;

use futures_util::future::LocalBoxFuture;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{Audit, Event, EventActor, Kind};
use crate::auth::Session;
use crate::db::{DbPool, Scope};
use crate::ids::{Role, TenantId, UserId};
use crate::secret::MasterKey;
use crate::telemetry::metrics::Metrics;
use code_check::{CodeCheck, Purpose};
use secret_box::SecretBox;
use totp::TotpSecret;

pub use error::TwoFactorError;

/// Whom a second-factor operation concerns: the holder of a session, or the user a login
/// challenge was issued to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub user_id: UserId,
    pub tenant_id: Option<TenantId>,
    pub email: String,
    pub role: Role,
}

impl From<&Session> for Account {
    fn from(s: &Session) -> Self {
        Account {
            user_id: s.user_id,
            tenant_id: s.tenant_id,
            email: s.email.clone(),
            role: s.role,
        }
    }
}

impl Account {
    fn scope(&self) -> Scope {
        // The door's own-data rule; it does not look at the second factor.
        Scope::own(&crate::db::Caller::new(
            self.user_id,
            self.tenant_id,
            self.role,
            false,
        ))
    }

    /// The account's user, as the actor of an audit event.
    pub fn actor(&self) -> EventActor {
        EventActor::user(self.user_id, &self.email, self.role)
    }

    /// An event of this account's, from `ip`, in its tenant.
    pub fn event(&self, kind: Kind, ip: IpAddr, details: serde_json::Value) -> Event {
        Event::new(kind)
            .actor(self.actor())
            .ip(ip)
            .tenant(self.tenant_id)
            .details(details)
    }
}

/// `POST /api/v1/auth/2fa/setup`: the new secret, shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Enrollment {
    pub secret: String,
    pub otpauth_url: String,
    pub qr_svg: String,
}

/// Fresh backup codes, shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BackupCodes {
    pub backup_codes: Vec<String>,
}

/// `GET /api/v1/auth/2fa`: where the user stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = TwoFactorStatus)]
pub struct Status {
    pub enabled: bool,
    pub backup_codes_remaining: i64,
}

/// A second factor presented at the second step of a sign-in.
#[derive(Debug)]
pub enum Proof {
    Totp(SecretString),
    BackupCode(SecretString),
}

impl Proof {
    /// The method's name in audit details.
    pub fn method(&self) -> &'static str {
        match self {
            Proof::Totp(_) => "totp",
            Proof::BackupCode(_) => "backup_code",
        }
    }
}

/// Counts a wrong code that confirmed a change as a failed sign-in of `email` from `ip`: the
/// login capability's lock-out, handed in at start-up (it imports this module, so this module
/// cannot name it).
pub trait FailedLogins: Send + Sync {
    fn count<'a>(&'a self, ip: IpAddr, email: &'a str) -> LocalBoxFuture<'a, ()>;
}

/// The two-factor capability: what it uses, built once at start-up.
#[derive(Clone)]
pub struct TwoFactor {
    db: DbPool,
    audit: Audit,
    /// Seals TOTP secrets and keys backup-code hashes.
    master_key: MasterKey,
    failed_logins: Arc<dyn FailedLogins>,
    /// Counts the codes checked, by purpose, method and outcome.
    metrics: Metrics,
}

impl TwoFactor {
    pub fn new(
        db: DbPool,
        audit: Audit,
        master_key: MasterKey,
        failed_logins: Arc<dyn FailedLogins>,
        metrics: Metrics,
    ) -> TwoFactor {
        TwoFactor {
            db,
            audit,
            master_key,
            failed_logins,
            metrics,
        }
    }

    fn check<'a>(
        &'a self,
        who: &'a Account,
        ip: IpAddr,
        now: u64,
        purpose: Purpose,
    ) -> CodeCheck<'a> {
        CodeCheck {
            tf: self,
            who,
            ip,
            now,
            purpose,
        }
    }

    /// Whether `who` has a second factor on, and how many backup codes they have left (one
    /// read transaction, so the two agree).
    pub async fn status(&self, who: &Account) -> Result<Status, TwoFactorError> {
        Ok(self
            .db
            .in_scope(&who.scope(), async |c| {
                let enabled = factors::totp(c, who.user_id)
                    .await?
                    .is_some_and(|f| f.is_enabled());
                let backup_codes_remaining = if enabled {
                    factors::backup_codes_left(c, who.user_id).await?
                } else {
                    0
                };
                Ok(Status {
                    enabled,
                    backup_codes_remaining,
                })
            })
            .await?)
    }

    /// Starts (or restarts) an enrollment: a fresh 160-bit secret replaces any pending one.
    /// Refused while a factor is enabled.
    pub async fn start_enrollment(
        &self,
        who: &Account,
        ip: IpAddr,
    ) -> Result<Enrollment, TwoFactorError> {
        let secret = TotpSecret::generate();
        let sealed = SecretBox::new(&self.master_key).seal(who.user_id, secret.as_bytes());
        let saved = self
            .db
            .in_scope(&who.scope(), async |c| {
                factors::save_pending_totp(c, who.user_id, who.tenant_id, &sealed).await
            })
            .await?;
        if !saved {
            return Err(TwoFactorError::AlreadyEnabled);
        }
        let event = who.event(Kind::TwofaEnrollmentStarted, ip, json!({"method": "totp"}));
        self.audit.record(event).await?;
        let otpauth_url = secret.otpauth_url(&who.email);
        Ok(Enrollment {
            secret: secret.to_base32(),
            qr_svg: totp::qr_svg(&otpauth_url),
            otpauth_url,
        })
    }

    /// Confirms the pending enrollment with a code from it: the factor is on, and the user
    /// gets ten backup codes (replacing any earlier set).
    pub async fn enable(
        &self,
        who: &Account,
        code: &SecretString,
        ip: IpAddr,
        now: u64,
    ) -> Result<BackupCodes, TwoFactorError> {
        let check = self.check(who, ip, now, Purpose::Enable);
        self.with_new_backup_codes(&check, code, Kind::TwofaEnabled)
            .await
    }

    /// Replaces the backup codes, confirmed by a current code; the old set dies at once.
    pub async fn regenerate_backup_codes(
        &self,
        who: &Account,
        code: &SecretString,
        ip: IpAddr,
        now: u64,
    ) -> Result<BackupCodes, TwoFactorError> {
        let check = self.check(who, ip, now, Purpose::RegenerateBackupCodes);
        self.with_new_backup_codes(&check, code, Kind::TwofaBackupCodesRegenerated)
            .await
    }

    /// Checks `code`, then in the same transaction turns the pending factor on (when
    /// enabling) and replaces the backup codes; records `kind`.
    async fn with_new_backup_codes(
        &self,
        check: &CodeCheck<'_>,
        code: &SecretString,
        kind: Kind,
    ) -> Result<BackupCodes, TwoFactorError> {
        let who = check.who;
        let hasher = backup_codes::CodeHasher::new(&self.master_key);
        let codes = backup_codes::generate();
        let hashes: Vec<Vec<u8>> = codes
            .iter()
            .map(|c| {
                hasher.hash(
                    who.user_id,
                    &backup_codes::normalize(c).expect("own format"),
                )
            })
            .collect();
        let enabling = check.purpose == Purpose::Enable;
        check
            .run(code, async |c, factor| {
                if enabling {
                    factors::activate(c, &factor).await?;
                    factors::set_enabled_flag(c, who.user_id, true).await?;
                }
                factors::replace_backup_codes(c, who.user_id, who.tenant_id, &hashes).await
            })
            .await?;
        let event = who.event(kind, check.ip, json!({"method": "totp"}));
        self.audit.record(event).await?;
        Ok(BackupCodes {
            backup_codes: codes,
        })
    }

    /// Turns two-factor authentication off, confirmed by a current code. Platform owners may
    /// not.
    pub async fn disable(
        &self,
        who: &Account,
        code: &SecretString,
        ip: IpAddr,
        now: u64,
    ) -> Result<(), TwoFactorError> {
        if who.role == Role::PlatformOwner {
            return Err(TwoFactorError::Required);
        }
        let check = self.check(who, ip, now, Purpose::Disable);
        check
            .run(code, async |c, _| {
                factors::remove_all(c, who.user_id).await?;
                factors::set_enabled_flag(c, who.user_id, false).await
            })
            .await?;
        let event = who.event(Kind::TwofaDisabled, ip, json!({"method": "totp"}));
        self.audit.record(event).await?;
        Ok(())
    }

    /// Checks the second factor of a sign-in for `who` at `now` (Unix seconds): a TOTP step
    /// accepted once, or a backup code spent. A refusal is audited but not counted here — the
    /// login capability counts the attempt before it asks.
    pub async fn check_sign_in(
        &self,
        who: &Account,
        proof: &Proof,
        ip: IpAddr,
        now: u64,
    ) -> Result<(), TwoFactorError> {
        let check = self.check(who, ip, now, Purpose::Login);
        match proof {
            Proof::Totp(code) => check.run(code, async |_, _| Ok(())).await,
            Proof::BackupCode(code) => check.spend_backup_code(code).await,
        }
    }
}
