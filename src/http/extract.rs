//! Extractors: JSON, path and query with the app's error shape, and the logged-in user.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use super::error::ApiError;
use super::AppState;
use crate::store::User;

/// `axum::Json`, but a rejected body gets the app's JSON error.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct AppJson<T>(pub T);

/// `axum::extract::Path`, but a malformed id is a JSON 404.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct AppPath<T>(pub T);

/// `axum::extract::Query`, but a malformed query is a JSON 400.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct AppQuery<T>(pub T);

pub const SESSION_COOKIE: &str = "sessionid";
pub const CSRF_COOKIE: &str = "csrftoken";
pub const CSRF_HEADER: &str = "x-csrftoken";

/// The user whose session cookie came with the request.
///
/// For state-changing methods it also enforces CSRF the way Django does: the `X-CSRFToken`
/// header must equal the `csrftoken` cookie (and, stricter than Django, the token the session
/// was issued with, so a cookie planted by a sibling subdomain does not pass).
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user: User,
    pub csrf_token: String,
    pub session_token: String,
}

pub fn is_state_changing(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(session_token) = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
            return Err(ApiError::Unauthorized(
                "Authentication required: log in first".to_owned(),
            ));
        };
        let checks_csrf = is_state_changing(&parts.method);
        let header = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if checks_csrf && (header.is_none() || header != jar.get(CSRF_COOKIE).map(|c| c.value())) {
            return Err(ApiError::csrf());
        }
        let Some(session) = state.accounts.session(&session_token).await? else {
            return Err(ApiError::Unauthorized(
                "Your session has expired or is invalid: log in again".to_owned(),
            ));
        };
        if checks_csrf && header != Some(session.csrf_token.as_str()) {
            return Err(ApiError::csrf());
        }
        Ok(Self {
            user: session.user,
            csrf_token: session.csrf_token,
            session_token,
        })
    }
}

/// Accepts an id as a JSON integer or a string of digits (the guide's client sends either).
pub fn lenient_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = i64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a positive integer id")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
            if v > 0 {
                Ok(v)
            } else {
                Err(E::custom("ids are positive integers"))
            }
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v)
                .map_err(|_| E::custom("id out of range"))
                .and_then(|v| self.visit_i64(v))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<i64, E> {
            v.parse::<i64>()
                .map_err(|_| E::custom(format!("{v:?} is not an integer id")))
                .and_then(|v| self.visit_i64(v))
        }
    }
    d.deserialize_any(Visitor)
}

/// [`lenient_id`] for an optional field.
pub fn lenient_optional_id<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<i64>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Wrapper(#[serde(deserialize_with = "lenient_id")] i64);
    Option::<Wrapper>::deserialize(d).map(|w| w.map(|Wrapper(id)| id))
}

/// A WebSocket cannot be protected by CSRF tokens, so its Origin is checked instead: a browser
/// page may connect only from this server's own origin or a configured one. Clients that send no
/// Origin (not browsers, so no ambient cookies to abuse) pass.
pub fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let same_origin = origin
        .split_once("://")
        .is_some_and(|(_, authority)| !host.is_empty() && authority == host);
    if same_origin || allowed.iter().any(|a| a == origin) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "Origin {origin:?} is not allowed to open a WebSocket here"
        )))
    }
}
