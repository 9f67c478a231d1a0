//! What a signal is called and how it is identified.

use super::ValidationError;

/// A signal's `type`, e.g. `webrtc.offer`: `^[a-z][a-z0-9_.-]{0,63}$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SignalType(String);

impl SignalType {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let mut chars = raw.chars();
        let valid_first = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let valid_rest = chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
        if valid_first && valid_rest && raw.len() <= Self::MAX_LEN {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValidationError::new(format!(
                "type {raw:?} is not a valid signal type: it must match ^[a-z][a-z0-9_.-]{{0,63}}$"
            )))
        }
    }

    /// Call signals (`webrtc.*`, `call.*`) describe a call being set up right now: after the call
    /// TTL they are stale and would only confuse a peer, so they are never delivered.
    pub fn is_call(&self) -> bool {
        self.0.starts_with("webrtc.") || self.0.starts_with("call.")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SignalType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The sender's id for one signal, shared by every path it is sent on, so the store keeps it once.
/// 1–128 characters from `[A-Za-z0-9_.:-]` (a UUID fits).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SignalId(String);

impl SignalId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let valid = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValidationError::new(
                "signal_id must be 1-128 characters from A-Z a-z 0-9 _ . : -",
            ))
        }
    }

    /// A fresh id for a sender that did not bring its own.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_guides_types() {
        for t in [
            "webrtc.offer",
            "webrtc.answer",
            "webrtc.ice",
            "call.end",
            "typing",
            "a",
        ] {
            assert!(SignalType::parse(t).is_ok(), "{t}");
        }
    }

    #[test]
    fn rejects_malformed_types() {
        let too_long = "a".repeat(65);
        for t in [
            "",
            "Webrtc.offer",
            "1abc",
            ".x",
            "a b",
            "é",
            too_long.as_str(),
        ] {
            assert!(SignalType::parse(t).is_err(), "{t:?}");
        }
        assert!(SignalType::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn call_signals_are_webrtc_and_call_prefixed() {
        assert!(SignalType::parse("webrtc.ice").unwrap().is_call());
        assert!(SignalType::parse("call.decline").unwrap().is_call());
        assert!(!SignalType::parse("typing").unwrap().is_call());
        assert!(!SignalType::parse("webrtc").unwrap().is_call());
    }

    #[test]
    fn signal_ids() {
        assert!(SignalId::parse(&SignalId::generate().0).is_ok());
        assert!(SignalId::parse("").is_err());
        assert!(SignalId::parse("a/b").is_err());
        assert!(SignalId::parse(&"x".repeat(129)).is_err());
    }
}
