//! Two-factor authentication, attacked through the real server: enrollment, the
//! enrollment-only session, backup codes, turning it off, and secrets at rest. The second step
//! of login is in `two_factor_login`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::client::Reply;
use crate::harness::totp::{self, with_time_left_in_step};
use crate::harness::{Account, Client, TestApp};
use crate::orders_path;

pub(crate) const STEP: u64 = 30;

pub(crate) async fn login(client: &Client, account: &Account) -> Reply {
    client
        .post(
            "/api/v1/auth/login",
            &json!({"email": account.email, "password": account.password}),
        )
        .await
}

/// Signs in a user who has 2FA and returns the challenge of the second step.
pub(crate) async fn challenge(client: &Client, account: &Account) -> String {
    let reply = login(client, account).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["mfa_required"], true, "{:?}", reply.body);
    reply.body["challenge"].as_str().unwrap().to_string()
}

pub(crate) async fn verify(client: &Client, challenge: &str, field: &str, value: &str) -> Reply {
    client
        .post(
            "/api/v1/auth/2fa/verify",
            &json!({"challenge": challenge, field: value}),
        )
        .await
}

/// A well-formed six-digit code that is not `code`.
pub(crate) fn wrong(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 500_001) % 1_000_000)
}

/// The audit events of `kind` once at least `count` are in the file (bounded wait: events
/// below `high` are written shortly after the request is answered).
pub(crate) async fn audited(app: &TestApp, kind: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(app.dir.join("audit.log")).unwrap_or_default();
        let found: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["kind"] == kind)
            .collect();
        if found.len() >= count {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{count} × {kind} not audited: {found:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Draws the path of the server's QR SVG (`M{x} {y}h{w}v{h}H{x}V{y}` runs) at 4 px per unit
/// and decodes it with rqrr.
fn decode_qr_svg(svg: &str) -> String {
    let attr = |name: &str| -> u32 {
        let start = svg.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        svg[start..].split('"').next().unwrap().parse().unwrap()
    };
    let (w, h, scale) = (attr("width"), attr("height"), 4);
    let mut img = image::GrayImage::from_pixel(w * scale, h * scale, image::Luma([255]));
    let d = svg
        .split(" d=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    for run in d.split('M').filter(|r| !r.is_empty()) {
        let nums: Vec<u32> = run
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        let (x, y, rw, rh) = (nums[0], nums[1], nums[2], nums[3]);
        for px in x * scale..(x + rw) * scale {
            for py in y * scale..(y + rh) * scale {
                img.put_pixel(px, py, image::Luma([0]));
            }
        }
    }
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the SVG");
    grids[0].decode().expect("QR decodes").1
}

#[actix_web::test]
async fn setup_returns_the_secret_its_exact_otpauth_url_and_a_qr_code_of_it() {
    let app = TestApp::spawn().await;
    let owner = app.platform_owner().await;
    let client = app.login(&owner).await;
    let setup = client.post("/api/v1/auth/2fa/setup", &json!({})).await;
    assert_eq!(setup.status, 200, "{:?}", setup.body);
    let secret = setup.body["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32, "160 bits, unpadded base32");
    assert!(secret
        .bytes()
        .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c)));
    let url = setup.body["otpauth_url"].as_str().unwrap();
    let label = owner.email.replace('@', "%40");
    assert_eq!(
        url,
        format!(
            "otpauth://totp/Rampart:{label}?secret={secret}&issuer=Rampart&algorithm=SHA1&digits=6&period=30"
        )
    );
    assert_eq!(decode_qr_svg(setup.body["qr_svg"].as_str().unwrap()), url);
    audited(&app, "twofa.enrollment_started", 1).await;
}

#[actix_web::test]
async fn enrolling_again_before_enabling_replaces_the_pending_secret() {
    let app = TestApp::spawn().await;
    let owner = app.login(&app.platform_owner().await).await;
    let first = owner.post("/api/v1/auth/2fa/setup", &json!({})).await;
    let second = owner.post("/api/v1/auth/2fa/setup", &json!({})).await;
    let (old, new) = (
        first.body["secret"].as_str().unwrap(),
        second.body["secret"].as_str().unwrap(),
    );
    assert_ne!(old, new);
    with_time_left_in_step(3).await;
    let stale = owner
        .post(
            "/api/v1/auth/2fa/enable",
            &json!({"code": totp::code(old, totp::now())}),
        )
        .await;
    assert_eq!((stale.status, stale.code()), (400, "invalid_code"));
    let ok = owner
        .post(
            "/api/v1/auth/2fa/enable",
            &json!({"code": totp::code(new, totp::now())}),
        )
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let again = owner.post("/api/v1/auth/2fa/setup", &json!({})).await;
    assert_eq!((again.status, again.code()), (409, "conflict"));
}

#[actix_web::test]
async fn an_owner_enrolls_from_an_enrollment_only_session_that_then_becomes_verified() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let owner = app.platform_owner().await;
    let reply = login(&app.client(), &owner).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["enrollment_required"], true);
    assert_eq!(reply.body["user"]["role"], "platform_owner");
    let client = Client::new(
        &app.base,
        Some(reply.body["token"].as_str().unwrap().into()),
    );

    for path in ["/api/v1/platform/tenants".to_string(), orders_path(a.id)] {
        let refused = client.get(&path).await;
        assert_eq!(
            (refused.status, refused.code()),
            (403, "two_factor_enrollment_required"),
            "{path}"
        );
    }
    let me = client.get("/api/v1/auth/me").await;
    assert_eq!(
        (me.status, me.body["two_factor_enabled"].clone()),
        (200, json!(false))
    );

    let setup = client.post("/api/v1/auth/2fa/setup", &json!({})).await;
    let secret = setup.body["secret"].as_str().unwrap().to_string();
    with_time_left_in_step(3).await;
    let code = totp::code(&secret, totp::now());
    let bad = client
        .post("/api/v1/auth/2fa/enable", &json!({"code": wrong(&code)}))
        .await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_code"));
    let enabled = client
        .post("/api/v1/auth/2fa/enable", &json!({"code": code}))
        .await;
    assert_eq!(enabled.status, 200, "{:?}", enabled.body);
    let codes: Vec<&str> = enabled.body["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), 10);
    assert_eq!(
        codes.iter().collect::<std::collections::HashSet<_>>().len(),
        10
    );

    // The same token is now fully verified.
    assert_eq!(client.get("/api/v1/platform/tenants").await.status, 200);
    assert_eq!(client.get(&orders_path(a.id)).await.status, 200);
    assert_eq!(
        client.get("/api/v1/auth/me").await.body["two_factor_enabled"],
        true
    );
    audited(&app, "twofa.enabled", 1).await;
}

