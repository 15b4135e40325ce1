//! The OpenAPI 3.1 document of the API, served at `GET /api/v1/openapi.json`.
//!
//! It is generated from the code, never written by hand: each handler carries a
//! `#[utoipa::path]` with its path, parameters, body and answers, and the types it reads and
//! writes derive `ToSchema` where they are defined. What every operation shares is added here,
//! once, to the generated JSON ([`conventions`]): the error body of each status, with the
//! codes of [`crate::error::CODES`] (the same list a unit test keeps equal to what `ApiError`
//! answers); the headers (`X-Request-Id`, `Cache-Control: no-store`, `Retry-After`, the
//! RateLimit fields, `Allow`); the security schemes; and the WebSocket protocol, in prose, on
//! `GET /ws`. Error statuses an operation can answer for a reason of its own are listed on its
//! handler; the ones every operation of a kind can answer (a malformed body, no session, a path
//! id that names nothing, …) are added here by rule.
//!
//! The document covers exactly the paths and methods `configure` registers ([`super::routes`]
//! reads them from the registration; a test compares). `/metrics` is documented as text; the
//! static pages (any other one-segment path) are not part of the API and are not listed. No
//! browsing UI is served: the document is plain JSON for tools.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use actix_web::http::header::ContentType;
use actix_web::HttpResponse;
use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use super::{auth, health, monitoring, orders, platform, sessions, two_factor, users, ws};
use crate::error::CODES;

#[derive(OpenApi)]
#[openapi(
    info(title = "Rampart", description = "The HTTP API of Rampart."),
    paths(
        serve,
        health::healthz,
        health::readyz,
        health::metrics,
        ws::upgrade,
        ws::ticket,
        auth::login,
        auth::logout,
        auth::me,
        auth::change_password,
        sessions::list,
        sessions::end_others,
        sessions::end_one,
        two_factor::status,
        two_factor::disable,
        two_factor::setup,
        two_factor::enable,
        two_factor::verify,
        two_factor::regenerate_backup_codes,
        users::list,
        users::create,
        users::set_disabled,
        users::reset_password,
        users::reset_two_factor,
        orders::list,
        orders::create,
        orders::get,
        orders::change_status,
        platform::list_tenants,
        platform::create_tenant,
        platform::change_tenant,
        platform::create_user,
        monitoring::audit,
        monitoring::summary,
        platform::list_owners,
        platform::list_bans,
        platform::lift_ban,
        platform::set_user_disabled,
        platform::reset_user_two_factor,
        platform::approve,
    )
)]
struct Generated;

/// What the whole document says before its paths.
const OVERVIEW: &str = "\
JSON in and out; timestamps are RFC 3339 UTC, ids UUIDs, money integer cents. Lists answer \
`{items, next_cursor}` one page at a time (`limit` 1–200, default 50; `cursor` the \
`next_cursor` of the previous page, `null` on the last).

Authentication: `Authorization: Bearer <token>`, or the `rampart_session` cookie set at \
sign-in (the Bearer header wins). A cookie-authenticated request that changes state needs an \
allowed `Origin` (403 `origin_not_allowed`).

Every error is `{\"error\": {\"code\", \"message\", \"field\"?}}` (`field` on 422 only); each \
status's schema lists its codes. Every answer carries `X-Request-Id`; every `/api/v1/` answer \
`Cache-Control: no-store`. A 429 carries `Retry-After` and the `RateLimit-Policy` and \
`RateLimit` fields; a 503 `busy` and a 403 `ip_banned` carry `Retry-After`. Another method on \
a listed path answers 405 with `Allow` (`components.responses.MethodNotAllowed`); a path not \
listed answers 404 (`components.responses.NotFound`).

Not JSON: `/metrics` (Prometheus text) and the static pages (`/` and any other one-segment \
path, not listed here).";

/// The WebSocket protocol, on `GET /ws`.
const WS_PROTOCOL: &str = "\
Opens a WebSocket, authenticated by a single-use `?ticket=` (`POST /api/v1/ws/ticket`), the \
session cookie or a Bearer header. Before the upgrade, in this order: a banned IP (403 \
`ip_banned`), too many connection attempts from the IP (429 `too_many_connection_attempts`), \
an `Origin` not allowed or cookie authentication without one (403 `origin_not_allowed`), \
credentials or ticket missing, bad, used or expired (401 `unauthenticated`), an \
enrollment-only session (403 `two_factor_enrollment_required`), a password to change (403 \
`password_change_required`), a suspended tenant (403 `tenant_suspended`), the user's \
connections at their maximum (429 `too_many_connections`). A request that passes them but is \
not a handshake answers 400 `bad_request`.

Frames are JSON text objects with a `type`. The server starts with `{\"type\": \"welcome\", \
\"session_id\", \"user_id\", \"tenant_id\", \"limits\": {\"messages_per_minute\", \
\"max_message_bytes\"}}`.

