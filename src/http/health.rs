//! `/healthz`: is this node able to serve (does the store answer)?

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    success: bool,
    status: &'static str,
}

/// 200 when the store answers, 503 when it does not.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
async fn healthz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state
        .store
        .ping()
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))?;
    Ok(Json(Health {
        success: true,
        status: "ok",
    }))
}
