//! Switchboard: the call-signaling server of a chat app with browser video calls.
//!
//! # Layout
//! The tree reads like the architecture (see `docs/ARCHITECTURE.md`):
//!
//! - [`domain`]: ids, validated values (`SignalType`, `Username`, …), timestamps. No I/O.
//! - [`store`]: the [`store::Store`] trait — the source of truth for users, sessions, chats,
//!   messages and signals — and its embedded SQLite implementation.
//! - [`auth`]: password hashing and sessions (kept in the store so any node can serve them).
//! - [`chats`]: starting chats (who may be in one; a direct chat exists once).
//! - [`relay`]: the signal relay service — validation that needs the store, per-recipient
//!   `seq`, dedup by `signal_id`, expiry — knowing nothing of HTTP.
//! - [`calls`]: the record of every call the relay relays — answered once, busy, rejoin after a
//!   reload — and the call event messages of the chat history (docs/CALLS.md).
//! - [`hub`]: this node's live push connections, keyed by user, with bounded queues.
//! - [`bus`]: wakes the node(s) holding a user's connections (in-process; Redis later).
//! - [`metrics`]: Prometheus counters and histograms for `GET /metrics`.
//! - [`cleanup`]: the background task that deletes old signals and sessions and sweeps
//!   expired call signals (sending `expired` receipts).
//! - [`http`]: axum routers, one module per resource, and the single error → JSON mapping.
//! - [`tls`]: built-in HTTPS — PEM or self-signed certificates, reloaded without dropping
//!   connections, the TLS listener and the plain-HTTP redirect.
//! - [`turn`]: the embedded STUN/TURN server, TURN REST credentials and the ICE server list.
//! - [`app`]: wires config, store and routers into a running server with graceful shutdown.
//! - [`cli`]: the `switchboard` command line (`serve`, `user`, `chat`, `signals`).
//! - [`config`]: defaults → TOML file → `SWITCHBOARD_*` environment → flags.

pub mod app;
pub mod auth;
pub mod bus;
pub mod calls;
pub mod chats;
pub mod cleanup;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod relay;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod turn;

pub use app::App;
pub use config::Config;