Client to server: `{\"type\": \"ping\", \"id\"?}`, answered `{\"type\": \"pong\", \"id\"?}` \
with `id` echoed as sent; `{\"type\": \"subscribe\", \"channel\": \"orders\"}` (the user's \
tenant; platform owners add `tenant_id`, audited), answered `{\"type\": \"subscribed\", \
\"channel\"}`; `{\"type\": \"subscribe\", \"channel\": \"security\"}` (platform owners: the \
live audit feed); `{\"type\": \"unsubscribe\", \"channel\"}`, answered `unsubscribed`.

Server to client: `{\"type\": \"event\", \"channel\", \"event\", \"data\"}` (`order.created` \
or `order.updated` with the order; on `security` the audit kind with the sealed audit line); \
`{\"type\": \"error\", \"code\", \"message\", \"retry_after_ms\"?}` with `code` \
`rate_limited`, `bad_message`, `forbidden` or `unsupported` (binary or fragmented frames); \
the connection stays open after an error frame.

Close codes: 1009 for a message over `max_message_bytes`; 1008 on logout, session expiry, a \
ban of the address, the tenant's suspension or the session ended by an administrator; 1013 \
when the connection cannot keep up with its events; 1000 after the client was silent for the \
timeout (the server pings on a heartbeat; answering counts).";

/// The served document.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let generated =
            serde_json::to_value(Generated::openapi()).expect("the document serializes");
        conventions(generated)
    })
}

fn text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| document().to_string())
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", security(()),
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub async fn serve() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(ContentType::json())
        .body(text())
}

/// The codes of each error status.
fn codes_by_status() -> BTreeMap<u16, Vec<&'static str>> {
    let mut by = BTreeMap::<u16, Vec<&str>>::new();
    for (code, status) in CODES {
        by.entry(*status).or_default().push(code);
    }
    by
}

fn error_schema(codes: &[&str]) -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "enum": codes},
                "message": {"type": "string"},
                "field": {
                    "type": "string",
                    "description": "422 only: the JSON path of the invalid value"
                }
            }
        }}
    })
}

fn header(description: &str, schema: Value) -> Value {
    json!({"description": description, "schema": schema})
}

fn header_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/headers/{name}")})
}

fn error_response(status: u16, description: Option<Value>, codes: &[&str]) -> Value {
    let listed: Vec<String> = codes.iter().map(|c| format!("`{c}`")).collect();
    let mut headers = Map::new();
    headers.insert("X-Request-Id".into(), header_ref("X-Request-Id"));
    match status {
        429 => {
            for h in ["Retry-After", "RateLimit-Policy", "RateLimit"] {
                headers.insert(h.into(), header_ref(h));
            }
        }
        403 | 503 => {
            headers.insert("Retry-After".into(), header_ref("Retry-After"));
        }
        405 => {
            headers.insert("Allow".into(), header_ref("Allow"));
        }
        _ => {}
    }
    json!({
        "description": description.unwrap_or_else(|| json!(listed.join(", "))),
        "headers": headers,
        "content": {"application/json": {
            "schema": {"$ref": format!("#/components/schemas/Error{status}")}
        }}
    })
}

