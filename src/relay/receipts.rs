//! Delivery receipts: the sender learns that a signal was delivered (acknowledged by the
//! recipient's client) or expired unread. Receipts are pushed, not stored: they are hints for
//! the caller's UI; the signal itself is what must never be lost.
//!
//! `webrtc.*` signals (SDP and ICE) get no receipt: the peer's own answer is their receipt, and
//! a receipt per ICE candidate would double the frames of every call. Call control (`call.*`)
//! and any other kind do.

use serde::Serialize;

use crate::bus::Bus;
use crate::domain::{ChatId, Seq, UserId};
use crate::hub::Push;
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
    pub fn from_acked(acked: Acked, status: ReceiptStatus) -> Option<Self> {
        let wanted = gets_receipt(&acked.kind);
        wanted.then_some(Self {
            status,
            signal_id: acked.signal_id,
            chat_id: acked.chat,
            recipient: acked.recipient,
            sender: acked.sender,
            seq: acked.seq,
        })
    }

    pub fn delivered_from(signal: &StoredSignal, recipient: UserId) -> Option<Self> {
        gets_receipt(&signal.kind).then(|| Self {
            status: ReceiptStatus::Delivered,
            signal_id: signal.signal_id.clone(),
            chat_id: signal.chat_id,
            recipient,
            sender: signal.sender.id,
            seq: signal.seq,
        })
    }
}

fn gets_receipt(kind: &str) -> bool {
    !kind.starts_with("webrtc.")
}

/// Pushes a receipt to the signal's sender, for the kinds of signal that get one.
pub fn publish_receipt(bus: &dyn Bus, receipt: Option<Receipt>) {
    if let Some(receipt) = receipt {
        let to = receipt.sender;
        bus.publish(to, Push::Receipt(super::to_json(&receipt)));
    }
}
