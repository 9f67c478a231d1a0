//! Where the TURN REST secret comes from: `turn_secret` when configured (it must then equal
//! coturn's `static-auth-secret` if an external coturn is used), otherwise one generated on first
//! start and kept in the store, so every node of a deployment — and every restart — signs and
//! checks credentials with the same secret.

use super::credentials::TurnSecret;
use crate::store::{Store, StoreResult};

const SETTING_KEY: &str = "turn_secret";

pub async fn load_or_create(
    store: &dyn Store,
    configured: Option<&str>,
) -> StoreResult<TurnSecret> {
    if let Some(secret) = configured {
        return Ok(TurnSecret::new(secret));
    }
    let candidate = TurnSecret::random();
    let secret = store
        .setting_or_insert(SETTING_KEY, candidate.expose())
        .await?;
    Ok(TurnSecret::new(secret))
}
