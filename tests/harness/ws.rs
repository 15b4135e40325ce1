//! A WebSocket test client (awc) with bounded waits, a raw one spoken by hand over TCP (for
//! what a well-behaved client library would never send), and helpers for `/ws`.

use std::time::Duration;

use actix_codec::Framed;
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;

use super::{Client, TestApp};

pub mod raw;

/// How long a test waits for one frame before failing.
pub const FRAME_WAIT: Duration = Duration::from_secs(10);

/// An open WebSocket.
pub struct Ws {
    framed: Framed<BoxedSocket, Codec>,
}

/// Opens `/ws<query>` with the given headers; `Err(status)` when the server refused the upgrade.
pub async fn open(app: &TestApp, query: &str, headers: &[(&str, String)]) -> Result<Ws, u16> {
    open_at(&app.base, query, headers).await
}

/// Like [`open`], on the server (or load balancer) at `base`.
pub async fn open_at(base: &str, query: &str, headers: &[(&str, String)]) -> Result<Ws, u16> {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let mut req = client
        .ws(format!("{base}/ws{query}"))
        .max_frame_size(1 << 20);
    for (name, value) in headers {
        req = req.set_header(*name, value.as_str());
    }
    match req.connect().await {
        Ok((_, framed)) => Ok(Ws { framed }),
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) => Err(s.as_u16()),
        Err(e) => panic!("websocket connect failed: {e}"),
    }
}

/// Opens a socket with a fresh ticket of `client` and reads the welcome.
pub async fn open_with_ticket(app: &TestApp, client: &Client) -> (Ws, Value) {
    let ticket = ticket(client).await;
    let mut ws = open(app, &format!("?ticket={ticket}"), &[])
        .await
        .expect("upgrade with a fresh ticket");
    let welcome = ws.json().await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    (ws, welcome)
}

/// A fresh ticket for the client's session.
pub async fn ticket(client: &Client) -> String {
    let r = client
        .post("/api/v1/ws/ticket", &serde_json::json!({}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["expires_in"], 30);
    r.body["ticket"].as_str().expect("ticket").to_string()
}

/// The bearer header of a signed-in client.
pub fn bearer(client: &Client) -> (&'static str, String) {
    (
        "authorization",
        format!("Bearer {}", client.token.as_deref().expect("signed in")),
    )
}

impl Ws {
    pub async fn send_text(&mut self, text: impl Into<String>) {
        let text: String = text.into();
        self.framed
            .send(Message::Text(text.into()))
            .await
            .expect("send text");
    }

    pub async fn send_json(&mut self, value: &Value) {
        self.send_text(value.to_string()).await;
    }

    pub async fn send_binary(&mut self, data: &[u8]) {
        self.framed
            .send(Message::Binary(data.to_vec().into()))
            .await
            .expect("send binary");
    }

    /// The next frame other than pings (which are answered), within [`FRAME_WAIT`].
    pub async fn frame(&mut self) -> Option<Frame> {
        loop {
            let next = actix_web::rt::time::timeout(FRAME_WAIT, self.framed.next())
                .await
                .expect("no frame in time");
            match next {
                Some(Ok(Frame::Ping(p))) => {
                    let _ = self.framed.send(Message::Pong(p)).await;
                }
                Some(Ok(frame)) => return Some(frame),
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// The next frame as it comes (pings are not answered), within [`FRAME_WAIT`].
    pub async fn raw_frame(&mut self) -> Option<Frame> {
        actix_web::rt::time::timeout(FRAME_WAIT, self.framed.next())
            .await
            .expect("no frame in time")
            .and_then(Result::ok)
    }

    /// The next text frame, as sent.
    pub async fn text(&mut self) -> String {
        match self.frame().await {
            Some(Frame::Text(bytes)) => String::from_utf8(bytes.to_vec()).expect("UTF-8 frame"),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next text frame, parsed.
    pub async fn json(&mut self) -> Value {
        serde_json::from_str(&self.text().await).expect("JSON frame")
    }

    /// Reads until the server closes; returns the close code.
    pub async fn close_code(&mut self) -> u16 {
        loop {
            match self.frame().await {
                Some(Frame::Close(reason)) => {
                    return reason.map(|r| u16::from(r.code)).unwrap_or(1005);
                }
                Some(_) => continue,
                None => panic!("the connection ended without a close frame"),
            }
        }
    }

    /// True when nothing but pings arrives within `wait`.
    pub async fn quiet_for(&mut self, wait: Duration) -> bool {
        actix_web::rt::time::timeout(wait, self.frame())
            .await
            .is_err()
    }

    pub async fn close(mut self) {
        let _ = self.framed.send(Message::Close(None)).await;
        let _ = actix_web::rt::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(f)) = self.framed.next().await {
                if matches!(f, Frame::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

/// A server whose audit handle is `audit` (a test's gated or failing sink) instead of its file.
/// The hub and start-up keep the file's handle; everything a request or a socket records goes
/// to `audit`.
pub async fn spawn_with_audit(
    audit: rampart::audit::Audit,
    tweak: impl FnOnce(&mut std::collections::HashMap<String, String>),
) -> TestApp {
    let db = super::TestDb::create();
    let dir = std::env::temp_dir().join(format!("rampart-app-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("app dir");
    let mut vars = super::base_vars(&db, &dir);
    tweak(&mut vars);
    let config = rampart::config::Config::from_map(vars.clone()).expect("test config");
    let url = config.database_url.clone().expect("tests use DATABASE_URL");
    let log = rampart::telemetry::logging::discard();
    let state = rampart::server::prepare(config.clone(), &url, log)
        .await
        .expect("server state")
        .with_audit(audit);
    let pool = rampart::db::DbPool::new(&db.superuser_url(), 2).expect("pool");
    let running = rampart::server::start(state, 1).expect("start server");
    actix_web::rt::spawn(running.server);
    TestApp {
        base: format!("http://{}", running.addr),
        tls: None,
        fixture_url: db.superuser_url(),
        db: std::sync::Arc::new(db),
        pool,
        config,
        dir,
        vars,
        owns_dir: true,
        handle: running.handle,
        metrics_base: running.metrics.map(|(addr, _)| format!("http://{addr}")),
    }
}
