//! Two-factor authentication: TOTP enrollment, the second step of login, backup codes.
//!
//! Rules (README "Two-factor authentication"): codes are RFC 6238 (SHA-1, 6 digits, 30 s) with
//! one step of skew each way; a time step once accepted for a user is never accepted again for
//! that user, which the database enforces with one conditional UPDATE; backup codes are spent
//! with one DELETE … RETURNING; secrets are stored only sealed with AES-256-GCM; wrong codes are
//! audited and count as failed logins. Secrets and codes never reach the audit trail or logs.

pub mod backup_codes;
pub mod challenge;
mod factors;
pub mod secret_box;
pub mod totp;
mod verify;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{Event, Kind};
use crate::auth::Session;
use crate::db::{DbError, Scope, TenantConn};
use crate::error::{ApiError, CodeContext};
use crate::ids::{Role, TenantId, UserId};
use crate::state::AppState;
use factors::TotpRow;
use secret_box::SecretBox;
use totp::{TotpCode, TotpSecret};

pub use verify::{verify_login, VerifyBody};

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

    fn event(&self, kind: Kind, ip: IpAddr, details: serde_json::Value) -> Event {
        Event::new(kind)
            .actor(Some(self.user_id), Some(&self.email), Some(self.role))
            .ip(ip)
            .tenant(self.tenant_id)
            .details(details)
    }
}

/// `POST /api/v1/auth/2fa/setup`: the new secret, shown once.
#[derive(Serialize)]
pub struct Enrollment {
    pub secret: String,
    pub otpauth_url: String,
    pub qr_svg: String,
}

/// Fresh backup codes, shown once.
#[derive(Serialize)]
pub struct BackupCodes {
    pub backup_codes: Vec<String>,
}

/// Why a second factor was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Not a valid code for any accepted step (or not a code at all).
    Wrong,
    /// Valid, but for a step already accepted (or older).
    Replayed,
    /// The user has no factor in the state the operation needs.
    NoFactor,
}

/// What a code is presented for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
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

    fn context(self) -> CodeContext {
        match self {
            Purpose::Login => CodeContext::Login,
            _ => CodeContext::Confirmation,
        }
    }
}

/// Starts (or restarts) an enrollment: a fresh 160-bit secret replaces any pending one.
/// Refused with 409 while a factor is enabled.
pub async fn start_enrollment(
    state: &AppState,
    who: &Account,
    ip: IpAddr,
) -> Result<Enrollment, ApiError> {
    let secret = TotpSecret::generate();
    let sealed = SecretBox::new(&state.master_key).seal(who.user_id, secret.as_bytes());
    let saved = state
        .db
        .in_scope(&who.scope(), async |c| {
            factors::save_pending_totp(c, who.user_id, who.tenant_id, &sealed).await
        })
        .await?;
    if !saved {
        return Err(ApiError::Conflict(
            "two-factor authentication is already on; turn it off before enrolling again".into(),
        ));
    }
    let event = who.event(Kind::TwofaEnrollmentStarted, ip, json!({"method": "totp"}));
    state.audit.record(event).await?;
    let otpauth_url = secret.otpauth_url(&who.email);
    Ok(Enrollment {
        secret: secret.to_base32(),
        qr_svg: totp::qr_svg(&otpauth_url),
        otpauth_url,
    })
}

/// Confirms the pending enrollment with a code from it: the factor is on, and the user gets
/// ten backup codes (replacing any earlier set).
pub async fn enable(
    state: &AppState,
    who: &Account,
    code: &str,
    ip: IpAddr,
    now: u64,
) -> Result<BackupCodes, ApiError> {
    let check = CodeCheck::new(who, ip, now, Purpose::Enable);
    with_new_backup_codes(state, &check, code, Kind::TwofaEnabled).await
}

/// Replaces the backup codes, confirmed by a current code; the old set dies at once.
pub async fn regenerate_backup_codes(
    state: &AppState,
    who: &Account,
    code: &str,
    ip: IpAddr,
    now: u64,
) -> Result<BackupCodes, ApiError> {
    let check = CodeCheck::new(who, ip, now, Purpose::RegenerateBackupCodes);
    with_new_backup_codes(state, &check, code, Kind::TwofaBackupCodesRegenerated).await
}

/// Checks `code`, then in the same transaction turns the pending factor on (when enabling)
/// and replaces the backup codes; records `kind`.
async fn with_new_backup_codes(
    state: &AppState,
    check: &CodeCheck<'_>,
    code: &str,
    kind: Kind,
) -> Result<BackupCodes, ApiError> {
    let who = check.who;
    let hasher = backup_codes::CodeHasher::new(&state.master_key);
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
        .run(state, code, async |c, factor| {
            if enabling {
                factors::activate(c, &factor).await?;
                factors::set_enabled_flag(c, who.user_id, true).await?;
            }
            factors::replace_backup_codes(c, who.user_id, who.tenant_id, &hashes).await
        })
        .await?;
    let event = who.event(kind, check.ip, json!({"method": "totp"}));
    state.audit.record(event).await?;
    Ok(BackupCodes {
        backup_codes: codes,
    })
}

