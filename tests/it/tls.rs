//! TLS everywhere it can be: PostgreSQL (`sslmode`, `sslrootcert`), Redis (`rediss://`,
//! `RAMPART_REDIS_CA_FILE`) and the HTTPS listener, against real servers speaking TLS with
//! certificates of a private test CA.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart::db::tls::connect;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::tls::{Ca, Issued, TlsDir, TlsPostgres, TlsRedis};
use crate::harness::ws::open_with_ticket;
use crate::harness::TestApp;
use crate::{order_body, order_path, orders_path};

/// A CA, a server certificate of it for `localhost` and `127.0.0.1`, and its file.
struct Pki {
    ca: Ca,
    server: Issued,
    ca_file: std::path::PathBuf,
    dir: TlsDir,
}

fn pki() -> Pki {
    let dir = TlsDir::new();
    let ca = Ca::new("rampart test CA");
    let server = ca.issue(&["localhost", "127.0.0.1"]);
    let ca_file = ca.write(&dir.path("ca.crt"));
    Pki {
        ca,
        server,
        ca_file,
        dir,
    }
}

/// Another CA, trusted by nobody here.
fn other_ca_file(dir: &TlsDir) -> String {
    let file = Ca::new("unrelated CA").write(&dir.path("other-ca.crt"));
    file.display().to_string()
}

fn verify_full(pg: &TlsPostgres, db: &str, ca: &Path) -> String {
    pg.url(
        db,
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    )
}

/// Whether the connection to `url` is encrypted, by PostgreSQL's own account.
async fn server_sees_ssl(url: &str) -> bool {
    use diesel::sql_types::Bool;
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Ssl {
        #[diesel(sql_type = Bool)]
        ssl: bool,
    }
    let mut conn = connect(url).await.expect("connect");
    let row: Ssl = diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .get_result(&mut conn)
        .await
        .expect("pg_stat_ssl");
    row.ssl
}

#[actix_web::test]
async fn the_server_works_over_tls_to_postgres_and_redis() {
    let pki = pki();
    let pg = TlsPostgres::start(Some(&pki.server));
    pg.create_database("rampart_tls").await;
    let redis = TlsRedis::start(&pki.server, &pki.ca);
    let db_url = verify_full(&pg, "rampart_tls", &pki.ca_file);
    assert!(
        server_sees_ssl(&db_url).await,
        "the connection is encrypted"
    );
    let (db, rurl, ca) = (db_url.clone(), redis.url("localhost"), pki.ca_file.clone());
    let tls_vars = move |v: &mut HashMap<String, String>| {
        v.insert("DATABASE_URL".into(), db);
        v.insert("REDIS_URL".into(), rurl);
        v.insert("RAMPART_REDIS_CA_FILE".into(), ca.display().to_string());
    };
    let one = TestApp::try_spawn_elsewhere(tls_vars.clone())
        .await
        .expect("starts over TLS");
    let ready = one.client().get("/readyz").await;
    assert_eq!(ready.status, 200, "{:?}", ready.body);
    assert_eq!(
        (&ready.body["database"], &ready.body["redis"]),
        (&json!("ok"), &json!("connected"))
    );

    // Sign-in, an order written and read back, and its event on a WebSocket.
    let tenant = one.tenant("tls").await;
    let staff = one.login(&tenant.staff).await;
    let (mut socket, _) = open_with_ticket(&one, &staff).await;
    socket
        .send_json(&json!({"type": "subscribe", "channel": "orders"}))
        .await;
    assert_eq!(socket.json().await["type"], "subscribed");
    let created = staff
        .post(&orders_path(tenant.id), &order_body("tea", 2, 350))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_str().expect("order id").to_string();
    let read = staff.get(&order_path(tenant.id, &id)).await;
    assert_eq!((read.status, &read.body["id"]), (200, &json!(id)));
    let event = socket.json().await;
    assert_eq!(
        (event["event"].as_str(), &event["data"]["id"]),
        (Some("order.created"), &json!(id))
    );

    // Shared state through Redis over TLS: a second instance knows the session, and a
    // logout through it ends the session on the first.
    let two = one.spawn_second(|_| {}).await;
    let on_two = crate::harness::Client::new(&two.base, staff.token.clone());
    assert_eq!(on_two.get("/api/v1/auth/me").await.status, 200);
    assert_eq!(
        on_two.post("/api/v1/auth/logout", &json!({})).await.status,
        204
    );
    assert_eq!(staff.get("/api/v1/auth/me").await.status, 401);
}

