//! The embedded STUN/TURN server and the TURN REST credentials it shares with the HTTP API.

pub mod credentials;
