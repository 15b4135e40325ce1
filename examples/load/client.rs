//! Talking to Rampart (or the echo baseline): the users file, login, WebSocket tickets and
//! connections, and the HTTP client every mode shares.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use awc::ws::{Codec, Frame, Message};
use awc::{BoxedSocket, Client, Connector};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;

pub type Conn = actix_codec::Framed<BoxedSocket, Codec>;

/// One line of the users file: `email password tenant_id user_id`.
#[derive(Debug, Clone)]
pub struct UserLine {
    pub email: String,
    pub password: String,
    pub tenant_id: String,
    pub user_id: String,
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Signed {
    pub token: String,
    pub tenant_id: String,
}

pub fn read_users(path: &Path) -> anyhow::Result<Vec<UserLine>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let mut users = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        anyhow::ensure!(
            f.len() == 4,
            "{}:{}: expected `email password tenant_id user_id`",
            path.display(),
            n + 1
        );
        users.push(UserLine {
            email: f[0].into(),
            password: f[1].into(),
            tenant_id: f[2].into(),
            user_id: f[3].into(),
        });
    }
    anyhow::ensure!(!users.is_empty(), "{} lists no users", path.display());
    Ok(users)
}

/// An HTTP client with no cap on simultaneous connections (awc's default is 100, which
/// would serialise the load behind the generator's own pool).
pub fn http() -> Client {
    http_from(None)
}

/// The same, its sockets bound to `source` (one of [`source_ip`]) before they connect.
pub fn http_from(source: Option<IpAddr>) -> Client {
    let mut connector = Connector::new().limit(0).timeout(Duration::from_secs(30));
    if let Some(ip) = source {
        connector = connector.local_address(ip);
    }
    Client::builder()
        .connector(connector)
        .timeout(Duration::from_secs(30))
        .finish()
}

/// The `k`th source address of `--source-ips`: 127.1.0.1, 127.1.0.2, … (all of 127.0.0.0/8
/// is the loopback on Linux). Each address has its own ~28,000 ephemeral ports towards the
/// server's one address and port, so 100,000 connections need at least four; spreading them
/// wider also gives the server's per-IP state many keys, as real clients would.
pub fn source_ip(k: usize) -> IpAddr {
    let k = k % (254 * 254);
    IpAddr::V4(Ipv4Addr::new(
        127,
        1,
        (k / 254 + 1) as u8,
        (k % 254 + 1) as u8,
    ))
}

/// `--source-ips`, set once at start (every mode opens its connections through [`clients`]).
static SOURCES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

pub fn set_sources(n: usize) {
    let _ = SOURCES.set(n);
}

/// One client per source address (one client, the kernel's choice, without `--source-ips`).
pub fn clients() -> Vec<Client> {
    let sources = SOURCES.get().copied().unwrap_or(0);
    if sources <= 1 {
        return vec![http()];
    }
    (0..sources)
        .map(|k| http_from(Some(source_ip(k))))
        .collect()
}

/// A failure, as the code counted in the summary: the HTTP status, or a word.
#[derive(Debug)]
pub struct Failure(pub String);

impl Failure {
    fn io(e: impl std::fmt::Display) -> Failure {
        let text = e.to_string().to_lowercase();
        Failure(if text.contains("timeout") || text.contains("timed out") {
            "timeout".into()
        } else {
            "io".into()
        })
    }
}

pub async fn login(client: &Client, base: &str, user: &UserLine) -> Result<Signed, Failure> {
    #[derive(Deserialize)]
    struct LoginUser {
        tenant_id: Option<String>,
    }
    #[derive(Deserialize)]
    struct LoginReply {
        token: String,
        user: LoginUser,
    }
    let mut res = client
        .post(format!("{base}/api/v1/auth/login"))
        .send_json(&serde_json::json!({"email": user.email, "password": user.password}))
        .await
        .map_err(Failure::io)?;
    if !res.status().is_success() {
        return Err(Failure(format!("login_{}", res.status().as_u16())));
    }
    let reply: LoginReply = res.json().await.map_err(Failure::io)?;
    Ok(Signed {
        token: reply.token,
        tenant_id: reply.user.tenant_id.unwrap_or_default(),
    })
}

/// Signs every user in once (sequentially: password hashing is deliberately slow).
pub async fn login_all(base: &str, users: &[UserLine]) -> anyhow::Result<Vec<Signed>> {
    let client = http();
    let mut out = Vec::with_capacity(users.len());
    for u in users {
        let s = login(&client, base, u)
            .await
            .map_err(|f| anyhow::anyhow!("login of {} failed: {}", u.email, f.0))?;
        out.push(s);
    }
    Ok(out)
}

/// Where to connect: Rampart (a ticket first, then the welcome frame) or the echo baseline.
#[derive(Clone)]
pub enum Target {
    Rampart { base: String },
    Echo { base: String },
}

impl Target {
    fn ws_url(base: &str) -> String {
        let rest = base
            .strip_prefix("http://")
            .map(|r| format!("ws://{r}"))
            .or_else(|| base.strip_prefix("https://").map(|r| format!("wss://{r}")));
        rest.unwrap_or_else(|| base.to_string())
    }
}

async fn ticket(client: &Client, base: &str, token: &str) -> Result<String, Failure> {
    #[derive(Deserialize)]
    struct Ticket {
        ticket: String,
    }
    let mut res = client
        .post(format!("{base}/api/v1/ws/ticket"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(Failure::io)?;
    if !res.status().is_success() {
        return Err(Failure(format!("ticket_{}", res.status().as_u16())));
    }
    let t: Ticket = res.json().await.map_err(Failure::io)?;
    Ok(t.ticket)
}

/// Opens one connection: on Rampart takes a ticket, upgrades and waits for the welcome frame;
/// on the echo server just upgrades.
pub async fn open(client: &Client, target: &Target, token: &str) -> Result<Conn, Failure> {
    let url = match target {
        Target::Rampart { base } => {
            let t = ticket(client, base, token).await?;
            format!("{}/ws?ticket={t}", Target::ws_url(base))
        }
        Target::Echo { base } => format!("{}/ws", Target::ws_url(base)),
    };
    let (_, mut conn) = client.ws(url).connect().await.map_err(|e| match e {
        awc::error::WsClientError::InvalidResponseStatus(s) => {
            Failure(format!("ws_{}", s.as_u16()))
        }
        other => Failure::io(other),
    })?;
    if let Target::Rampart { .. } = target {
        match next_text(&mut conn).await? {
            Reply { kind, .. } if kind == "welcome" => {}
            _ => return Err(Failure("no_welcome".into())),
        }
    }
    Ok(conn)
}

/// The fields of a server frame the generator looks at.
#[derive(Debug, Deserialize)]
pub struct Reply {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub code: Option<String>,
}

/// The next text frame, parsed; answers pings from the server on the way.
pub async fn next_text(conn: &mut Conn) -> Result<Reply, Failure> {
    loop {
        match conn.next().await {
            Some(Ok(Frame::Text(bytes))) => {
                return serde_json::from_slice(&bytes).map_err(|_| Failure("bad_frame".into()))
            }
            Some(Ok(Frame::Ping(p))) => conn.send(Message::Pong(p)).await.map_err(Failure::io)?,
            Some(Ok(Frame::Close(_))) | None => return Err(Failure("closed".into())),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(Failure::io(e)),
        }
    }
}

pub async fn send_text(conn: &mut Conn, text: String) -> Result<(), Failure> {
    conn.send(Message::Text(text.into()))
        .await
        .map_err(Failure::io)
}