/// Turns two-factor authentication off, confirmed by a current code. Platform owners may not.
pub async fn disable(
    state: &AppState,
    who: &Account,
    code: &str,
    ip: IpAddr,
    now: u64,
) -> Result<(), ApiError> {
    if who.role == Role::PlatformOwner {
        return Err(ApiError::TwoFactorRequired);
    }
    let op = CodeCheck::new(who, ip, now, Purpose::Disable);
    op.run(state, code, async |c, _| {
        factors::remove_all(c, who.user_id).await?;
        factors::set_enabled_flag(c, who.user_id, false).await
    })
    .await?;
    let event = who.event(Kind::TwofaDisabled, ip, json!({"method": "totp"}));
    state.audit.record(event).await?;
    Ok(())
}

/// One operation confirmed by a second factor: who, from where, at what time (Unix seconds),
/// and for what.
struct CodeCheck<'a> {
    who: &'a Account,
    ip: IpAddr,
    now: u64,
    purpose: Purpose,
}

impl<'a> CodeCheck<'a> {
    fn new(who: &'a Account, ip: IpAddr, now: u64, purpose: Purpose) -> Self {
        CodeCheck {
            who,
            ip,
            now,
            purpose,
        }
    }

    /// Checks `code` and, when it is accepted, runs `then` in the same transaction (so the
    /// accepted step and the change commit together). A refusal is audited and counted.
    async fn run(
        &self,
        state: &AppState,
        code: &str,
        then: impl AsyncFnOnce(&mut TenantConn, TotpRow) -> Result<(), DbError>,
    ) -> Result<(), ApiError> {
        let Some(code) = TotpCode::parse(code) else {
            return Err(self.reject(state, Refusal::Wrong, "totp").await);
        };
        let sealer = SecretBox::new(&state.master_key);
        let outcome = state
            .db
            .in_scope(&self.who.scope(), async |c| {
                let enabled = self.purpose.wants_enabled_factor();
                match accept_totp(c, &sealer, self.who.user_id, &code, self.now, enabled).await? {
                    Ok(factor) => then(c, factor).await.map(Ok),
                    Err(refusal) => Ok(Err(refusal)),
                }
            })
            .await?;
        match outcome {
            Ok(()) => Ok(()),
            Err(refusal) => Err(self.reject(state, refusal, "totp").await),
        }
    }

    /// Audits a refused factor, counts it as a failed login and gives the error to answer.
    async fn reject(&self, state: &AppState, refusal: Refusal, method: &str) -> ApiError {
        let details = |reason: &str| json!({"method": method, "purpose": self.purpose.as_str(), "reason": reason});
        let event = match (refusal, self.purpose) {
            // A signed-in user asking for something their state does not allow: no guess.
            (Refusal::NoFactor, Purpose::Enable) => {
                return ApiError::Conflict("no enrollment is in progress; start with setup".into())
            }
            (Refusal::NoFactor, Purpose::RegenerateBackupCodes | Purpose::Disable) => {
                return ApiError::Conflict("two-factor authentication is not on".into())
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
        let _ = state.audit.record(event).await;
        // At login the attempt was counted before the check (`verify_login`).
        if self.purpose != Purpose::Login {
            count_failed_attempt(state, self.ip, &self.who.email).await;
        }
        ApiError::InvalidCode(self.purpose.context())
    }
}

/// Inside a transaction: the user's TOTP factor (enabled, or pending when `enabled` is false), if `code` matches a step
/// around `now` newer than every step accepted before; that step is then recorded.
async fn accept_totp(
    c: &mut TenantConn,
    sealer: &SecretBox,
    user: UserId,
    code: &TotpCode,
    now: u64,
    enabled: bool,
) -> Result<Result<TotpRow, Refusal>, DbError> {
    let Some(factor) = factors::totp(c, user).await? else {
        return Ok(Err(Refusal::NoFactor));
    };
    if factor.is_enabled() != enabled {
        return Ok(Err(Refusal::NoFactor));
    }
    let secret = factor
        .secret_ciphertext
        .as_deref()
        .and_then(|sealed| sealer.open(user, sealed).ok())
        .and_then(|bytes| TotpSecret::from_bytes(&bytes))
        .ok_or_else(|| {
            DbError::Query(diesel::result::Error::DeserializationError(
                format!("second factor {}: secret does not decrypt", factor.id).into(),
            ))
        })?;
    let Some(step) = totp::matching_step(&secret, code, now) else {
        return Ok(Err(Refusal::Wrong));
    };
    let step = i64::try_from(step).expect("time steps fit in 63 bits");
    if !factors::accept_step(c, &factor, step).await? {
        return Ok(Err(Refusal::Replayed));
    }
    Ok(Ok(factor))
}

/// Counts a refused second factor (wrong or replayed code) as a failed login of `email` from
/// `ip`, toward the login-failure limits (5 per account, 20 per IP). This is the one place
/// where second-factor failures reach the login limiter.
async fn count_failed_attempt(state: &AppState, ip: IpAddr, email: &str) {
    crate::auth::login::register_failure(state, ip, email).await;
}
