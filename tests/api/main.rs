//! Integration tests: each starts the real server on port 0 with a fresh SQLite file and talks
//! HTTP to it (or runs the real `switchboard` binary). Set `TEST_LOG=1` to see server logs.

mod auth;
mod calls;
mod chats;
mod cli;
mod cluster;
mod disk;
mod expiry;
mod helpers;
mod ice_servers;
mod push_clients;
mod realtime;
mod relay;
mod tls;
mod turn;
mod validation;
