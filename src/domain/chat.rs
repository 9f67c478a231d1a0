//! Chat values: titles and message bodies.

use super::ValidationError;

/// An optional chat title: at most 128 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTitle(String);

impl ChatTitle {
    /// A blank title means "no title": the client then names the chat after its participants.
    pub fn parse(raw: &str) -> Result<Option<Self>, ValidationError> {
        let title = raw.trim();
        if title.is_empty() {
            return Ok(None);
        }
        if title.chars().count() > 128 || title.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "title must be at most 128 characters without control characters",
            ));
        }
        Ok(Some(Self(title.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A text message: 1–4000 characters, not only whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    pub const MAX_CHARS: usize = 4000;

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.trim().is_empty() {
            return Err(ValidationError::new("message body must not be empty"));
        }
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(ValidationError::new(format!(
                "message body must be at most {} characters",
                Self::MAX_CHARS
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
