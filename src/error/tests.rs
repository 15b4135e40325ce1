//! Every capability error keeps the status, code, message and headers of the contract.

use super::*;
use crate::audit::AuditError;

/// Status, code, message and the named header of the answer to `e`.
fn answer(e: impl Into<ApiError>, header: &str) -> (u16, String, String, Option<String>) {
    let res = e.into().error_response();
    let value = res
        .headers()
        .get(header)
        .map(|v| v.to_str().unwrap().to_string());
    let status = res.status().as_u16();
    let body = actix_web::body::to_bytes(res.into_body());
    let body: serde_json::Value = serde_json::from_slice(
        &futures_util::FutureExt::now_or_never(body)
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let text = |k: &str| body["error"][k].as_str().unwrap().to_string();
    (status, text("code"), text("message"), value)
}

fn limited() -> Limited {
    Limited {
        policy: "login_account",
        quota: 5,
        window_secs: 900,
        retry_after_secs: 42,
    }
}

#[test]
fn a_wrong_code_is_401_at_login_and_400_when_it_confirms_a_change() {
    let (status, code, ..) = answer(LoginError::InvalidCode, "");
    assert_eq!((status, code.as_str()), (401, "invalid_code"));
    let (status, code, ..) = answer(TwoFactorError::InvalidCode, "");
    assert_eq!((status, code.as_str()), (400, "invalid_code"));
    // Relayed by the login capability, the two-factor refusal is the login's.
    let (status, ..) = answer(LoginError::from(TwoFactorError::InvalidCode), "");
    assert_eq!(status, 401);
}

#[test]
fn login_refusals_keep_their_statuses_codes_and_headers() {
    let (status, code, _, retry) = answer(LoginError::TooManyAttempts(limited()), "retry-after");
    assert_eq!(
        (status, code.as_str(), retry.as_deref()),
        (429, "too_many_attempts", Some("42"))
    );
    let (.., policy) = answer(LoginError::TooManyAttempts(limited()), "ratelimit-policy");
    assert_eq!(policy.as_deref(), Some("\"login_account\";q=5;w=900"));
    let (.., state) = answer(LoginError::TooManyAttempts(limited()), "ratelimit");
    assert_eq!(state.as_deref(), Some("\"login_account\";r=0;t=42"));
    let busy = PasswordError::Busy {
        retry_after_secs: 1,
    };
    let (status, code, _, retry) = answer(LoginError::from(busy), "retry-after");
    assert_eq!(
        (status, code.as_str(), retry.as_deref()),
        (503, "busy", Some("1"))
    );
    for (e, status, code) in [
        (LoginError::InvalidCredentials, 401, "invalid_credentials"),
        (LoginError::ChallengeExpired, 401, "challenge_expired"),
        (
            LoginError::ReauthenticationRequired,
            401,
            "reauthentication_required",
        ),
        (LoginError::AmbiguousProof, 400, "bad_request"),
        (
            LoginError::Audit(AuditError::Unavailable),
            503,
            "audit_unavailable",
        ),
        (
            LoginError::LimiterGone(actix::MailboxError::Closed),
            503,
            "service_unavailable",
        ),
        (LoginError::UnknownRole("x".into()), 500, "internal_error"),
    ] {
        let (s, c, ..) = answer(e, "");
        assert_eq!((s, c.as_str()), (status, code));
    }
    let (.., message, _) = answer(LoginError::AmbiguousProof, "");
    assert_eq!(message, "send either code or backup_code, not both");
}

#[test]
fn two_factor_refusals_keep_their_statuses_and_an_unreadable_secret_is_internal() {
    for (e, status, code, message) in [
        (
            TwoFactorError::AlreadyEnabled,
            409,
            "conflict",
            "two-factor authentication is already on; turn it off before enrolling again",
        ),
        (
            TwoFactorError::NoEnrollment,
            409,
            "conflict",
            "no enrollment is in progress; start with setup",
        ),
        (
            TwoFactorError::NotEnabled,
            409,
            "conflict",
            "two-factor authentication is not on",
        ),
        (
            TwoFactorError::Required,
            403,
            "two_factor_required",
            "platform owners must keep two-factor authentication turned on",
        ),
        (
            TwoFactorError::SecretUnreadable {
                factor: uuid::Uuid::nil(),
            },
            500,
            "internal_error",
            "internal error",
        ),
    ] {
        let (s, c, m, _) = answer(e, "");
        assert_eq!((s, c.as_str(), m.as_str()), (status, code, message));
    }
}

#[test]
fn route_check_refusals_keep_their_statuses() {
    for (e, status, code) in [
        (AuthError::Forbidden, 403, "forbidden"),
        (AuthError::CrossTenantDenied, 403, "cross_tenant_denied"),
        (AuthError::TwoFactorRequired, 403, "two_factor_required"),
        (
            AuthError::Audit(AuditError::Unavailable),
            503,
            "audit_unavailable",
        ),
    ] {
        let (s, c, ..) = answer(e, "");
        assert_eq!((s, c.as_str()), (status, code));
    }
}

#[test]
fn account_refusals_keep_their_statuses() {
    use crate::users::UserError;
    for (e, status, code) in [
        (
            ApiError::from(LoginError::AccountDisabled),
            403,
            "account_disabled",
        ),
        (
            ApiError::PasswordChangeRequired,
            403,
            "password_change_required",
        ),
        (
            ApiError::from(crate::ws::UpgradeError::PasswordChangeRequired),
            403,
            "password_change_required",
        ),
        (ApiError::from(UserError::OwnAccount), 409, "conflict"),
        (ApiError::from(UserError::Forbidden), 403, "forbidden"),
        (ApiError::from(UserError::NotFound), 404, "not_found"),
        (
            ApiError::from(LoginError::Account(UserError::Invalid {
                field: "new_password",
                reason: "too short",
            })),
            422,
            "validation_failed",
        ),
        (
            ApiError::from(crate::db::Denied::NotTenantAdmin),
            403,
            "forbidden",
        ),
    ] {
        let (s, c, ..) = answer(e, "");
        assert_eq!((s, c.as_str()), (status, code));
    }
}

#[test]
fn a_wrong_method_is_405_with_allow() {
    let e = ApiError::MethodNotAllowed {
        allow: "GET, POST".into(),
    };
    let (status, code, message, allow) = answer(e, "allow");
    assert_eq!((status, code.as_str()), (405, "method_not_allowed"));
    assert_eq!(allow.as_deref(), Some("GET, POST"));
    assert!(message.contains("GET, POST"), "{message}");
}

/// Every code `ApiError::code` can answer is in the error table of docs/api.md.
#[test]
fn every_error_code_is_in_the_documented_table() {
    let source = include_str!("../error.rs");
    let body = source
        .split("pub fn code(&self)")
        .nth(1)
        .and_then(|rest| rest.split("\n    }\n").next())
        .expect("ApiError::code");
    let codes: Vec<&str> = body
        .lines()
        .filter_map(|l| l.split("=> \"").nth(1))
        .filter_map(|l| l.split('"').next())
        .collect();
    assert!(codes.len() > 20, "read the codes: {codes:?}");
    let docs = include_str!("../../docs/api.md");
    let table: Vec<&str> = docs
        .split("## Errors")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the Errors section")
        .lines()
        .filter(|l| l.starts_with('|'))
        .collect();
    for code in codes {
        let cell = format!("| `{code}` |");
        assert!(
            table.iter().any(|row| row.ends_with(&cell)),
            "{code} is not in the error table of docs/api.md"
        );
    }
}

/// One error of every variant (and both contexts of a wrong code). The match below has no
/// wildcard: a new variant does not compile until it is added here, and so to the check of
/// [`CODES`].
fn one_of_each() -> Vec<ApiError> {
    fn listed(e: &ApiError) {
        match e {
            ApiError::Unauthenticated
            | ApiError::InvalidCredentials
            | ApiError::Forbidden
            | ApiError::CrossTenantDenied
            | ApiError::TwoFactorEnrollmentRequired
            | ApiError::TwoFactorRequired
            | ApiError::InvalidCode(_)
            | ApiError::ChallengeExpired
            | ApiError::OriginNotAllowed
            | ApiError::NotFound
            | ApiError::MethodNotAllowed { .. }
            | ApiError::BadRequest(_)
            | ApiError::Validation { .. }
            | ApiError::Conflict(_)
            | ApiError::InvalidTransition { .. }
            | ApiError::PayloadTooLarge
            | ApiError::TooManyAttempts(_)
            | ApiError::IpBanned { .. }
            | ApiError::TooManyConnectionAttempts(_)
            | ApiError::TooManyConnections(_)
            | ApiError::AuditUnavailable
            | ApiError::Unavailable
            | ApiError::Busy { .. }
            | ApiError::ReauthenticationRequired
            | ApiError::AccountDisabled
            | ApiError::PasswordChangeRequired
            | ApiError::TenantSuspended
            | ApiError::Internal(_) => {}
        }
    }
    let all = vec![
        ApiError::Unauthenticated,
        ApiError::InvalidCredentials,
        ApiError::Forbidden,
        ApiError::CrossTenantDenied,
        ApiError::TwoFactorEnrollmentRequired,
        ApiError::TwoFactorRequired,
        ApiError::InvalidCode(CodeContext::Login),
        ApiError::InvalidCode(CodeContext::Confirmation),
        ApiError::ChallengeExpired,
        ApiError::OriginNotAllowed,
        ApiError::NotFound,
        ApiError::MethodNotAllowed {
            allow: "GET".into(),
        },
        ApiError::BadRequest("x".into()),
        ApiError::validation("f", "m"),
        ApiError::Conflict("x".into()),
        ApiError::InvalidTransition {
            from: "open".into(),
            to: "open".into(),
        },
        ApiError::PayloadTooLarge,
        ApiError::TooManyAttempts(limited()),
        ApiError::IpBanned {
            retry_after_secs: 1,
        },
        ApiError::TooManyConnectionAttempts(limited()),
        ApiError::TooManyConnections(limited()),
        ApiError::AuditUnavailable,
        ApiError::Unavailable,
        ApiError::Busy {
            retry_after_secs: 1,
        },
        ApiError::ReauthenticationRequired,
        ApiError::AccountDisabled,
        ApiError::PasswordChangeRequired,
        ApiError::TenantSuspended,
        ApiError::internal(anyhow::anyhow!("x")),
    ];
    all.iter().for_each(listed);
    all
}

/// `CODES`, which the OpenAPI document's error schemas are built from, is exactly what the
/// variants answer.
#[test]
fn the_code_list_is_what_the_variants_answer() {
    let mut answered: Vec<(&str, u16)> = one_of_each()
        .iter()
        .map(|e| (e.code(), e.status_code().as_u16()))
        .collect();
    let mut listed = CODES.to_vec();
    answered.sort();
    answered.dedup();
    listed.sort();
    assert_eq!(answered, listed);
}