#[actix_web::test]
async fn postgres_with_a_certificate_of_another_ca_is_refused() {
    let pki = pki();
    let pg = TlsPostgres::start(Some(&pki.server));
    pg.create_database("rampart_tls").await;
    let wrong = other_ca_file(&pki.dir);
    let url = pg.url(
        "rampart_tls",
        &format!("sslmode=verify-full&sslrootcert={wrong}"),
    );
    let err = TestApp::try_spawn_elsewhere(move |v| {
        v.insert("DATABASE_URL".into(), url);
    })
    .await
    .err()
    .expect("refuses to start");
    let text = format!("{err:#}");
    assert!(
        text.contains("cannot connect to the database") && text.contains("UnknownIssuer"),
        "{text}"
    );
    // The same CA is refused by verify-ca too; the right one is accepted by both.
    let verify_ca = |ca: &str| {
        pg.url(
            "rampart_tls",
            &format!("sslmode=verify-ca&sslrootcert={ca}"),
        )
    };
    assert!(connect(&verify_ca(&wrong)).await.is_err());
    assert!(connect(&verify_ca(&pki.ca_file.display().to_string()))
        .await
        .is_ok());
}

#[actix_web::test]
async fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
    let dir = TlsDir::new();
    let ca = Ca::new("rampart test CA");
    // A certificate for a name that is not the address connected to.
    let server = ca.issue(&["db.internal.example"]);
    let ca_file = ca.write(&dir.path("ca.crt")).display().to_string();
    let pg = TlsPostgres::start(Some(&server));
    let full = pg.url(
        "postgres",
        &format!("sslmode=verify-full&sslrootcert={ca_file}"),
    );
    let err = connect(&full).await.err().expect("name mismatch refused");
    assert!(err.to_string().contains("not valid for name"), "{err}");
    let chain_only = pg.url(
        "postgres",
        &format!("sslmode=verify-ca&sslrootcert={ca_file}"),
    );
    assert!(server_sees_ssl(&chain_only).await);
    // require without a CA encrypts without checking the certificate, as libpq does.
    assert!(server_sees_ssl(&pg.url("postgres", "sslmode=require")).await);
    assert!(!server_sees_ssl(&pg.url("postgres", "sslmode=disable")).await);
}

#[actix_web::test]
async fn require_against_a_server_without_tls_fails_clearly() {
    let pg = TlsPostgres::start(None);
    let err = connect(&pg.url("postgres", "sslmode=require"))
        .await
        .err()
        .expect("no TLS, no connection");
    assert!(err.to_string().contains("does not support TLS"), "{err}");
    // prefer falls back to a plain connection.
    assert!(!server_sees_ssl(&pg.url("postgres", "sslmode=prefer")).await);
    let url = pg.url("postgres", "sslmode=require");
    let err = TestApp::try_spawn_elsewhere(move |v| {
        v.insert("DATABASE_URL".into(), url);
    })
    .await
    .err()
    .expect("refuses to start");
    assert!(
        format!("{err:#}").contains("does not support TLS"),
        "{err:#}"
    );
}

#[actix_web::test]
async fn redis_with_a_certificate_of_another_ca_leaves_the_instance_on_local_state() {
    let pki = pki();
    let redis = TlsRedis::start(&pki.server, &pki.ca);
    let (url, wrong) = (redis.url("localhost"), other_ca_file(&pki.dir));
    let app = TestApp::spawn_with(move |v| {
        v.insert("REDIS_URL".into(), url);
        v.insert("RAMPART_REDIS_CA_FILE".into(), wrong);
    })
    .await;
    let ready = app.client().get("/readyz").await;
    assert_eq!(ready.body["redis"], "fallback", "{:?}", ready.body);
}

#[test]
fn a_missing_or_misplaced_ca_file_is_a_start_up_error_naming_the_variable() {
    use rampart::config::Config;
    let vars = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let err = Config::from_map(vars(&[
        ("REDIS_URL", "rediss://localhost:6380/"),
        ("RAMPART_REDIS_CA_FILE", "/nonexistent/ca.pem"),
    ]))
    .unwrap_err();
    assert_eq!(err.var, "RAMPART_REDIS_CA_FILE");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    let pki = pki();
    let ca = pki.ca_file.display().to_string();
    let err = Config::from_map(vars(&[
        ("REDIS_URL", "redis://localhost:6379/"),
        ("RAMPART_REDIS_CA_FILE", &ca),
    ]))
    .unwrap_err();
    assert_eq!(err.var, "RAMPART_REDIS_CA_FILE");
    let err = Config::from_map(vars(&[("RAMPART_TLS_CERT_FILE", &ca)])).unwrap_err();
    assert_eq!(err.var, "RAMPART_TLS_KEY_FILE");
}

