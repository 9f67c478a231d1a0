//! The HTTPS listener handed to `axum::serve`: accepts TCP, runs each TLS handshake in a task
//! of its own (a slow or silent client never holds up `accept`), and yields finished streams.
//! A client that speaks plain HTTP to this port gets a plain-HTTP answer instead of a TLS alert.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::redirect::{https_url, SPEAKS_HTTPS};

/// Longest a client may take from connecting to a finished handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in flight at once; past it, `accept` waits for one to finish (back-pressure
/// instead of unbounded tasks under a connection flood).
const MAX_PENDING_HANDSHAKES: usize = 1024;
/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// How long a plain-HTTP client gets to stop sending after its answer.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// Most bytes read of a plain-HTTP request head.
const MAX_PLAIN_HEAD: usize = 8 * 1024;

pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> Self {
        Self {
            tcp,
            acceptor: TlsAcceptor::from(config),
            handshakes: JoinSet::new(),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    // Cancel-safe, as axum needs (it drops `accept` on shutdown): both branches are, and a
    // handshake that finishes later is simply picked up by the next call.
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(stream)) = done {
                        return stream;
                    }
                }
                accepted = self.tcp.accept(), if self.handshakes.len() < MAX_PENDING_HANDSHAKES => {
                    match accepted {
                        Ok((tcp, peer)) => {
                            // Signals are small writes that must leave at once: without
                            // TCP_NODELAY a push can wait for the client's delayed ACK.
                            if let Err(err) = tcp.set_nodelay(true) {
                                tracing::debug!(error = %err, "could not set TCP_NODELAY");
                            }
                            self.handshakes.spawn(handshake(self.acceptor.clone(), tcp, peer));
                        }
                        Err(err) => accept_error(err).await,
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// As axum's own listener: a connection that died before it was accepted is nobody's problem;
/// anything else (out of file descriptors) is logged and retried after a pause.
async fn accept_error(err: io::Error) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accept error");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
    let attempt = async {
        let mut first = [0u8; 1];
        if tcp.peek(&mut first).await? == 0 {
            return Ok(None);
        }
        if first[0] != TLS_HANDSHAKE_RECORD {
            answer_plain_http(tcp).await?;
            tracing::debug!(%peer, "answered a plain-HTTP request on the HTTPS port");
            return Ok(None);
        }
        acceptor.accept(tcp).await.map(Some)
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, attempt).await {
        Ok(Ok(Some(stream))) => Some((stream, peer)),
        Ok(Ok(None)) => None,
        Ok(Err(err)) => {
            tracing::debug!(%peer, error = %err, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// Reads the request head and answers 308 to the `https://` URL of the same Host and path, or
/// 400 saying the port speaks HTTPS when the head does not parse.
async fn answer_plain_http(mut tcp: TcpStream) -> io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while head.len() < MAX_PLAIN_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let response = match redirect_target(&head) {
        Some(url) => format!(
            "HTTP/1.1 308 Permanent Redirect\r\nLocation: {url}\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{SPEAKS_HTTPS}\n",
            SPEAKS_HTTPS.len() + 1
        ),
        None => format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{SPEAKS_HTTPS}\n",
            SPEAKS_HTTPS.len() + 1
        ),
    };
    tcp.write_all(response.as_bytes()).await?;
    tcp.shutdown().await?;
    // Read what the client still sends (a body) before closing: closing with unread bytes
    // makes the kernel send a reset, which can destroy the answer before the client reads it.
    let drain = async {
        let mut drained = 0;
        while drained < MAX_PLAIN_HEAD {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
    Ok(())
}

fn redirect_target(head: &[u8]) -> Option<String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    if !request.parse(head).ok()?.is_complete() {
        return None;
    }
    let host = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("host"))
        .and_then(|h| std::str::from_utf8(h.value).ok())?;
    https_url(host, request.path?, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_request_is_sent_to_the_same_url_over_https() {
        assert_eq!(
            redirect_target(b"GET /chat?id=1 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n").as_deref(),
            Some("https://127.0.0.1:8000/chat?id=1")
        );
        assert_eq!(redirect_target(b"GET / HTTP/1.1\r\n\r\n"), None, "no Host");
        assert_eq!(redirect_target(b"\x00\x01garbage\r\n\r\n"), None);
        assert_eq!(
            redirect_target(b"GET / HTTP/1.1\r\nHost: a"),
            None,
            "cut short"
        );
    }
}
