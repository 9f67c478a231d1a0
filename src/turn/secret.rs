//! Where the TURN REST secret comes from: `turn_secret` when configured (it must then equal
//! coturn's `static-auth-secret` if an external coturn is used), otherwise one generated on first
//! start and kept in the store, so every node of a deployment — and every restart — signs and
//! checks credentials with the same secret.

use base64::prelude::BASE64_STANDARD;
use base64::Engine;
use rand_core::{OsRng, RngCore};

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
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let candidate = BASE64_STANDARD.encode(bytes);
    let secret = store.setting_or_insert(SETTING_KEY, &candidate).await?;
    Ok(TurnSecret::new(secret))
}
