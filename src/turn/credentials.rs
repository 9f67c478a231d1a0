//! TURN REST credentials (draft-uberti-behave-turn-rest, coturn's `use-auth-secret`): the HTTP
//! API mints them for a logged-in user, the embedded TURN server (or an external coturn holding
//! the same secret) checks them. Nothing is stored: the signature is the proof.
//!
//! username = `"<expiry unix time>:<user id>"`, credential = base64(HMAC-SHA1(secret, username)).

use base64::prelude::BASE64_STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::domain::UserId;

/// The shared secret. Its `Debug` never prints it.
#[derive(Clone)]
pub struct TurnSecret(String);

impl TurnSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// 256 random bits, base64: for a server whose secret is not configured.
    pub fn random() -> Self {
        use rand_core::{OsRng, RngCore};
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self(BASE64_STANDARD.encode(bytes))
    }

    /// The secret as coturn's `static-auth-secret` wants it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn sign(&self, username: &str) -> String {
        let mut mac = Hmac::<Sha1>::new_from_slice(self.0.as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(username.as_bytes());
        BASE64_STANDARD.encode(mac.finalize().into_bytes())
    }
}

impl std::fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TurnSecret(..)")
    }
}

/// A username/credential pair for `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub credential: String,
    /// Unix time after which no new allocation may be made with them.
    pub expires_at: u64,
}

/// Credentials for `user`, valid until `now_unix + ttl_secs`.
pub fn mint(secret: &TurnSecret, user: UserId, now_unix: u64, ttl_secs: u64) -> Credentials {
    let expires_at = now_unix + ttl_secs;
    let username = format!("{expires_at}:{}", user.0);
    let credential = secret.sign(&username);
    Credentials {
        username,
        credential,
        expires_at,
    }
}

/// Why a TURN username was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("the username is not <expiry>:<user id>")]
    Malformed,
    #[error("the credentials have expired")]
    Expired,
}

impl CredentialError {
    /// The label of `switchboard_turn_auth_failures_total{reason}`.
    pub fn reason(self) -> &'static str {
        match self {
            CredentialError::Malformed => "malformed",
            CredentialError::Expired => "expired",
        }
    }
}

/// A username accepted for a new allocation: who it is and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnUser {
    pub user: UserId,
    pub expires_at: u64,
}

/// Parses `username` and checks it has not expired. Returns the password the client must have
/// signed its request with (the server checks MESSAGE-INTEGRITY against it); a request signed
/// with another secret then fails that check.
pub fn check(
    secret: &TurnSecret,
    username: &str,
    now_unix: u64,
) -> Result<(TurnUser, String), CredentialError> {
    let turn_user = parse(username)?;
    if turn_user.expires_at < now_unix {
        return Err(CredentialError::Expired);
    }
    Ok((turn_user, secret.sign(username)))
}

/// Parses `username` without checking its expiry (refreshes of a live allocation may outlive
/// the credentials it was made with).
pub fn parse(username: &str) -> Result<TurnUser, CredentialError> {
    let (expiry, user) = username.split_once(':').ok_or(CredentialError::Malformed)?;
    let expires_at = expiry.parse().map_err(|_| CredentialError::Malformed)?;
    let user = user.parse().map_err(|_| CredentialError::Malformed)?;
    Ok(TurnUser {
        user: UserId(user),
        expires_at,
    })
}

/// The password for `username`, expired or not (see [`parse`]).
pub fn password(secret: &TurnSecret, username: &str) -> String {
    secret.sign(username)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_credentials_match_coturns_scheme() {
        // The TURN REST draft's scheme, checked against `openssl dgst -sha1 -hmac`:
        // printf '1700000000:42' | openssl dgst -sha1 -hmac s3cret -binary | base64
        let secret = TurnSecret::new("s3cret");
        let minted = mint(&secret, UserId(42), 1_699_996_400, 3600);
        assert_eq!(minted.username, "1700000000:42");
        assert_eq!(minted.credential, "pkGfLzidB0U1T2lLkxNy/vgk7ZE=");
        let (user, password) = check(&secret, &minted.username, 1_700_000_000).unwrap();
        assert_eq!(user.user, UserId(42));
        assert_eq!(password, minted.credential);
    }

    #[test]
    fn expired_and_malformed_usernames_are_refused() {
        let secret = TurnSecret::new("s3cret");
        assert_eq!(
            check(&secret, "1700000000:42", 1_700_000_001).unwrap_err(),
            CredentialError::Expired
        );
        for bad in ["", "42", "abc:42", "1700000000:bob", "1700000000"] {
            assert_eq!(
                check(&secret, bad, 0).unwrap_err(),
                CredentialError::Malformed
            );
        }
    }
}
