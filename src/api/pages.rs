//! The static pages (`static/`), embedded in the binary so it runs from any directory.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use rust_embed::Embed;

use crate::error::ApiError;

#[derive(Embed)]
#[folder = "static/"]
struct Pages;

/// `GET /` and `GET /{file}`: an embedded page, or the JSON 404 of every unknown path.
pub async fn page(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let name = match path.as_str() {
        "" => "index.html",
        other => other,
    };
    let file = Pages::get(name).ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok()
        .content_type(file.metadata.mimetype())
        // Pages are small and change with the binary; keep clients current.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("x-frame-options", "DENY"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             connect-src 'self' ws: wss:; frame-ancestors 'none'",
        ))
        .body(file.data.into_owned()))
}
