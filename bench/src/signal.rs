//! What the bench sends and receives, whichever server carries it: the three WebRTC signal kinds,
//! the marks a payload carries for measuring, and the payload text itself.
//!
//! A payload is `{"t":<send time, ns>,"n":<per-direction number>,"k":<direction key>,…}` plus
//! padding that makes it as large as a real one: ~3.2 KB for an offer or answer (an SDP), ~270 B
//! for an ICE candidate. The padding is built once; a send only formats three numbers around it.

use std::fmt::Write;
use std::sync::Arc;

use serde::Deserialize;

/// Target size of a whole offer/answer payload (a browser's SDP with audio and video).
pub const SDP_PAYLOAD_BYTES: usize = 3_200;
/// Target size of a whole ICE candidate payload.
pub const ICE_PAYLOAD_BYTES: usize = 270;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    Offer,
    Answer,
    Ice,
}

impl SignalKind {
    /// The `type` Switchboard knows it by.
    pub fn switchboard_type(self) -> &'static str {
        match self {
            Self::Offer => "webrtc.offer",
            Self::Answer => "webrtc.answer",
            Self::Ice => "webrtc.ice",
        }
    }

    pub fn from_switchboard_type(kind: &str) -> Option<Self> {
        match kind {
            "webrtc.offer" => Some(Self::Offer),
            "webrtc.answer" => Some(Self::Answer),
            "webrtc.ice" => Some(Self::Ice),
            _ => None,
        }
    }

    /// The message `type` of the PeerJS server protocol.
    pub fn peerjs_type(self) -> &'static str {
        match self {
            Self::Offer => "OFFER",
            Self::Answer => "ANSWER",
            Self::Ice => "CANDIDATE",
        }
    }

    pub fn from_peerjs_type(kind: &str) -> Option<Self> {
        match kind {
            "OFFER" => Some(Self::Offer),
            "ANSWER" => Some(Self::Answer),
            "CANDIDATE" => Some(Self::Ice),
            _ => None,
        }
    }
}

/// The bench's own fields in every payload. Unknown fields (the padding) are skipped when a
/// received payload is parsed into it, without being copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Mark {
    /// When it was sent (or, in open loop, scheduled): ns on the [`crate::clock::BenchClock`].
    pub t: u64,
    /// Its number within its direction: 1, 2, 3, … in send order.
    pub n: u32,
    /// The direction (sender → receiver) it belongs to.
    pub k: u32,
}

/// How a client addresses the other end, as a ready JSON member: `"chat_id":17` for Switchboard,
/// `"dst":"peer-id"` for PeerJS. Rendered once per pair, cloned (a refcount) per send.
#[derive(Debug, Clone)]
pub struct Route(Arc<str>);

