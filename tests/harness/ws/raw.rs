//! A WebSocket client written by hand over TCP: it sends whatever bytes a test wants (headers
//! declaring any length, fragments), can shrink its receive buffer, and can stop reading.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actix_web::rt::net::{TcpSocket, TcpStream};
use actix_web::rt::time::timeout;
use serde_json::Value;
use tokio::io::Interest;

use super::FRAME_WAIT;
use crate::harness::{Client, TestApp};

/// The mask key of every client frame (RFC 6455 requires one; its value does not matter here).
const MASK: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

/// A masked client frame header declaring `len` payload bytes.
pub fn client_header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut h = vec![(u8::from(fin) << 7) | opcode];
    match len {
        0..=125 => h.push(0x80 | len as u8),
        126..=0xFFFF => {
            h.push(0x80 | 126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            h.push(0x80 | 127);
            h.extend_from_slice(&len.to_be_bytes());
        }
    }
    h.extend_from_slice(&MASK);
    h
}

/// A whole masked client frame.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = client_header(fin, opcode, payload.len() as u64);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    f
}

/// A frame from the server (servers do not mask).
#[derive(Debug)]
pub struct ServerFrame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl ServerFrame {
    pub fn close_code(&self) -> Option<u16> {
        match (self.opcode, self.payload.as_slice()) {
            (8, [a, b, ..]) => Some(u16::from_be_bytes([*a, *b])),
            _ => None,
        }
    }
}

/// What one read brought.
#[derive(Debug)]
pub enum Read {
    Frame(ServerFrame),
    /// Nothing complete within the wait.
    Timeout,
    /// The connection ended (end of stream or an error) before a complete frame.
    Closed,
}

/// An upgraded connection.
pub struct RawWs {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    /// Upgrades `/ws` with the client's Bearer token; with `recv_buffer`, the socket's receive
    /// buffer is set that small before connecting. `Err(status)` when the upgrade is refused.
    pub async fn connect(
        app: &TestApp,
        client: &Client,
        recv_buffer: Option<u32>,
    ) -> Result<RawWs, u16> {
        let addr: SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
        let socket = TcpSocket::new_v4().expect("socket");
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
        }
        let stream = socket.connect(addr).await.expect("connect");
        let token = client.token.as_deref().expect("signed in");
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Authorization: Bearer {token}\r\n\r\n"
        );
        let mut ws = RawWs {
            stream,
            buf: Vec::new(),
        };
        ws.write(request.as_bytes())
            .await
            .expect("send the upgrade");
        let end = loop {
            if let Some(i) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let read = timeout(FRAME_WAIT, ws.fill())
                .await
                .expect("no answer in time");
            assert!(
                read.expect("read the answer") > 0,
                "closed before answering"
            );
        };
        let head = String::from_utf8_lossy(&ws.buf[..end]).to_string();
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
        ws.buf.drain(..end);
        match status.expect("a status line") {
            101 => Ok(ws),
            refused => Err(refused),
        }
    }

    /// Connects and reads the welcome.
    pub async fn open(app: &TestApp, client: &Client, recv_buffer: Option<u32>) -> RawWs {
        let mut ws = Self::connect(app, client, recv_buffer)
            .await
            .expect("upgrade");
        assert_eq!(ws.json().await["type"], "welcome");
        ws
    }

    /// Writes all of `bytes`, waiting while the socket is full.
    pub async fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            self.stream.writable().await?;
            match self.stream.try_write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads what is there (at least one byte, or 0 at the end).
    async fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            self.stream.readable().await?;
            match self.stream.try_read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn parse(&mut self) -> Option<ServerFrame> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        assert_eq!(b[1] & 0x80, 0, "the server masked a frame");
        let (len, at) = match b[1] & 0x7F {
            126 if b.len() >= 4 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => return None,
            n => (usize::from(n), 2),
        };
        if b.len() < at + len {
            return None;
        }
        let frame = ServerFrame {
            opcode: b[0] & 0x0F,
            payload: b[at..at + len].to_vec(),
        };
        self.buf.drain(..at + len);
        Some(frame)
    }

    /// The next frame, waiting at most `wait`.
    pub async fn frame(&mut self, wait: Duration) -> Read {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(f) = self.parse() {
                return Read::Frame(f);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.fill()).await {
                Err(_) => return Read::Timeout,
                Ok(Ok(0) | Err(_)) => return Read::Closed,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The next text frame (pings are skipped), parsed.
    pub async fn json(&mut self) -> Value {
        loop {
            match self.frame(FRAME_WAIT).await {
                Read::Frame(f) if f.opcode == 1 => {
                    return serde_json::from_slice(&f.payload).expect("JSON frame")
                }
                Read::Frame(f) if f.opcode == 9 => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Reads until the close frame, within `wait`; its code.
    pub async fn close_code(&mut self, wait: Duration) -> u16 {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.frame(left).await {
                Read::Frame(f) if f.opcode == 8 => return f.close_code().unwrap_or(1005),
                Read::Frame(_) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// True once the server has torn the connection down (a reset reached this socket), read
    /// without consuming anything the server sent.
    pub async fn peer_gone(&self) -> bool {
        if matches!(self.stream.take_error(), Ok(Some(_))) {
            return true;
        }
        let ready = timeout(
            Duration::from_millis(20),
            self.stream.ready(Interest::WRITABLE),
        );
        match ready.await {
            Ok(Ok(r)) => r.is_write_closed() || r.is_error(),
            Ok(Err(_)) => true,
            Err(_) => false,
        }
    }
}
