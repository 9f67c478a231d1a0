//! TURN over TCP and TLS (RFC 5766 §2.1): the webrtc-rs server reads packets from a [`Conn`],
//! so this adapter accepts streams and cuts them into packets — each STUN message (20-byte
//! header, length at bytes 2..4) or ChannelData message (4-byte header, length at 2..4, padded
//! to 4 bytes over streams) is one packet. `recv_from` yields (packet, the stream's peer
//! address); `send_to` queues the bytes on that peer's stream.
//!
//! Bounds: at most [`MAX_STREAMS`] streams; a stream holds one frame (≤ 64 KiB) being read and
//! at most [`WRITE_QUEUE`] packets to write (more are dropped, as a full UDP buffer would);
//! a stream that sends nothing for the idle timeout is closed, so is one that sends anything
//! but STUN or ChannelData.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use stun::message::{is_message, MESSAGE_HEADER_SIZE};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use turn::proto::channum::ChannelNumber;
use webrtc_util::Conn;

use super::auth::Counters;

/// Streams open at once on one listener; more are closed on accept.
pub const MAX_STREAMS: usize = 4096;
/// Packets queued for one stream's writer.
pub const WRITE_QUEUE: usize = 256;
/// Packets read from all streams and not yet taken by the server.
const INBOUND_QUEUE: usize = 1024;
/// A TLS handshake (and a client's first frame) must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const CHANNEL_DATA_HEADER_SIZE: usize = 4;

type Streams = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>;

/// A packet [`Conn`] over the streams accepted on one TCP listener (plain or TLS).
pub(crate) struct StreamConn {
    local: SocketAddr,
    inbound: tokio::sync::Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
    streams: Streams,
    stop: CancellationToken,
}

impl StreamConn {
    /// Accepts on `listener` until `shutdown` (or [`Conn::close`]); `tls` wraps each stream.
    pub fn start(
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        idle_timeout: Duration,
        counters: Arc<Counters>,
        shutdown: &CancellationToken,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
        let streams: Streams = Arc::default();
        let stop = shutdown.child_token();
        tokio::spawn(accept_loop(
            listener,
            tls,
            Reader {
                inbound: inbound_tx,
                idle_timeout,
                counters,
            },
            streams.clone(),
            stop.clone(),
        ));
        Ok(Self {
            local,
            inbound: tokio::sync::Mutex::new(inbound_rx),
            streams,
            stop,
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    reader: Reader,
    streams: Streams,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_STREAMS));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(%error, "TURN stream accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.cancelled() => return,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "too many TURN streams; closing a new one");
            continue;
        };
        // Small control messages and media: never wait for Nagle.
        let _ = stream.set_nodelay(true);
        let tls = tls.clone();
        let reader = reader.clone();
        let streams = streams.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_stream(stream, peer, reader, streams, stop).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => serve_stream(stream, peer, reader, streams, stop).await,
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TURN TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(%peer, "TURN TLS handshake timed out"),
                    }
                }
            }
            drop(slot);
        });
    }
}

/// Reads frames from a stream into the shared inbound queue.
#[derive(Clone)]
struct Reader {
    inbound: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    idle_timeout: Duration,
    counters: Arc<Counters>,
}

async fn serve_stream<S>(
    stream: S,
    peer: SocketAddr,
    reader: Reader,
    streams: Streams,
    stop: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut read_half, mut write_half) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    streams
        .lock()
        .expect("the streams' lock is never held across a panic")
        .insert(peer, tx.clone());
    let writer = async move {
        while let Some(packet) = rx.recv().await {
            if write_half.write_all(&packet).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        () = writer => {}
        () = reader.read_frames(&mut read_half, peer) => {}
        () = stop.cancelled() => {}
    }
    let mut streams = streams.lock().expect("never poisoned");
    // A new stream from the same address may have replaced this one.
    if streams
        .get(&peer)
        .is_some_and(|current| current.same_channel(&tx))
    {
        streams.remove(&peer);
    }
}

impl Reader {
    async fn read_frames<R: AsyncRead + Unpin>(&self, stream: &mut R, peer: SocketAddr) {
        let mut timeout = HANDSHAKE_TIMEOUT;
        let mut first = true;
        loop {
            let frame = match tokio::time::timeout(timeout, read_frame(stream, first)).await {
                Err(_) => {
                    tracing::debug!(%peer, "idle TURN stream closed");
                    return;
                }
                Ok(Err(FrameError::Closed)) => return,
                Ok(Err(FrameError::Malformed)) => {
                    self.counters.malformed.inc();
                    tracing::debug!(%peer, "TURN stream sent neither STUN nor ChannelData; closed");
                    return;
                }
                Ok(Ok(frame)) => frame,
            };
            timeout = self.idle_timeout;
            first = false;
            // Waiting here is the backpressure: a stream the server cannot keep up with is
            // not read further.
            if self.inbound.send((frame, peer)).await.is_err() {
                return;
            }
        }
    }
}

