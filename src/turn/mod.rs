//! The embedded STUN/TURN server and the TURN REST credentials it shares with the HTTP API.
//!
//! - [`credentials`]: mint and check `<expiry>:<user id>` usernames (coturn's scheme).
//! - [`secret`]: the shared secret, configured or generated once and kept in the store.
//! - [`ice_servers`]: what `GET /api/p2p/ice-servers/` returns to a browser.

pub mod credentials;
pub mod ice_servers;
pub mod secret;