impl Route {
    pub fn new(json_member: String) -> Self {
        Self(json_member.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One signal a client is asked to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub route: Route,
    pub kind: SignalKind,
    pub mark: Mark,
}

/// One signal a client received.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub kind: SignalKind,
    pub mark: Mark,
    /// ns on the bench clock, read when the frame was parsed.
    pub received_at: u64,
}

/// The padding, built once and shared by every client.
#[derive(Debug)]
pub struct Payloads {
    sdp: String,
    candidate: String,
}

/// A typical browser SDP, escaped the way it travels inside JSON (`\r\n` as `\\r\\n`), repeated
/// to the target size so the servers parse what they would parse in production.
const SDP_TEMPLATE: &str = "v=0\\r\\no=- 4611731400430051336 2 IN IP4 127.0.0.1\\r\\ns=-\\r\\nt=0 0\\r\\na=group:BUNDLE 0 1\\r\\na=extmap-allow-mixed\\r\\na=msid-semantic: WMS 5zXQ\\r\\nm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\\r\\nc=IN IP4 0.0.0.0\\r\\na=rtcp:9 IN IP4 0.0.0.0\\r\\na=ice-ufrag:4ZcD\\r\\na=ice-pwd:2/1muCWoOi3uLifh0NuRHlJH\\r\\na=ice-options:trickle\\r\\na=fingerprint:sha-256 75:74:5A:A6:A4:E5:52:F4:A7:67:4C:01:C7:EE:91:3F:21:3D:A2:E3:53:7B:6F:30:86:F2:30:AA:65:FB:04:24\\r\\na=setup:actpass\\r\\na=mid:0\\r\\na=sendrecv\\r\\na=rtcp-mux\\r\\na=rtpmap:111 opus/48000/2\\r\\na=fmtp:111 minptime=10;useinbandfec=1\\r\\n";
const CANDIDATE_TEMPLATE: &str = "candidate:842163049 1 udp 1677729535 127.0.0.1 52371 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag 4ZcD network-id 1 network-cost 10";
/// Room left for the marks and the JSON around the padding (`{"t":…,"n":…,"k":…,"sdp":"…"}`).
const MARKS_ALLOWANCE: usize = 48;

impl Default for Payloads {
    fn default() -> Self {
        let candidate_overhead =
            MARKS_ALLOWANCE + r#","candidate":"","sdpMid":"0","sdpMLineIndex":0"#.len();
        Self {
            sdp: pad(SDP_TEMPLATE, SDP_PAYLOAD_BYTES - MARKS_ALLOWANCE),
            candidate: pad(CANDIDATE_TEMPLATE, ICE_PAYLOAD_BYTES - candidate_overhead),
        }
    }
}

impl Payloads {
    /// Appends the payload JSON object of a signal to `out`.
    pub fn write(&self, out: &mut String, kind: SignalKind, mark: Mark) {
        let Mark { t, n, k } = mark;
        // Writing into a String cannot fail.
        let _ = match kind {
            SignalKind::Offer | SignalKind::Answer => {
                write!(out, r#"{{"t":{t},"n":{n},"k":{k},"sdp":"{}"}}"#, self.sdp)
            }
            SignalKind::Ice => write!(
                out,
                r#"{{"t":{t},"n":{n},"k":{k},"candidate":"{}","sdpMid":"0","sdpMLineIndex":0}}"#,
                self.candidate
            ),
        };
    }

    /// The size of a payload of this kind, for pre-sizing frame buffers.
    pub fn capacity(&self, kind: SignalKind) -> usize {
        match kind {
            SignalKind::Offer | SignalKind::Answer => self.sdp.len() + MARKS_ALLOWANCE + 16,
            SignalKind::Ice => self.candidate.len() + MARKS_ALLOWANCE + 64,
        }
    }
}

/// `template` repeated and cut to `len` bytes, never inside an escape sequence.
fn pad(template: &str, len: usize) -> String {
    let mut text = template.repeat(len / template.len() + 1);
    text.truncate(len);
    while text.ends_with('\\') {
        text.pop();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(kind: SignalKind, mark: Mark) -> String {
        let mut out = String::new();
        Payloads::default().write(&mut out, kind, mark);
        out
    }

    #[test]
    fn payloads_are_valid_json_of_the_intended_size_carrying_the_marks() {
        let mark = Mark {
            t: 12_345_678_901,
            n: 42,
            k: 7,
        };
        for (kind, size) in [
            (SignalKind::Offer, SDP_PAYLOAD_BYTES),
            (SignalKind::Ice, ICE_PAYLOAD_BYTES),
        ] {
            let text = payload(kind, mark);
            assert!(
                text.len().abs_diff(size) < 40,
                "{kind:?}: {} bytes",
                text.len()
            );
            let parsed: Mark = serde_json::from_str(&text).unwrap();
            assert_eq!(parsed, mark);
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert!(value.is_object());
        }
    }

    #[test]
    fn kinds_round_trip_through_both_protocols() {
        for kind in [SignalKind::Offer, SignalKind::Answer, SignalKind::Ice] {
            assert_eq!(
                SignalKind::from_switchboard_type(kind.switchboard_type()),
                Some(kind)
            );
            assert_eq!(SignalKind::from_peerjs_type(kind.peerjs_type()), Some(kind));
        }
    }
}
