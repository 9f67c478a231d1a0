//! The one place errors become HTTP responses: `{"success": false, "error": "<message>"}` with the
//! right status. Client mistakes are 4xx with a human message; server faults are an opaque 500
//! (or 503 when the database is unreachable) whose cause chain goes to the log only.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthError;
use crate::relay::RelayError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or breaks a rule.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no valid session.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: logged in, but not allowed (or the CSRF check failed).
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such thing, or no such route.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists, the method does not.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: conflicts with what exists (a taken username, a reused signal_id).
    #[error("{0}")]
    Conflict(String),
    /// 409 with a machine-readable `code`: a call signal its call's state refuses
    /// (`busy`, `answered_elsewhere`, … see docs/CALLS.md).
    #[error("{message}")]
    CallConflict { code: &'static str, message: String },
    /// 413: a body or payload over its limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: the body is not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429: over a rate or connection limit; `Retry-After` says when to try again.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after: std::time::Duration,
    },
    /// 503: the database cannot be reached; nothing was done, try again.
    #[error("the database is unavailable; nothing was stored, try again shortly")]
    Unavailable(#[source] anyhow::Error),
    /// 500: a fault of ours; details only in the log.
    #[error("internal server error")]
    Internal(#[source] anyhow::Error),
}

/// The JSON shape of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    /// What went wrong, for a person to read.
    pub error: String,
    /// For refused call signals: what a client can act on (`busy`, `answered_elsewhere`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
}

/// Attached to error responses so [`log_rejections`] can say why a request was refused.
#[derive(Debug, Clone)]
struct Rejection(String);

pub const CSRF_FAILED: &str = "CSRF token missing or incorrect";

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) | Self::CallConflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code of the error, if it has one.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Self::CallConflict { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn csrf() -> Self {
        Self::Forbidden(CSRF_FAILED.to_owned())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.to_string();
        let retry_after = match &self {
            Self::TooManyRequests { retry_after, .. } => {
                Some(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
            Self::Unavailable(_) => Some(1),
            _ => None,
        };
        let reason = match &self {
            Self::Internal(cause) | Self::Unavailable(cause) => {
                tracing::error!(error = ?cause, "{message}");
                format!("{message}: {cause:#}")
            }
            _ => message.clone(),
        };
        let mut response = (
            status,
            Json(ErrorBody {
                success: false,
                code: self.code(),
                error: message,
            }),
        )
            .into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(Rejection(reason));
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::UsernameTaken => Self::Conflict(err.to_string()),
            err if err.is_unavailable() => Self::Unavailable(err.into()),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<RelayError> for ApiError {
    fn from(err: RelayError) -> Self {
        match err {
            RelayError::Invalid(_)
            | RelayError::RecipientNotParticipant { .. }
            | RelayError::SelfAddressed => Self::BadRequest(err.to_string()),
            RelayError::PayloadTooLarge { .. } => Self::PayloadTooLarge(err.to_string()),
            RelayError::ChatNotFound(_) => Self::NotFound(err.to_string()),
            RelayError::NotParticipant(_) => Self::Forbidden(err.to_string()),
            RelayError::SignalIdReused(_) => Self::Conflict(err.to_string()),
            RelayError::RateLimited { retry_after } => Self::TooManyRequests {
                message: err.to_string(),
                retry_after,
            },
            RelayError::TooManyConnections(_) => Self::TooManyRequests {
                message: err.to_string(),
                retry_after: std::time::Duration::from_secs(5),
            },
            RelayError::Call(call) => call.into(),
            RelayError::Store(store) => store.into(),
        }
    }
}

impl From<crate::calls::CallError> for ApiError {
    fn from(err: crate::calls::CallError) -> Self {
        use crate::calls::CallError;
        match err {
            CallError::Invalid(_) => Self::BadRequest(err.to_string()),
            CallError::Store(store) => store.into(),
            other => match other.code() {
                Some(code) => Self::CallConflict {
                    code,
                    message: other.to_string(),
                },
                None => Self::Conflict(other.to_string()),
            },
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Invalid(_) => Self::BadRequest(err.to_string()),
            AuthError::WrongCredentials => Self::Unauthorized(err.to_string()),
            AuthError::RegistrationClosed => Self::Forbidden(err.to_string()),
            AuthError::UsernameTaken(_) => Self::Conflict(err.to_string()),
            AuthError::Store(store) => store.into(),
            AuthError::Hashing(_) => Self::Internal(err.into()),
        }
    }
}

impl From<crate::domain::ValidationError> for ApiError {
    fn from(err: crate::domain::ValidationError) -> Self {
        Self::BadRequest(err.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonSyntaxError(e) => {
                Self::BadRequest(format!("Malformed JSON: {}", e.body_text()))
            }
            JsonRejection::JsonDataError(e) => {
                Self::BadRequest(format!("Invalid request body: {}", e.body_text()))
            }
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType(
                "Expected a JSON body with Content-Type: application/json".to_owned(),
            ),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::PayloadTooLarge("Request body is too large".to_owned())
            }
            other => Self::BadRequest(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::BadRequest(format!("Invalid query string: {}", rejection.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::NotFound(format!("No such resource: {}", rejection.body_text()))
    }
}

/// Logs one line per refused request, saying why. Lines for the relay carry the guide's
/// prefixes, so `grep '\[P2P_SEND\]'` shows the failed sends beside the stored ones.
pub async fn log_rejections(
    axum::extract::State(metrics): axum::extract::State<std::sync::Arc<crate::metrics::Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    if let Some(Rejection(reason)) = response.extensions().get::<Rejection>() {
        let prefix = if path.ends_with("/send-signal/") {
            "[P2P_SEND]"
        } else if path.starts_with("/api/p2p/") {
            "[P2P_GET]"
        } else {
            "[HTTP]"
        };
        let status = response.status().as_u16();
        metrics
            .requests_rejected
            .get_or_create(&crate::metrics::StatusLabel { status })
            .inc();
        if status >= 500 {
            tracing::error!(%method, %path, status, "{prefix} Failed {method} {path}: {reason}");
        } else {
            tracing::warn!(%method, %path, status, "{prefix} Rejected {method} {path} ({status}): {reason}");
        }
    }
    response
}

impl From<crate::chats::ChatError> for ApiError {
    fn from(err: crate::chats::ChatError) -> Self {
        use crate::chats::ChatError;
        match err {
            ChatError::Store(store) => store.into(),
            other => Self::BadRequest(other.to_string()),
        }
    }
}