#[actix_web::test]
async fn enrollment_only_sessions_reach_auth_routes_and_nothing_else() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let client = app.login(&app.platform_owner().await).await;
    let host = app.base.trim_start_matches("http://").to_string();
    let cookie = client
        .clone()
        .with_header("origin", &format!("http://{host}"));
    let refused = [
        client.get("/api/v1/platform/tenants").await,
        client
            .post(
                "/api/v1/platform/tenants",
                &json!({"slug": "x", "name": "X"}),
            )
            .await,
        client.get(&orders_path(a.id)).await,
        cookie
            .post(&orders_path(a.id), &crate::order_body("tea", 1, 1))
            .await,
    ];
    for r in refused {
        assert_eq!(
            (r.status, r.code()),
            (403, "two_factor_enrollment_required")
        );
    }
    assert_eq!(client.get("/api/v1/auth/me").await.status, 200);
    assert_eq!(
        client.post("/api/v1/auth/logout", &json!({})).await.status,
        204
    );
    assert_eq!(client.get("/api/v1/auth/me").await.status, 401);
}

#[actix_web::test]
async fn regenerating_backup_codes_needs_a_current_code_and_kills_the_old_set() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let enrolled = app.enroll(&a.staff).await;
    let code = totp::code(&enrolled.secret, totp::now() + STEP);
    let path = "/api/v1/auth/2fa/backup-codes";
    let refused = enrolled
        .client
        .post(path, &json!({"code": wrong(&code)}))
        .await;
    assert_eq!((refused.status, refused.code()), (400, "invalid_code"));
    let fresh = enrolled.client.post(path, &json!({"code": code})).await;
    assert_eq!(fresh.status, 200, "{:?}", fresh.body);
    let new_codes = fresh.body["backup_codes"].as_array().unwrap();
    assert_eq!(new_codes.len(), 10);
    audited(&app, "twofa.backup_codes_regenerated", 1).await;

    let c = challenge(&app.client(), &a.staff).await;
    let old = verify(&app.client(), &c, "backup_code", &enrolled.backup_codes[0]).await;
    assert_eq!((old.status, old.code()), (401, "invalid_code"));
    let new = verify(
        &app.client(),
        &c,
        "backup_code",
        new_codes[0].as_str().unwrap(),
    )
    .await;
    assert_eq!(new.status, 200);
}

#[actix_web::test]
async fn owners_cannot_turn_2fa_off_and_other_users_can() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let owner = app.platform_owner().await;
    let enrolled_owner = app.enroll(&owner).await;
    let code = totp::code(&enrolled_owner.secret, totp::now() + STEP);
    let body = json!({"code": code}).to_string().into_bytes();
    let refused = enrolled_owner
        .client
        .send(awc::http::Method::DELETE, "/api/v1/auth/2fa", Some(body))
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (403, "two_factor_required")
    );

    let staff = app.enroll(&a.staff).await;
    let code = totp::code(&staff.secret, totp::now() + STEP);
    let delete = |code: String| {
        let client = staff.client.clone();
        async move {
            let body = json!({"code": code}).to_string().into_bytes();
            client
                .send(awc::http::Method::DELETE, "/api/v1/auth/2fa", Some(body))
                .await
        }
    };
    let bad = delete(wrong(&code)).await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_code"));
    assert_eq!(delete(code).await.status, 204);
    assert_eq!(
        staff.client.get("/api/v1/auth/me").await.body["two_factor_enabled"],
        false
    );
    // Password alone signs in again.
    let direct = login(&app.client(), &a.staff).await;
    assert!(direct.body["token"].is_string(), "{:?}", direct.body);
    audited(&app, "twofa.disabled", 1).await;
}

