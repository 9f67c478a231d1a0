//! Opening a client WebSocket over loopback, shared by both servers' adapters.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

use super::ConnectError;

pub type Socket = WebSocketStream<TcpStream>;

/// A handshake that takes longer than this is reported rather than waited for.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// A read buffer sized for signalling frames (most are a few hundred bytes; a larger frame grows
/// it), not tungstenite's 128 KiB default: it is allocated up front (the idle scenario holds
/// tens of thousands of sockets in this process) and zeroed before every read. (The write
/// buffer only grows when written to.)
fn config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4 * 1024)
}

/// Opens `url` (`ws://127.0.0.1:…`) with extra request headers.
pub async fn connect(url: &str, headers: &[(&'static str, &str)]) -> Result<Socket, ConnectError> {
    let mut request = url
        .into_client_request()
        .map_err(|e| ConnectError::Url(url.to_owned(), e.to_string()))?;
    for (name, value) in headers {
        let value = HeaderValue::from_str(value)
            .map_err(|e| ConnectError::Url(url.to_owned(), e.to_string()))?;
        request.headers_mut().insert(*name, value);
    }
    let authority = request
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .ok_or_else(|| ConnectError::Url(url.to_owned(), "no host".to_owned()))?;
    let handshake = async {
        let stream = TcpStream::connect(&authority).await?;
        // Signalling is latency-bound small frames: never let Nagle hold one back.
        stream.set_nodelay(true)?;
        let (socket, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(config())).await?;
        Ok::<_, ConnectError>(socket)
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| ConnectError::Timeout)?
}
