//! What the server remembers of a call: its state, how it ended, and the event a chat shows.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ChatId, Timestamp, UserId, ValidationError};

/// A call's id, chosen by the caller: 1–128 characters from `[A-Za-z0-9_.:-]` (a UUID fits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(transparent)]
pub struct CallId(String);

impl CallId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if is_token(raw, Self::MAX_LEN) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValidationError::new(
                "call_id must be 1-128 characters from A-Z a-z 0-9 _ . : -",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One browser tab (see docs/CALLS.md): the id it keeps in `sessionStorage`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(transparent)]
pub struct DeviceId(String);

impl DeviceId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if is_token(raw, Self::MAX_LEN) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValidationError::new(
                "device must be 1-64 characters from A-Z a-z 0-9 _ . : -",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_token(raw: &str, max_len: usize) -> bool {
    !raw.is_empty()
        && raw.len() <= max_len
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallState {
    Ringing,
    Active,
    Ended,
}

impl CallState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ringing => "ringing",
            Self::Active => "active",
            Self::Ended => "ended",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "ringing" => Some(Self::Ringing),
            "active" => Some(Self::Active),
            "ended" => Some(Self::Ended),
            _ => None,
        }
    }
}

/// How a call ended, as both people's history shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallOutcome {
    /// Never answered: nobody picked up, the caller gave up, or the callee was offline.
    Missed,
    Declined,
    /// The callee was already in another call.
    Busy,
    /// Answered, then hung up (or lost for good).
    Ended,
    /// Answered, but no media path could be found.
    Failed,
    /// The losing half of two people calling each other at once: not shown in history.
    Merged,
}

impl CallOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missed => "missed",
            Self::Declined => "declined",
            Self::Busy => "busy",
            Self::Ended => "ended",
            Self::Failed => "failed",
            Self::Merged => "merged",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Missed,
            Self::Declined,
            Self::Busy,
            Self::Ended,
            Self::Failed,
            Self::Merged,
        ]
        .into_iter()
        .find(|o| o.as_str() == raw)
    }
}

/// The finer reason behind an outcome, e.g. `no-answer`, `offline`, `hangup`, `no-relay`.
/// Client-supplied reasons are kept only if they are short tokens.
pub fn reason_token(raw: Option<&str>) -> Option<String> {
    raw.filter(|r| {
        !r.is_empty() && r.len() <= 32 && r.chars().all(|c| c.is_ascii_lowercase() || c == '-')
    })
    .map(str::to_owned)
}

/// A call as the store keeps it (see docs/CALLS.md, "The call record").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub call_id: CallId,
    pub chat_id: ChatId,
    pub caller: UserId,
    pub callee: UserId,
    pub caller_device: Option<String>,
    pub answered_device: Option<String>,
    pub state: CallState,
    pub video: bool,
    pub created_at: Timestamp,
    pub answered_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub outcome: Option<CallOutcome>,
    pub reason: Option<String>,
    pub ended_by: Option<UserId>,
}

impl CallRecord {
    pub fn is_open(&self) -> bool {
        self.state != CallState::Ended
    }

    pub fn involves(&self, user: UserId) -> bool {
        self.caller == user || self.callee == user
    }

    /// The device on record for `user` in this call, if one is known yet.
    pub fn device_of(&self, user: UserId) -> Option<&str> {
        if user == self.caller {
            self.caller_device.as_deref()
        } else if user == self.callee {
            self.answered_device.as_deref()
        } else {
            None
        }
    }

    /// How long the call was connected (answered to ended), when it was answered.
    pub fn duration_ms(&self) -> Option<i64> {
        match (self.answered_at, self.ended_at) {
            (Some(from), Some(to)) => Some((to.millis() - from.millis()).max(0)),
            _ => None,
        }
    }
}

/// The `call` object of a call event message: what a chat shows of a finished call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CallEvent {
    pub call_id: String,
    pub outcome: CallOutcome,
    pub reason: Option<String>,
    /// Answered to ended, in milliseconds; null when never answered.
    pub duration_ms: Option<i64>,
    pub video: bool,
    /// Whose signal ended the call; null when the server ended it.
    pub ended_by: Option<UserId>,
}

impl CallEvent {
    pub fn of(record: &CallRecord) -> Self {
        Self {
            call_id: record.call_id.as_str().to_owned(),
            outcome: record.outcome.unwrap_or(CallOutcome::Ended),
            reason: record.reason.clone(),
            duration_ms: record.duration_ms(),
            video: record.video,
            ended_by: record.ended_by,
        }
    }

    /// The plain-text line shown by clients that do not know call events.
    pub fn summary(&self) -> String {
        let kind = if self.video {
            "Video call"
        } else {
            "Voice call"
        };
        match self.outcome {
            CallOutcome::Missed => format!("Missed {}", kind.to_lowercase()),
            CallOutcome::Declined => format!("{kind} declined"),
            CallOutcome::Busy => format!("{kind}: busy"),
            CallOutcome::Failed => format!("{kind} failed: could not connect"),
            CallOutcome::Ended | CallOutcome::Merged => {
                let seconds = self.duration_ms.unwrap_or(0) / 1000;
                format!("{kind} · {}:{:02}", seconds / 60, seconds % 60)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_uuids_and_refuse_markup() {
        assert!(CallId::parse("0b6f8e0c-2f3e-4c53-9d2e-1f0b9c7a5d11").is_ok());
        assert!(CallId::parse("").is_err());
        assert!(CallId::parse("<script>").is_err());
        assert!(DeviceId::parse(&"d".repeat(65)).is_err());
    }

    #[test]
    fn summaries_read_like_a_phone_log() {
        let mut event = CallEvent {
            call_id: "c".into(),
            outcome: CallOutcome::Ended,
            reason: Some("hangup".into()),
            duration_ms: Some(125_400),
            video: true,
            ended_by: None,
        };
        assert_eq!(event.summary(), "Video call · 2:05");
        event.outcome = CallOutcome::Missed;
        assert_eq!(event.summary(), "Missed video call");
    }

    #[test]
    fn only_short_lowercase_reasons_are_kept() {
        assert_eq!(
            reason_token(Some("no-answer")).as_deref(),
            Some("no-answer")
        );
        assert_eq!(reason_token(Some("Drop TABLE")), None);
        assert_eq!(reason_token(Some(&"a".repeat(33))), None);
    }
}
