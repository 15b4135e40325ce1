//! HTTP routes: thin handlers that extract, authorise, call one capability and shape the reply.

mod auth;
mod guard;
mod health;
mod methods;
mod monitoring;
mod observe;
mod openapi;
mod orders;
mod pages;
mod platform;
pub(crate) mod principal;
mod sessions;
mod two_factor;
mod users;
mod ws;

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::config::MAX_BODY_BYTES;
use crate::error::{json_error_handler, path_error_handler, query_error_handler, ApiError};

pub use health::configure_metrics;
pub use methods::Route;
use methods::{resource, scope, Table};
pub use observe::observe;
pub use openapi::{document, documented_operations, registered_operations};

/// A list response: `{"items": [...]}`.
#[derive(Serialize)]
pub struct Items<'a, T> {
    pub items: &'a [T],
}

/// The body of a list response, `{"items": [...]}`.
pub fn list_body<T: Serialize>(items: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + items.len() * 512);
    serde_json::to_writer(&mut out, &Items { items }).expect("list items serialize");
    out
}

/// Registers every route and the extractor settings that turn bad input into contract errors.
/// Each path is one [`resource`] with its methods: any other method on it answers 405 with
/// `Allow`; a path that is not here answers 404.
pub fn configure(cfg: &mut web::ServiceConfig) {
    register(cfg);
}

/// Every path `configure` registers with its methods, read from the registration itself (the
/// static pages' catch-all is not an API route and is not listed).
pub fn routes() -> Vec<Route> {
    let mut table = Vec::new();
    let _ = actix_web::App::new().configure(|cfg| table = register(cfg));
    table
}

fn register(cfg: &mut web::ServiceConfig) -> Vec<Route> {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(MAX_BODY_BYTES)
            .error_handler(json_error_handler),
    )
    .app_data(web::PayloadConfig::default().limit(MAX_BODY_BYTES))
    .app_data(web::QueryConfig::default().error_handler(query_error_handler))
    .app_data(web::PathConfig::default().error_handler(path_error_handler));
    let table = Table::new(cfg)
        .service(resource("/healthz").get(health::healthz))
        .service(resource("/readyz").get(health::readyz))
        .service(resource("/metrics").get(health::metrics))
        .service(resource("/ws").get(ws::upgrade))
        .service(
            scope("/api/v1")
                .service(resource("/openapi.json").get(openapi::serve))
                .service(
                    scope("/auth")
                        .service(resource("/login").post(auth::login))
                        .service(resource("/logout").post(auth::logout))
                        .service(resource("/me").get(auth::me))
                        .service(
                            resource("/sessions")
                                .get(sessions::list)
                                .delete(sessions::end_others),
                        )
                        .service(resource("/sessions/{id}").delete(sessions::end_one))
                        .service(resource("/password").post(auth::change_password))
                        .service(
                            resource("/2fa")
                                .get(two_factor::status)
                                .delete(two_factor::disable),
                        )
                        .service(resource("/2fa/setup").post(two_factor::setup))
                        .service(resource("/2fa/enable").post(two_factor::enable))
                        .service(resource("/2fa/verify").post(two_factor::verify))
                        .service(
                            resource("/2fa/backup-codes").post(two_factor::regenerate_backup_codes),
                        ),
                )
                .service(resource("/ws/ticket").post(ws::ticket))
                .service(
                    scope("/tenants/{tenant_id}/users")
                        .service(resource("").get(users::list).post(users::create))
                        .service(resource("/{user_id}").patch(users::set_disabled))
                        .service(resource("/{user_id}/password-reset").post(users::reset_password))
                        .service(resource("/{user_id}/2fa").delete(users::reset_two_factor)),
                )
                .service(
                    scope("/tenants/{tenant_id}/orders")
                        .service(resource("").get(orders::list).post(orders::create))
                        .service(
                            resource("/{order_id}")
                                .get(orders::get)
                                .patch(orders::change_status),
                        ),
                )
                .service(
                    scope("/platform")
                        .service(
                            resource("/tenants")
                                .get(platform::list_tenants)
                                .post(platform::create_tenant),
                        )
                        .service(resource("/tenants/{tenant_id}").patch(platform::change_tenant))
                        .service(resource("/tenants/{tenant_id}/users").post(platform::create_user))
                        .service(resource("/audit").get(monitoring::audit))
                        .service(resource("/security/summary").get(monitoring::summary))
                        .service(resource("/owners").get(platform::list_owners))
                        .service(resource("/bans").get(platform::list_bans))
                        .service(resource("/bans/{ip}").delete(platform::lift_ban))
                        .service(resource("/users/{user_id}").patch(platform::set_user_disabled))
                        .service(
                            resource("/users/{user_id}/2fa")
                                .delete(platform::reset_user_two_factor),
                        )
                        .service(resource("/approvals/{approval_id}").post(platform::approve)),
                ),
        )
        .finish();
    // Static pages: any other path of one segment; other methods on it are 404 like any
    // unknown path (this pattern matches names that exist nowhere).
    cfg.route("/{file:[A-Za-z0-9_.-]*}", web::get().to(pages::page))
        .default_service(web::to(not_found));
    table
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}