#[actix_web::test]
async fn platform_routes_need_a_verified_second_factor() {
    let app = TestApp::spawn().await;
    let owner = app.platform_owner().await;
    let enrolled = app.enroll(&owner).await;
    assert_eq!(
        enrolled.client.get("/api/v1/platform/tenants").await.status,
        200
    );
    // Password alone no longer gives an owner a session: only a challenge.
    let reply = login(&app.client(), &owner).await;
    assert!(reply.body.get("token").is_none(), "{:?}", reply.body);
    let c = reply.body["challenge"].as_str().unwrap();
    let code = totp::code(&enrolled.secret, totp::now() + STEP);
    let done = verify(&app.client(), c, "code", &code).await;
    let verified = Client::new(&app.base, Some(done.body["token"].as_str().unwrap().into()));
    assert_eq!(verified.get("/api/v1/platform/tenants").await.status, 200);
}

#[actix_web::test]
async fn secrets_and_codes_never_reach_the_database_logs_or_audit_in_clear() {
    let app = TestApp::spawn_logged().await;
    let a = app.tenant("alpha").await;
    let owner = app.platform_owner().await;
    let enrolled = [app.enroll(&owner).await, app.enroll(&a.staff).await];
    let c = challenge(&app.client(), &a.staff).await;
    let code = totp::code(&enrolled[1].secret, totp::now() + STEP);
    assert_eq!(verify(&app.client(), &c, "code", &code).await.status, 200);
    audited(&app, "twofa.verified", 1).await;

    let dump = app.db.dump();
    assert!(dump.contains("second_factors"), "the dump covers the table");
    let audit = std::fs::read_to_string(app.dir.join("audit.log")).unwrap();
    let logs = std::fs::read_to_string(app.dir.join("server.log")).unwrap();
    assert!(
        logs.contains("/api/v1/auth/2fa/enable"),
        "the log is captured"
    );
    for e in &enrolled {
        let raw_hex = hex::encode(totp::base32_decode(&e.secret));
        let mut needles = vec![e.secret.clone(), e.secret.to_lowercase(), raw_hex];
        for b in &e.backup_codes {
            needles.push(b.clone());
            needles.push(b.replace('-', ""));
        }
        for needle in &needles {
            for (name, text) in [("database", &dump), ("audit", &audit), ("logs", &logs)] {
                assert!(
                    !text.contains(needle.as_str()),
                    "{needle} found in the {name}"
                );
            }
        }
    }
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[actix_web::test]
async fn second_factor_rows_are_visible_only_to_their_own_user() {
    use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
    let app = TestApp::spawn().await;
    let a = app.tenant("alpha").await;
    let owner = app.platform_owner().await;
    let mut ids = Vec::new();
    for account in [&a.staff, &a.admin, &owner] {
        let enrolled = app.enroll(account).await;
        let me = enrolled.client.get("/api/v1/auth/me").await;
        ids.push(me.body["id"].as_str().unwrap().to_string());
    }
    let (staff, owner_id) = (&ids[0], &ids[2]);
    let stranger = uuid::Uuid::new_v4().to_string();
    // (request role, app.tenant_id, app.user_id) → rows of second_factors, backup_codes seen.
    let cases = [
        ("rampart_app", a.id.to_string(), staff.clone(), (1, 10)),
        ("rampart_app", a.id.to_string(), String::new(), (0, 0)),
        ("rampart_app", String::new(), staff.clone(), (0, 0)),
        ("rampart_platform", String::new(), owner_id.clone(), (1, 10)),
        ("rampart_platform", a.id.to_string(), stranger, (0, 0)),
    ];
    let mut conn = diesel_async::AsyncPgConnection::establish(&app.db.plain_url())
        .await
        .unwrap();
    for (role, tenant, user, expected) in cases {
        conn.batch_execute(&format!(
            "BEGIN; SET LOCAL ROLE {role}; \
             SELECT set_config('app.tenant_id', '{tenant}', true), \
                    set_config('app.user_id', '{user}', true)"
        ))
        .await
        .unwrap();
        let mut seen = [0i64; 2];
        for (i, table) in ["second_factors", "backup_codes"].iter().enumerate() {
            let c: Count = diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
                .get_result(&mut conn)
                .await
                .unwrap();
            seen[i] = c.n;
        }
        conn.batch_execute("ROLLBACK").await.unwrap();
        assert_eq!(
            (seen[0], seen[1]),
            expected,
            "{role} tenant={tenant:?} user={user:?}"
        );
    }
}
