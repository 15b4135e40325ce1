//! Real answers checked against the served OpenAPI document: the body against the schema of
//! its operation and status, and the headers the document promises for that answer.

use serde_json::{json, Value};

use super::client::{Client, Reply};

/// The document as the server serves it.
pub struct Spec {
    doc: Value,
}

impl Spec {
    /// `GET /api/v1/openapi.json` from the server `client` talks to.
    pub async fn fetch(client: &Client) -> Spec {
        let reply = client.get("/api/v1/openapi.json").await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert!(reply.body["paths"].is_object(), "{:?}", reply.body);
        Spec { doc: reply.body }
    }

    pub fn doc(&self) -> &Value {
        &self.doc
    }

    /// The documented answer of `method path` (a template, e.g. `/api/v1/tenants/{tenant_id}/
    /// orders`) with `status`; a method or path the document does not list falls back on the
    /// shared 405 and 404 answers.
    fn response(&self, method: &str, path: &str, status: u16) -> Value {
        let op = &self.doc["paths"][path][method.to_lowercase()];
        let found = if op.is_object() {
            op["responses"][status.to_string()].clone()
        } else {
            let shared = match (self.doc["paths"][path].is_object(), status) {
                (true, 405) => "MethodNotAllowed",
                (false, 404) => "NotFound",
                _ => panic!("{method} {path} is not documented (status {status})"),
            };
            self.doc["components"]["responses"][shared].clone()
        };
        assert!(
            found.is_object(),
            "{method} {path} does not document status {status}"
        );
        match found["$ref"].as_str() {
            Some(r) => self.resolve(r).clone(),
            None => found,
        }
    }

    fn resolve(&self, pointer: &str) -> &Value {
        self.doc
            .pointer(pointer.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{pointer} is not in the document"))
    }

    /// Panics unless `reply` (to `method path`) is what the document says: its status is
    /// listed, its JSON body matches that answer's schema (an answer without content has no
    /// body), and the headers that answer names are present (`Set-Cookie` only on the answers
    /// that open a session, and `Retry-After` always on a 429, so those two are not required).
    pub fn check(&self, method: &str, path: &str, reply: &Reply) {
        let response = self.response(method, path, reply.status);
        let what = format!("{method} {path} {}", reply.status);
        match response["content"]["application/json"]["schema"].clone() {
            Value::Null => assert!(
                reply.body.is_null() || response["content"].is_object(),
                "{what}: a body the document does not give: {:?}",
                reply.body
            ),
            schema => {
                // The schema is checked within the document, so its `#/components/…`
                // references resolve.
                let mut root = json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "components": self.doc["components"].clone(),
                });
                root["allOf"] = json!([schema]);
                let validator = jsonschema::draft202012::new(&root)
                    .unwrap_or_else(|e| panic!("{what}: the schema does not compile: {e}"));
                let errors: Vec<String> = validator
                    .iter_errors(&reply.body)
                    .map(|e| format!("{} at {}", e, e.instance_path()))
                    .collect();
                assert!(
                    errors.is_empty(),
                    "{what}: the body does not match its schema: {errors:?}\n{}",
                    reply.body
                );
            }
        }
        if let Some(headers) = response["headers"].as_object() {
            for name in headers.keys() {
                let optional =
                    name == "Set-Cookie" || (name == "Retry-After" && reply.status != 429);
                if !optional {
                    assert!(
                        reply.header(name).is_some(),
                        "{what}: no {name} header, which the document promises"
                    );
                }
            }
        }
    }
}
