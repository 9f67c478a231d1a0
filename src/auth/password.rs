//! Argon2id password hashing, off the async runtime (each hash takes tens of milliseconds of CPU).

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use rand_core::OsRng;

use crate::domain::Password;

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// A PHC string (`$argon2id$…`) with a fresh salt.
pub async fn hash_password(password: Password) -> Result<String, HashError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| HashError(e.to_string()))
    })
    .await
    .map_err(|e| HashError(e.to_string()))?
}

/// Checks `password` against `hash`. Without a hash (unknown user) it checks against a dummy one,
/// so a wrong username takes as long as a wrong password.
pub async fn verify_password(password: String, hash: Option<String>) -> bool {
    const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
                         dGhpc2lzbm90YXJlYWxoYXNoYnV0aXRpc3RoZXJpZ2h0bGVu";
    let known_user = hash.is_some();
    let hash = hash.unwrap_or_else(|| DUMMY.to_owned());
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
            && known_user
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_only_the_right_password() {
        let hash = hash_password(Password::parse("correct horse").unwrap())
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), Some(hash.clone())).await);
        assert!(!verify_password("wrong horse!".into(), Some(hash)).await);
        assert!(!verify_password("correct horse".into(), None).await);
    }
}
