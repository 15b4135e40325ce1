//! HTTP routes: thin handlers that extract, authorise, call one capability and shape the reply.

mod auth;
mod guard;
mod health;
mod monitoring;
mod observe;
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

pub use observe::observe;

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

/// A 200 with a list body.
pub fn list_response<T: Serialize>(items: &[T]) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .insert_header(actix_web::http::header::ContentType::json())
        .body(list_body(items))
}

/// Registers every route and the extractor settings that turn bad input into contract errors.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(MAX_BODY_BYTES)
            .error_handler(json_error_handler),
    )
    .app_data(web::PayloadConfig::default().limit(MAX_BODY_BYTES))
    .app_data(web::QueryConfig::default().error_handler(query_error_handler))
    .app_data(web::PathConfig::default().error_handler(path_error_handler))
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz))
    .route("/metrics", web::get().to(health::metrics))
    .route("/ws", web::get().to(ws::upgrade))
    .service(
        web::scope("/api/v1")
            .service(
                web::scope("/auth")
                    .route("/login", web::post().to(auth::login))
                    .route("/logout", web::post().to(auth::logout))
                    .route("/me", web::get().to(auth::me))
                    .route("/sessions", web::get().to(sessions::list))
                    .route("/sessions", web::delete().to(sessions::end_others))
                    .route("/sessions/{id}", web::delete().to(sessions::end_one))
                    .route("/2fa", web::get().to(two_factor::status))
                    .route("/password", web::post().to(auth::change_password))
                    .route("/2fa", web::delete().to(two_factor::disable))
                    .route("/2fa/setup", web::post().to(two_factor::setup))
                    .route("/2fa/enable", web::post().to(two_factor::enable))
                    .route("/2fa/verify", web::post().to(two_factor::verify))
                    .route(
                        "/2fa/backup-codes",
                        web::post().to(two_factor::regenerate_backup_codes),
                    ),
            )
            .route("/ws/ticket", web::post().to(ws::ticket))
            .service(
                web::scope("/tenants/{tenant_id}/users")
                    .route("", web::get().to(users::list))
                    .route("", web::post().to(users::create))
                    .route("/{user_id}", web::patch().to(users::set_disabled))
                    .route(
                        "/{user_id}/password-reset",
                        web::post().to(users::reset_password),
                    )
                    .route("/{user_id}/2fa", web::delete().to(users::reset_two_factor)),
            )
            .service(
                web::scope("/tenants/{tenant_id}/orders")
                    .route("", web::get().to(orders::list))
                    .route("", web::post().to(orders::create))
                    .route("/{order_id}", web::get().to(orders::get))
                    .route("/{order_id}", web::patch().to(orders::change_status)),
            )
            .service(
                web::scope("/platform")
                    .route("/tenants", web::get().to(platform::list_tenants))
                    .route("/tenants", web::post().to(platform::create_tenant))
                    .route(
                        "/tenants/{tenant_id}",
                        web::patch().to(platform::change_tenant),
                    )
                    .route(
                        "/tenants/{tenant_id}/users",
                        web::post().to(platform::create_user),
                    )
                    .route("/audit", web::get().to(monitoring::audit))
                    .route("/security/summary", web::get().to(monitoring::summary))
                    .route("/owners", web::get().to(platform::list_owners))
                    .route("/bans", web::get().to(platform::list_bans))
                    .route("/bans/{ip}", web::delete().to(platform::lift_ban))
                    .route(
                        "/users/{user_id}",
                        web::patch().to(platform::set_user_disabled),
                    )
                    .route(
                        "/users/{user_id}/2fa",
                        web::delete().to(platform::reset_user_two_factor),
                    )
                    .route(
                        "/approvals/{approval_id}",
                        web::post().to(platform::approve),
                    ),
            ),
    )
    .route("/{file:[A-Za-z0-9_.-]*}", web::get().to(pages::page))
    .default_service(web::to(not_found));
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}
