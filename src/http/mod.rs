//! The HTTP API: one module per resource, merged here; errors mapped once in [`error`].
//!
//! Routes are registered through `utoipa_axum`, so `/api/openapi.json` is generated from the
//! very handlers that serve them and cannot drift.

pub mod assets;
pub mod auth;
pub mod calls;
pub mod chats;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod p2p;
pub mod ws;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Router};
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::auth::Accounts;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::relay::Relay;
use crate::store::Store;
use crate::turn::ice_servers::IceServerList;
use crate::Config;
use error::ApiError;
use tokio_util::sync::CancellationToken;

/// Everything a handler may need, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub accounts: Accounts,
    pub relay: Relay,
    pub metrics: Arc<Metrics>,
    /// STUN/TURN servers and credentials for browsers.
    pub ice_servers: Arc<IceServerList>,
    /// Cancelled on shutdown: every WebSocket, SSE stream and long-poll ends promptly.
    pub shutdown: CancellationToken,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard",
        description = "Chat and call-signaling API. Log in with POST /api/auth/login; the \
            `sessionid` cookie authenticates, and state-changing requests must echo the \
            `csrftoken` cookie in the `X-CSRFToken` header."
    ),
    modifiers(&SessionCookie),
    tags((name = "auth"), (name = "chats"), (name = "p2p", description = "The signal relay"), (name = "health"))
)]
struct ApiDoc;

struct SessionCookie;

impl utoipa::Modify for SessionCookie {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("sessionid"))),
        );
    }
}

/// The API as an OpenAPI 3 document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::router())
        .merge(chats::router())
        .merge(calls::router())
        .merge(p2p::router())
        .merge(health::router())
}

pub fn router(state: AppState) -> Router {
    let (router, api) = api_router().split_for_parts();
    let api_json: Arc<str> = api.to_json().unwrap_or_default().into();
    // Room for the JSON around a maximal payload; the payload itself is checked by the relay.
    let body_limit = state.config.max_payload_bytes + 16 * 1024;
    let metrics = state.metrics.clone();
    let hsts = hsts_header(&state.config);
    let router = router
        .route("/", get(assets::index))
        .route("/static/{*path}", get(assets::file))
        .route("/ws/p2p/", get(ws::upgrade))
        .route("/api/p2p/events/", get(events::events))
        .route(
            "/metrics",
            get(|State(state): State<AppState>| async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    state.metrics.encode(),
                )
            }),
        )
        .route(
            "/api/openapi.json",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    api_json.to_string(),
                )
            }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            metrics,
            error::log_rejections,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state);
    match hsts {
        Some(value) => router.layer(tower::util::MapResponseLayer::new(
            move |mut response: Response| {
                response
                    .headers_mut()
                    .insert(header::STRICT_TRANSPORT_SECURITY, value.clone());
                response
            },
        )),
        None => router,
    }
}

/// `Strict-Transport-Security` for every response, when this server speaks HTTPS and
/// `hsts_max_age` is set (browsers ignore it over plain HTTP, and it would be a lie there).
fn hsts_header(config: &Config) -> Option<header::HeaderValue> {
    let max_age = config.hsts_max_age.filter(|_| config.tls_enabled())?;
    header::HeaderValue::from_str(&format!("max-age={}", max_age.as_secs())).ok()
}

async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(format!(
        "No route for {} {}",
        request.method(),
        request.uri().path()
    ))
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "{} is not allowed on {}",
        request.method(),
        request.uri().path()
    ))
}

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    ApiError::Internal(anyhow::anyhow!("handler panicked: {detail}")).into_response()
}
