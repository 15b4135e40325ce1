//! A small HTTP client for tests: JSON in, status + JSON body + headers out.

use awc::http::header::{HeaderMap, HeaderName, HeaderValue};
use awc::http::Method;
use serde_json::Value;

/// One response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Reply {
    /// The contract's `error.code`, when the body is an error.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client bound to one server, optionally carrying a Bearer token.
#[derive(Clone)]
pub struct Client {
    base: String,
    pub token: Option<String>,
    extra: Vec<(HeaderName, HeaderValue)>,
    inner: awc::Client,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Client {
        Client {
            base: base.to_string(),
            token,
            extra: Vec::new(),
            inner: awc::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .finish(),
        }
    }

    /// The same client with one more header on every request.
    pub fn with_header(mut self, name: &'static str, value: &str) -> Client {
        self.extra.push((
            HeaderName::from_static(name),
            HeaderValue::from_str(value).expect("header value"),
        ));
        self
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Reply {
        let mut req = self.inner.request(method, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        for (k, v) in &self.extra {
            req = req.insert_header((k.clone(), v.clone()));
        }
        let mut res = match body {
            Some(bytes) => req
                .content_type("application/json")
                .send_body(bytes)
                .await
                .expect("request sent"),
            None => req.send().await.expect("request sent"),
        };
        let bytes = res.body().limit(16 * 1024 * 1024).await.expect("body read");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status: res.status().as_u16(),
            body,
            headers: res.headers().clone(),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, json: &Value) -> Reply {
        self.send(Method::POST, path, Some(json.to_string().into_bytes()))
            .await
    }

    pub async fn patch(&self, path: &str, json: &Value) -> Reply {
        self.send(Method::PATCH, path, Some(json.to_string().into_bytes()))
            .await
    }

    /// Sends raw bytes as a JSON body (for malformed-input tests).
    pub async fn post_raw(&self, path: &str, bytes: Vec<u8>) -> Reply {
        self.send(Method::POST, path, Some(bytes)).await
    }
}