enum FrameError {
    Closed,
    Malformed,
}

/// One STUN or ChannelData message; the padding after ChannelData is read and dropped.
/// A client's `first` message is a request (STUN): anything else is not a TURN client (an HTTP
/// request's "GET " would pass for a ChannelData header and stall the stream).
async fn read_frame<R: AsyncRead + Unpin>(
    stream: &mut R,
    first: bool,
) -> Result<Vec<u8>, FrameError> {
    let mut header = [0u8; MESSAGE_HEADER_SIZE];
    read_exact(stream, &mut header[..CHANNEL_DATA_HEADER_SIZE]).await?;
    let length = u16::from_be_bytes([header[2], header[3]]) as usize;
    let channel = ChannelNumber(u16::from_be_bytes([header[0], header[1]]));
    if !first && channel.valid() {
        let mut frame = Vec::with_capacity(CHANNEL_DATA_HEADER_SIZE + length);
        frame.extend_from_slice(&header[..CHANNEL_DATA_HEADER_SIZE]);
        frame.resize(CHANNEL_DATA_HEADER_SIZE + length, 0);
        read_exact(stream, &mut frame[CHANNEL_DATA_HEADER_SIZE..]).await?;
        let padding = (4 - length % 4) % 4;
        let mut pad = [0u8; 3];
        read_exact(stream, &mut pad[..padding]).await?;
        return Ok(frame);
    }
    read_exact(stream, &mut header[CHANNEL_DATA_HEADER_SIZE..]).await?;
    if !is_message(&header) || header[0] & 0xc0 != 0 || !length.is_multiple_of(4) {
        return Err(FrameError::Malformed);
    }
    let mut frame = Vec::with_capacity(MESSAGE_HEADER_SIZE + length);
    frame.extend_from_slice(&header);
    frame.resize(MESSAGE_HEADER_SIZE + length, 0);
    read_exact(stream, &mut frame[MESSAGE_HEADER_SIZE..]).await?;
    Ok(frame)
}

async fn read_exact<R: AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut [u8],
) -> Result<(), FrameError> {
    if buf.is_empty() {
        return Ok(());
    }
    stream
        .read_exact(buf)
        .await
        .map(|_| ())
        .map_err(|_| FrameError::Closed)
}

#[async_trait]
impl Conn for StreamConn {
    async fn connect(&self, _addr: SocketAddr) -> webrtc_util::Result<()> {
        Err(webrtc_util::Error::Other(
            "a stream listener does not connect".into(),
        ))
    }

    async fn recv(&self, _buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Err(webrtc_util::Error::Other("use recv_from".into()))
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        let mut inbound = self.inbound.lock().await;
        let (frame, peer) = inbound
            .recv()
            .await
            .ok_or(webrtc_util::Error::ErrClosedListener)?;
        // As a UDP socket truncates a datagram larger than the buffer.
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        Ok((n, peer))
    }

    async fn send(&self, _buf: &[u8]) -> webrtc_util::Result<usize> {
        Err(webrtc_util::Error::Other("use send_to".into()))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        let sender = self
            .streams
            .lock()
            .expect("the streams' lock is never held across a panic")
            .get(&target)
            .cloned();
        // A closed stream or a full queue drops the packet, as UDP would; an error here would
        // only make the server log a line per relayed packet.
        if let Some(sender) = sender {
            let _ = sender.try_send(buf.to_vec());
        }
        Ok(buf.len())
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.local)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        self.stop.cancel();
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(bytes: &[u8]) -> Vec<Result<Vec<u8>, &'static str>> {
        let mut stream = bytes;
        let mut out = Vec::new();
        loop {
            match read_frame(&mut stream, out.is_empty()).await {
                Ok(frame) => out.push(Ok(frame)),
                Err(FrameError::Malformed) => {
                    out.push(Err("malformed"));
                    return out;
                }
                Err(FrameError::Closed) => return out,
            }
        }
    }

    #[tokio::test]
    async fn streams_are_cut_into_stun_and_padded_channel_data() {
        let mut binding = stun::message::Message::new();
        binding
            .build(&[
                Box::new(stun::agent::TransactionId::new()),
                Box::new(stun::message::BINDING_REQUEST),
            ])
            .unwrap();
        let mut data = turn::proto::chandata::ChannelData {
            data: vec![7; 5],
            number: turn::proto::channum::ChannelNumber(0x4001),
            raw: vec![],
        };
        data.encode(); // 4 + 5, padded to 12
        let mut bytes = binding.raw.clone();
        bytes.extend_from_slice(&data.raw);
        bytes.extend_from_slice(&binding.raw);
        let got = frames(&bytes).await;
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].as_ref().unwrap(), &binding.raw);
        assert_eq!(got[1].as_ref().unwrap(), &data.raw[..9]);
        assert_eq!(got[2].as_ref().unwrap(), &binding.raw);
    }

    #[tokio::test]
    async fn garbage_is_malformed() {
        let got = frames(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(got, vec![Err("malformed")]);
    }
}
