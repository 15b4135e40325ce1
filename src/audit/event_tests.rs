//! Tests of audit events: bounded strings, severities, the wire form.

use super::*;

#[test]
fn long_strings_are_cut_on_a_character_boundary_and_marked() {
    let email = format!("{}@example.test", "é".repeat(30_000));
    let e = Event::new(Kind::AuthLoginFailed)
        .actor(Actor::sign_in_attempt(&email, None))
        .details(serde_json::json!({"reason": "x", "ua": ["ok", "€".repeat(500)]}))
        .capped();
    let kept = e.actor.email.as_deref().unwrap();
    assert!(
        kept.len() <= MAX_STRING_BYTES && kept.ends_with('…'),
        "{kept}"
    );
    assert!(kept.starts_with("éé"));
    let ua = e.details["ua"][1].as_str().unwrap();
    assert!(ua.len() <= MAX_STRING_BYTES && ua.ends_with('…'));
    assert_eq!(e.details["ua"][0], "ok");
    assert_eq!(e.details["truncated"], true);
    assert_eq!(e.clone().capped(), e, "idempotent");
    // Short strings are left alone, and nothing is marked.
    let short = Event::new(Kind::AuthLoginFailed)
        .actor(Actor::sign_in_attempt("a@b.example", None))
        .capped();
    assert_eq!(short.actor.email.as_deref(), Some("a@b.example"));
    assert_eq!(short.details, serde_json::json!({}));
    // A string of exactly the limit is kept whole.
    let mut exact = "x".repeat(MAX_STRING_BYTES);
    assert!(!cap(&mut exact));
}

#[test]
fn each_kind_of_actor_serializes_as_the_three_fields_of_the_line() {
    let id = UserId::random();
    let json = |a: &Actor| serde_json::to_string(a).unwrap();
    assert_eq!(
        json(&Actor::user(id, "a@b.example", Role::TenantStaff)),
        format!(r#"{{"user_id":"{id}","email":"a@b.example","role":"tenant_staff"}}"#)
    );
    assert_eq!(
        json(&Actor::sign_in_attempt("a@b.example", Some(id))),
        format!(r#"{{"user_id":"{id}","email":"a@b.example","role":null}}"#)
    );
    assert_eq!(
        json(&Actor::sign_in_attempt("x@y.example", None)),
        r#"{"user_id":null,"email":"x@y.example","role":null}"#
    );
    assert_eq!(
        json(&Actor::system()),
        r#"{"user_id":null,"email":null,"role":null}"#
    );
    assert_eq!(
        json(&Actor::cli()),
        r#"{"user_id":null,"email":null,"role":"cli"}"#
    );
    let raised = Event::new(Kind::SessionRevoked).at_least(Severity::Critical);
    assert_eq!(raised.severity(), Severity::Critical);
    let kept = Event::new(Kind::WsIpBanned).at_least(Severity::Info);
    assert_eq!(kept.severity(), Severity::High);
}

#[test]
fn severities_follow_the_contract() {
    use Kind::*;
    for k in Kind::ALL {
        let expected = match k {
            AlertBruteForce | AlertCrossTenantProbing | TwofaResetRequested => Severity::Critical,
            // Not in the contract's list: the operator's use of the platform door weighs
            // what a platform owner's does.
            PlatformOwnerAccess
            | PlatformOperatorAccess
            | TenantCrossAccessDenied
            | AuthLockedOut
            | TwofaReplayRejected
            | WsIpBanned
            | SystemRedisUnavailable
            | TwofaReset
            | TenantSuspended => Severity::High,
            AuthLoginFailed
            | TwofaFailed
            | TwofaBackupCodeUsed
            | TwofaBackupCodesRegenerated
            | BanLifted
            | UserDisabled
            | UserPasswordChanged
            | UserPasswordReset
            // Not in the contract's list either: a crash tore the log's last line, which an
            // operator should look at, yet nothing was lost from the chain.
            | SystemAuditTornTail
            | TenantCreated
            | TenantResumed => Severity::Warning,
            k if k.as_str().starts_with("ws.") => Severity::Warning,
            _ => Severity::Info,
        };
        assert_eq!(k.severity(), expected, "{}", k.as_str());
        assert_eq!(Kind::parse(k.as_str()), Some(*k));
    }
    // Kinds the contract leaves to "info — the rest", named so a change shows here.
    for k in [
        TwofaDisabled,
        TwofaEnabled,
        UserCreated,
        UserEnabled,
        SessionRevoked,
    ] {
        assert_eq!(k.severity(), Severity::Info, "{}", k.as_str());
    }
}

#[actix_web::test]
async fn events_built_while_serving_a_request_carry_its_id() {
    use crate::telemetry::request_id;
    let inside = request_id::scope("req-7".into(), None, async {
        Event::new(Kind::AuthLoginFailed).details(serde_json::json!({"reason": "x"}))
    })
    .await
    .capped();
    assert_eq!(inside.details["request_id"], "req-7");
    assert_eq!(inside.details["reason"], "x");
    assert_eq!(inside.clone().capped(), inside, "idempotent");
    let outside = Event::new(Kind::AuthLoginFailed).capped();
    assert!(outside.details.get("request_id").is_none());
}

#[test]
fn a_kind_s_index_is_its_place_among_all_kinds() {
    for (i, k) in Kind::ALL.iter().enumerate() {
        assert_eq!(k.index(), i, "{}", k.as_str());
    }
    for (i, s) in Severity::ALL.iter().enumerate() {
        assert_eq!(s.index(), i);
    }
}
