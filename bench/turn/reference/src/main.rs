//! The webrtc-rs `turn` crate (0.17.2) with nothing around it: one UDP listener, TURN REST
//! credentials (coturn's scheme), relays on 127.0.0.1 in a port range. `bench/turn/relay.sh`
//! runs it beside coturn and Switchboard so the crate's own cost per relayed packet can be told
//! apart from what Switchboard adds (peer filtering, quotas, metrics).
//!
//!   turn-reference <listen addr> <secret> <realm> <relay port min> <relay port max> [rcvbuf]
//!
//! `rcvbuf`: the listener's UDP receive buffer in bytes (default: the kernel's, 208 KiB here).
//! The crate reads the listener from one task, one datagram at a time; while that task waits
//! for a core, arriving datagrams queue in this buffer and are dropped when it is full.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::prelude::{Engine, BASE64_STANDARD};
use ring::hmac;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use turn::auth::{generate_auth_key, AuthHandler};
use turn::relay::relay_range::RelayAddressGeneratorRanges;
use turn::server::config::{ConnConfig, ServerConfig};
use turn::server::Server;

/// TURN REST: the username is `<expiry unix time>:<user>`, the password
/// base64(HMAC-SHA1(secret, username)); the crate's own `LongTermAuthHandler` accepts only a
/// bare timestamp, so it cannot check coturn's usernames.
struct RestAuth {
    key: hmac::Key,
}

impl AuthHandler for RestAuth {
    fn auth_handle(
        &self,
        username: &str,
        realm: &str,
        _src: SocketAddr,
    ) -> Result<Vec<u8>, turn::Error> {
        let expiry: u64 = username
            .split(':')
            .next()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| turn::Error::Other(format!("malformed username {username}")))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| turn::Error::Other(e.to_string()))?;
        if Duration::from_secs(expiry) < now {
            return Err(turn::Error::Other(format!("expired username {username}")));
        }
        let password = BASE64_STANDARD.encode(hmac::sign(&self.key, username.as_bytes()));
        Ok(generate_auth_key(username, realm, &password))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // TURN_REFERENCE_RUNTIME=current-thread: one thread, so a packet's tasks never wake a
    // worker on the other core (the multi-thread default hands work across threads).
    let mut runtime = match std::env::var("TURN_REFERENCE_RUNTIME").as_deref() {
        Ok("current-thread") => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    runtime.enable_all().build()?.block_on(serve())
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (listen, secret, realm, min, max, rcvbuf) = match args.as_slice() {
        [l, s, r, min, max] => (l, s, r, min, max, None),
        [l, s, r, min, max, b] => (l, s, r, min, max, Some(b.parse::<usize>()?)),
        _ => {
            return Err(
                "usage: turn-reference <listen> <secret> <realm> <relay min> \
                        <relay max> [rcvbuf]"
                    .into(),
            )
        }
    };
    let listen: SocketAddr = listen.parse()?;
    let socket = Socket::new(
        Domain::for_address(listen),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    if let Some(bytes) = rcvbuf {
        socket.set_recv_buffer_size(bytes)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&listen.into())?;
    let conn = Arc::new(UdpSocket::from_std(socket.into())?);
    let server = Server::new(ServerConfig {
        conn_configs: vec![ConnConfig {
            conn,
            relay_addr_generator: Box::new(RelayAddressGeneratorRanges {
                relay_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
                min_port: min.parse()?,
                max_port: max.parse()?,
                max_retries: 10,
                address: "127.0.0.1".to_owned(),
                net: Arc::new(util::vnet::net::Net::new(None)),
            }),
        }],
        realm: realm.clone(),
        auth_handler: Arc::new(RestAuth {
            key: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes()),
        }),
        channel_bind_timeout: Duration::from_secs(0),
        alloc_close_notify: None,
    })
    .await?;
    println!("turn-reference listening on {listen}");
    tokio::signal::ctrl_c().await?;
    server.close().await?;
    Ok(())
}
