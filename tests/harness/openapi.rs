//! Real answers checked against the served OpenAPI document: the body against the schema of
//! its operation and status, and the headers the document promises for that answer.
//!
//! The check is stricter than the document: an object may hold only the members its schema
//! names (`unevaluatedProperties: false` is added to every object schema with `properties`,
//! except those that are parts of an `allOf`, whose whole is made strict instead). A member a
//! type gains without its schema following is then a failing test, not silent drift.

use serde_json::{json, Value};

use super::client::{Client, Reply};

/// The document as the server serves it.
pub struct Spec {
    doc: Value,
    /// The document with its object schemas made strict (see the module doc).
    strict: Value,
}

impl Spec {
    /// `GET /api/v1/openapi.json` from the server `client` talks to.
    pub async fn fetch(client: &Client) -> Spec {
        let reply = client.get("/api/v1/openapi.json").await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert!(reply.body["paths"].is_object(), "{:?}", reply.body);
        let strict = strict(&reply.body);
        Spec {
            doc: reply.body,
            strict,
        }
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
                    "components": self.strict["components"].clone(),
                });
                root["allOf"] = json!([strict_schema(schema)]);
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

/// The component schemas that are parts of an `allOf` somewhere: they stay open.
fn lenient_components(doc: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(parts) = m.get("allOf").and_then(Value::as_array) {
                    for part in parts {
                        if let Some(r) = part["$ref"].as_str() {
                            out.push(r.rsplit('/').next().unwrap_or(r).to_string());
                        }
                    }
                }
                m.values().for_each(|v| walk(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, &mut out);
    out
}

/// `schema` with every object schema in it closed, except inline `allOf` parts.
fn strict_schema(mut schema: Value) -> Value {
    fn close(v: &mut Value, in_all_of: bool) {
        match v {
            Value::Object(m) => {
                let has_members = m.contains_key("properties") || m.contains_key("allOf");
                if has_members && !in_all_of && !m.contains_key("additionalProperties") {
                    m.insert("unevaluatedProperties".into(), Value::Bool(false));
                }
                for (k, child) in m.iter_mut() {
                    close(child, k == "allOf");
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|c| close(c, in_all_of)),
            _ => {}
        }
    }
    close(&mut schema, false);
    schema
}

/// The document with its component schemas closed (those that are `allOf` parts stay open).
fn strict(doc: &Value) -> Value {
    let lenient = lenient_components(doc);
    let mut doc = doc.clone();
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        for (name, schema) in schemas.iter_mut() {
            if !lenient.contains(name) {
                *schema = strict_schema(schema.take());
            }
        }
    }
    doc
}