/// Opens a TLS connection to `addr` trusting `ca_pem`; the server's certificate (DER).
async fn tls_connect(
    addr: &str,
    ca_pem: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

fn peer_certificate(tls: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> Vec<u8> {
    tls.get_ref().1.peer_certificates().expect("a certificate")[0].to_vec()
}

/// Sends one HTTP/1.1 request over `tls` and returns the whole response (the server closes).
async fn request(
    tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    head: &str,
    body: &str,
) -> String {
    let text = format!(
        "{head}\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(text.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// The listener's address from an `https://` base.
fn addr_of(base: &str) -> String {
    base.strip_prefix("https://")
        .expect("https base")
        .to_string()
}

#[actix_web::test]
async fn https_serves_the_certificate_and_a_reload_swaps_it_for_new_connections() {
    let pki = pki();
    let (cert, key) = (pki.dir.path("listener.crt"), pki.dir.path("listener.key"));
    pki.server.write(&cert, &key);
    let (c, k) = (cert.display().to_string(), key.display().to_string());
    let app = TestApp::spawn_with(move |v| {
        v.insert("RAMPART_TLS_CERT_FILE".into(), c);
        v.insert("RAMPART_TLS_KEY_FILE".into(), k);
    })
    .await;
    let addr = addr_of(&app.base);
    let tenant = app.tenant("https").await;

    // A sign-in over HTTPS: the session cookie is Secure.
    let mut tls = tls_connect(&addr, &pki.ca.pem()).await.expect("handshake");
    assert_eq!(peer_certificate(&tls), pki.server.der);
    let body = json!({"email": tenant.staff.email, "password": tenant.staff.password});
    let reply = request(
        &mut tls,
        "POST /api/v1/auth/login HTTP/1.1",
        &body.to_string(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let cookie = reply
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a session cookie");
    assert!(cookie.contains("Secure"), "{cookie}");
    // Plain HTTP on the TLS port is not served.
    let mut plain = tokio::net::TcpStream::connect(&addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "plain HTTP answered");

    // A bad replacement is refused and the old certificate stays.
    let certs = app.tls.clone().expect("the listener serves HTTPS");
    std::fs::write(&key, "not a key").unwrap();
    assert!(certs.reload().is_err());
    let tls = tls_connect(&addr, &pki.ca.pem())
        .await
        .expect("still served");
    assert_eq!(peer_certificate(&tls), pki.server.der);

    // A renewed certificate is served to the next connection once reloaded.
    let renewed = pki.ca.issue(&["localhost", "127.0.0.1"]);
    renewed.write(&cert, &key);
    certs.reload().expect("reload");
    let tls = tls_connect(&addr, &pki.ca.pem()).await.expect("handshake");
    assert_eq!(peer_certificate(&tls), renewed.der);
}

#[actix_web::test]
async fn sighup_reloads_the_certificate_of_the_running_binary() {
    let pki = pki();
    let (cert, key) = (pki.dir.path("listener.crt"), pki.dir.path("listener.key"));
    pki.server.write(&cert, &key);
    let db = crate::harness::TestDb::create();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = crate::cli::rampart()
        .arg("serve")
        .env("DATABASE_URL", db.superuser_url())
        .env("RAMPART_DATA_DIR", pki.dir.path("data"))
        .env("RAMPART_AUDIT_LOG", pki.dir.path("audit.log"))
        .env("RAMPART_BIND", &addr)
        .env("RAMPART_TLS_CERT_FILE", &cert)
        .env("RAMPART_TLS_KEY_FILE", &key)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let served = || async {
        tls_connect(&addr, &pki.ca.pem())
            .await
            .ok()
            .map(|t| peer_certificate(&t))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(der) = served().await {
            assert_eq!(der, pki.server.der);
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "server exited");
        assert!(Instant::now() < deadline, "server did not come up");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let renewed = pki.ca.issue(&["localhost", "127.0.0.1"]);
    renewed.write(&cert, &key);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while served().await.as_ref() != Some(&renewed.der) {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP kept it running"
    );
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(child.wait().unwrap().success());
}
