//! Typed ids, so a user id can never be passed where a chat id is expected.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
        )]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A user account.
    UserId
);
id_type!(
    /// A chat (a conversation between two or more users).
    ChatId
);
id_type!(
    /// A text message in a chat.
    MessageId
);
id_type!(
    /// A recipient's position in its own signal stream: strictly increasing in commit order,
    /// without gaps, so a client's cursor can never skip a signal.
    Seq
);
