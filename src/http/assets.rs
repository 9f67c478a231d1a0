//! The browser client (`web/`), embedded in the binary so `switchboard serve` is all a user runs.
//! `/` is the app's page; `/static/<file>` the rest of `web/`.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;

use super::error::ApiError;

#[derive(Embed)]
#[folder = "web/"]
struct Web;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; media-src 'self' blob: mediastream:; connect-src 'self'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub async fn index() -> Response {
    serve("index.html")
}

pub async fn file(Path(path): Path<String>) -> Response {
    serve(&path)
}

fn serve(path: &str) -> Response {
    match Web::get(path) {
        Some(file) => {
            let mime = file.metadata.mimetype().to_owned();
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, mime),
                    // The page must pick up a new version at once; files are small.
                    (header::CACHE_CONTROL, "no-cache".to_owned()),
                    // The client has no inline scripts or styles and talks only to this origin,
                    // so a strict policy costs nothing and blunts any injected markup.
                    (header::CONTENT_SECURITY_POLICY, CSP.to_owned()),
                ],
                file.data,
            )
                .into_response()
        }
        None => ApiError::NotFound(format!("No file /static/{path}")).into_response(),
    }
}
