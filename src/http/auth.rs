//! `/api/auth/*`: register, log in, log out, who am I.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{AppJson, CurrentUser, CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE};
use super::AppState;
use crate::auth::NewLogin;
use crate::store::User;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterBody {
    username: String,
    password: String,
    display_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginBody {
    username: String,
    password: String,
}

/// The logged-in user and the token to send as `X-CSRFToken` on state-changing requests.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthResponse {
    success: bool,
    user: User,
    csrf_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Done {
    success: bool,
}

/// Create an account (when open registration is on) and log it in.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterBody,
    responses((status = 201, body = AuthResponse, description = "Created and logged in; sets the `sessionid` and `csrftoken` cookies"),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody, description = "Registration is closed"),
              (status = 409, body = ErrorBody, description = "Username taken")))]
async fn register(
    State(state): State<AppState>,
    jar: CookieJar,
    AppJson(body): AppJson<RegisterBody>,
) -> Result<impl IntoResponse, ApiError> {
    let login = state
        .accounts
        .register(&body.username, &body.password, body.display_name.as_deref())
        .await?;
    tracing::info!(user_id = %login.user.id, "[AUTH] Registered user {} ({})", login.user.id, login.user.username);
    Ok((StatusCode::CREATED, logged_in(&state, jar, login)))
}

/// Log in with username and password.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, body = AuthResponse, description = "Logged in; sets the `sessionid` (HttpOnly) and `csrftoken` cookies"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody, description = "Wrong username or password")))]
async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    AppJson(body): AppJson<LoginBody>,
) -> Result<impl IntoResponse, ApiError> {
    let login = state.accounts.login(&body.username, &body.password).await?;
    Ok(logged_in(&state, jar, login))
}

/// End the current session. Idempotent: without a session it just clears the cookies.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth",
    params(("X-CSRFToken" = String, Header, description = "The csrftoken cookie's value")),
    responses((status = 200, body = Done), (status = 403, body = ErrorBody, description = "CSRF check failed")))]
async fn logout(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    jar: CookieJar,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(session) = jar.get(SESSION_COOKIE) {
        // Logging someone out is a state change: a foreign page must not be able to do it.
        let header = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if header.is_none() || header != jar.get(CSRF_COOKIE).map(|c| c.value()) {
            return Err(ApiError::csrf());
        }
        state.accounts.logout(session.value()).await?;
    }
    let jar = jar
        .remove(Cookie::build(SESSION_COOKIE).path("/"))
        .remove(Cookie::build(CSRF_COOKIE).path("/"));
    Ok((jar, Json(Done { success: true })))
}

/// The user the session cookie belongs to.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth",
    responses((status = 200, body = AuthResponse), (status = 401, body = ErrorBody)))]
async fn me(current: CurrentUser) -> Json<AuthResponse> {
    Json(AuthResponse {
        success: true,
        user: current.user,
        csrf_token: current.csrf_token,
    })
}

fn logged_in(state: &AppState, jar: CookieJar, login: NewLogin) -> impl IntoResponse {
    let max_age =
        time::Duration::try_from(state.config.session_ttl).unwrap_or(time::Duration::WEEK);
    // Over HTTPS a cookie must never travel back over plain HTTP.
    let secure = state.config.cookie_secure || state.config.tls_enabled();
    let session = Cookie::build((SESSION_COOKIE, login.session_token))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(max_age);
    // Readable by the page's JavaScript on purpose: it echoes it in X-CSRFToken.
    let csrf = Cookie::build((CSRF_COOKIE, login.csrf_token.clone()))
        .path("/")
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(max_age);
    (
        jar.add(session).add(csrf),
        Json(AuthResponse {
            success: true,
            user: login.user,
            csrf_token: login.csrf_token,
        }),
    )
}
