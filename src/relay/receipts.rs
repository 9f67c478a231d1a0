//! Delivery receipts: the sender learns that a signal was delivered (acknowledged by the
//! recipient's client) or expired unread. Receipts are pushed, not stored: they are hints for
//! the caller's UI; the signal itself is what must never be lost.

use serde::Serialize;

use crate::domain::{ChatId, Seq, UserId};
use crate::store::{Acked, StoredSignal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptStatus {
    Delivered,
    Expired,
}

#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    pub status: ReceiptStatus,
    pub signal_id: String,
    pub chat_id: ChatId,
    /// The recipient the receipt is about.
    pub recipient: UserId,
    #[serde(skip)]
    pub sender: UserId,
    /// The recipient's seq for the signal.
    #[serde(skip)]
    pub seq: Seq,
}

impl Receipt {
    pub fn from_acked(acked: Acked, status: ReceiptStatus) -> Self {
        Self {
            status,
            signal_id: acked.signal_id,
            chat_id: acked.chat,
            recipient: acked.recipient,
            sender: acked.sender,
            seq: acked.seq,
        }
    }

    pub fn delivered_from(signal: &StoredSignal, recipient: UserId) -> Self {
        Self {
            status: ReceiptStatus::Delivered,
            signal_id: signal.signal_id.clone(),
            chat_id: signal.chat_id,
            recipient,
            sender: signal.sender.id,
            seq: signal.seq,
        }
    }
}
