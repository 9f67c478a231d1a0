//! Values of the problem domain, validated at construction so an invalid one cannot exist.
//!
//! Everything here is pure: no I/O, no clocks. Parse constructors return [`ValidationError`],
//! which the HTTP layer turns into a 400 with the message as written here.

mod account;
mod call;
mod chat;
mod ids;
mod signal;
mod timestamp;

pub use account::{DisplayName, Password, Username};
pub use call::{reason_token, CallEvent, CallId, CallOutcome, CallRecord, CallState, DeviceId};
pub use chat::{ChatTitle, MessageBody};
pub use ids::{ChatId, MessageId, Seq, UserId};
pub use signal::{SignalId, SignalType};
pub use timestamp::Timestamp;

/// A value a client sent that breaks one of the domain's rules; the message is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(pub String);

impl ValidationError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
