//! WebSocket and SSE clients for the tests, speaking the protocol of docs/PROTOCOL.md.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::{TestApp, TestUser};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
}

/// What the server did when the connection ended.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed {
    pub code: u16,
}

impl WsClient {
    /// Connects as `user`, resuming after `last_seq`; returns the client and the welcome frame.
    pub async fn connect(app: &TestApp, user: &TestUser, last_seq: i64) -> (Self, Value) {
        Self::connect_at(&app.address, user, last_seq).await
    }

    /// As [`WsClient::connect`], to the node at `address`.
    pub async fn connect_at(address: &str, user: &TestUser, last_seq: i64) -> (Self, Value) {
        let mut client = Self::try_connect_at(address, user, last_seq, None)
            .await
            .expect("websocket handshake");
        let welcome = client.frame().await;
        assert_eq!(welcome["op"], "welcome", "{welcome}");
        (client, welcome)
    }

    /// The handshake, with an optional Origin; `Err(status)` if the server refused it.
    pub async fn try_connect(
        app: &TestApp,
        user: &TestUser,
        last_seq: i64,
        origin: Option<&str>,
    ) -> Result<Self, u16> {
        Self::try_connect_at(&app.address, user, last_seq, origin).await
    }

    pub async fn try_connect_at(
        address: &str,
        user: &TestUser,
        last_seq: i64,
        origin: Option<&str>,
    ) -> Result<Self, u16> {
        Self::try_connect_with(address, user, last_seq, origin, None).await
    }

    /// As [`WsClient::connect_at`], over TLS to an `https://` address, with this client config.
    pub async fn connect_tls(
        address: &str,
        user: &TestUser,
        last_seq: i64,
        tls: std::sync::Arc<rustls::ClientConfig>,
    ) -> (Self, Value) {
        let mut client = Self::try_connect_with(
            address,
            user,
            last_seq,
            None,
            Some(tokio_tungstenite::Connector::Rustls(tls)),
        )
        .await
        .expect("websocket handshake");
        let welcome = client.frame().await;
        assert_eq!(welcome["op"], "welcome", "{welcome}");
        (client, welcome)
    }

    /// The handshake, with an optional Origin and TLS connector.
    pub async fn try_connect_with(
        address: &str,
        user: &TestUser,
        last_seq: i64,
        origin: Option<&str>,
        connector: Option<tokio_tungstenite::Connector>,
    ) -> Result<Self, u16> {
        let url = format!(
            "{}/ws/p2p/?last_seq={last_seq}",
            address.replacen("http", "ws", 1)
        );
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Cookie", HeaderValue::from_str(&user.cookie).unwrap());
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("Origin", HeaderValue::from_str(origin).unwrap());
        }
        match tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector)
            .await
        {
            Ok((socket, _)) => Ok(Self { socket }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(other) => panic!("handshake failed: {other}"),
        }
    }

    pub async fn send(&mut self, frame: Value) {
        self.socket
            .send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
    }

    /// The next JSON frame (control frames skipped); panics on close or after [`WAIT`].
    pub async fn frame(&mut self) -> Value {
        match self.next().await {
            Ok(frame) => frame,
            Err(closed) => panic!("connection closed: {closed:?}"),
        }
    }

    /// The next signal frame's signal (receipts and messages skipped).
    pub async fn signal(&mut self) -> Value {
        loop {
            let frame = self.frame().await;
            if frame["op"] == "signal" {
                return frame["signal"].clone();
            }
        }
    }

    /// The next JSON frame, or how the connection was closed.
    pub async fn next(&mut self) -> Result<Value, Closed> {
        loop {
            let message = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("a frame in time");
            match message {
                Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).unwrap()),
                Some(Ok(Message::Close(frame))) => {
                    return Err(Closed {
                        code: frame.map_or(1005, |f| f.code.into()),
                    })
                }
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => return Err(Closed { code: 1006 }),
            }
        }
    }

    /// Exchanges an application ping, proving the connection's loop is running.
    pub async fn ping(&mut self) {
        self.send(serde_json::json!({"op": "ping"})).await;
        loop {
            if self.frame().await["op"] == "pong" {
                return;
            }
        }
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

pub struct SseClient {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl SseClient {
    /// Opens the stream as `user`, resuming after `last_event_id` (sent as `Last-Event-ID`).
    pub async fn connect(app: &TestApp, user: &TestUser, last_event_id: Option<i64>) -> Self {
        Self::connect_at(&app.address, user, last_event_id).await
    }

    pub async fn connect_at(address: &str, user: &TestUser, last_event_id: Option<i64>) -> Self {
        Self::connect_with(&reqwest::Client::new(), address, user, last_event_id).await
    }

    /// As [`SseClient::connect_at`], through `client` (one that trusts a test certificate, say).
    pub async fn connect_with(
        client: &reqwest::Client,
        address: &str,
        user: &TestUser,
        last_event_id: Option<i64>,
    ) -> Self {
        let mut request = client
            .get(format!("{address}/api/p2p/events/"))
            .header("Cookie", &user.cookie);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let mut client = Self {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        };
        let welcome = client.event().await.expect("welcome");
        assert_eq!(welcome.event, "welcome");
        client
    }

    /// The next event, or `None` when the server ended the stream.
    pub async fn event(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent::default();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        event.event = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("id:") {
                        event.id = Some(value.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        event.data.push_str(value.trim_start());
                    }
                }
                if event.event.is_empty() && event.data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some(event);
            }
            let chunk = tokio::time::timeout(WAIT, self.body.next())
                .await
                .expect("an event in time");
            match chunk {
                Some(Ok(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    pub async fn signal(&mut self) -> SseEvent {
        loop {
            let event = self.event().await.expect("stream still open");
            if event.event == "signal" {
                return event;
            }
        }
    }
}