/// What every operation shares, added to the generated document (see the module doc).
fn conventions(mut doc: Value) -> Value {
    let by_status = codes_by_status();
    doc["info"]["description"] = json!(OVERVIEW);
    let components = doc["components"]
        .as_object_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let mut components = Value::Object(components);
    let mut all_codes: Vec<&str> = Vec::new();
    for (code, _) in CODES {
        if !all_codes.contains(code) {
            all_codes.push(code);
        }
    }
    components["schemas"]["Error"] = error_schema(&all_codes);
    for (status, codes) in &by_status {
        components["schemas"][format!("Error{status}")] = error_schema(codes);
    }
    components["headers"] = json!({
        "X-Request-Id": header(
            "The request's id: the client's own (1–128 of `A–Z a–z 0–9 . _ -`) or a new UUID",
            json!({"type": "string"})),
        "Cache-Control": header("`no-store` on every `/api/v1/` answer",
            json!({"type": "string", "const": "no-store"})),
        "Retry-After": header("Seconds until a retry can succeed (at least 1)",
            json!({"type": "integer", "minimum": 1})),
        "RateLimit-Policy": header("`\"<policy>\";q=<quota>;w=<window secs>`",
            json!({"type": "string"})),
        "RateLimit": header("`\"<policy>\";r=0;t=<secs until allowed>`",
            json!({"type": "string"})),
        "Allow": header("The methods the path accepts", json!({"type": "string"})),
    });
    components["securitySchemes"] = json!({
        "bearer": {"type": "http", "scheme": "bearer"},
        "cookie": {"type": "apiKey", "in": "cookie", "name": "rampart_session"},
    });
    components["responses"] = json!({
        "NotFound": error_response(404, Some(json!("A path that does not exist")), &["not_found"]),
        "MethodNotAllowed": error_response(405,
            Some(json!("A listed path, with a method it does not accept")),
            &["method_not_allowed"]),
    });
    doc["components"] = components;
    doc["security"] = json!([{"bearer": []}, {"cookie": []}]);

    let paths = doc["paths"]
        .as_object_mut()
        .expect("the document has paths");
    for (path, item) in paths.iter_mut() {
        let api = path.starts_with("/api/v1/");
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            let secured = op.get("security").is_none();
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let in_path = params.iter().any(|p| p["in"] == "path");
            let in_query = params.iter().any(|p| p["in"] == "query");
            let body = op.get("requestBody").is_some();
            let mut errors = vec![500];
            if api {
                errors.push(503);
            }
            if secured {
                errors.extend([401, 403]);
            }
            if in_path {
                errors.push(404);
            }
            if body || in_query {
                errors.push(400);
            }
            if body {
                errors.push(413);
            }
            let responses = op["responses"]
                .as_object_mut()
                .expect("every operation answers");
            for status in errors {
                responses.entry(status.to_string()).or_insert(Value::Null);
            }
            for (status, response) in responses.iter_mut() {
                let code: u16 = status.parse().expect("numeric statuses");
                if code >= 400 {
                    let codes = by_status.get(&code).map(Vec::as_slice).unwrap_or(&[]);
                    let description = response.get("description").cloned();
                    *response = error_response(code, description, codes);
                } else {
                    let headers = &mut response["headers"];
                    if headers.is_null() {
                        *headers = json!({});
                    }
                    headers["X-Request-Id"] = header_ref("X-Request-Id");
                    if api {
                        headers["Cache-Control"] = header_ref("Cache-Control");
                    }
                }
            }
            if path == "/ws" && method == "get" {
                op["description"] = json!(WS_PROTOCOL);
            }
        }
    }
    doc
}

/// Every `(path, method)` that `api::configure` registers, paths with their parameter names
/// dropped (`/a/{}/b`) and methods in lower case, as the document spells them.
pub fn registered_operations() -> BTreeSet<(String, String)> {
    super::routes()
        .into_iter()
        .flat_map(|r| {
            let path = shape(&r.path);
            r.methods
                .into_iter()
                .map(move |m| (path.clone(), m.as_str().to_lowercase()))
        })
        .collect()
}

/// Every `(path, method)` an OpenAPI document (`doc`) describes, in the same form.
pub fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let Some(paths) = doc["paths"].as_object() else {
        return BTreeSet::new();
    };
    paths
        .iter()
        .flat_map(|(path, item)| {
            let path = shape(path);
            item.as_object()
                .into_iter()
                .flat_map(|ops| ops.keys().cloned())
                .map(move |m| (path.clone(), m))
        })
        .collect()
}

/// A path with its `{param}` names dropped: `/a/{x}/b` and `/a/{y}/b` are one route.
fn shape(path: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in path.chars() {
        match c {
            '{' => {
                inside = true;
                out.push_str("{}");
            }
            '}' => inside = false,
            c if !inside => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_exactly_the_registered_routes() {
        let registered = registered_operations();
        assert!(registered.len() > 30, "{registered:?}");
        assert_eq!(registered, documented_operations(document()));
    }

    #[test]
    fn operation_ids_are_unique() {
        let mut ids: Vec<&str> = document()["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .map(|op| op["operationId"].as_str().expect("an operationId"))
            .collect();
        let all = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), all, "{ids:?}");
    }

    #[test]
    fn every_error_status_has_its_codes_and_headers() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let schemas = &doc["components"]["schemas"];
        let codes =
            |s: &str| schemas[s]["properties"]["error"]["properties"]["code"]["enum"].clone();
        assert_eq!(codes("Error404"), json!(["not_found"]));
        assert!(codes("Error401")
            .as_array()
            .unwrap()
            .contains(&json!("invalid_code")));
        assert!(codes("Error400")
            .as_array()
            .unwrap()
            .contains(&json!("invalid_code")));
        let login = &doc["paths"]["/api/v1/auth/login"]["post"]["responses"];
        assert!(login["429"]["headers"]["RateLimit-Policy"].is_object());
        assert!(login["429"]["headers"]["Retry-After"].is_object());
        assert!(login["200"]["headers"]["Set-Cookie"].is_object());
        assert!(login["200"]["headers"]["Cache-Control"].is_object());
        let ws = &doc["paths"]["/ws"]["get"];
        assert!(ws["description"].as_str().unwrap().contains("1009"));
    }
}
