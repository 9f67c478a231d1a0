//! The fields of a call signal's payload the call record reads; the rest is the browsers' own.

use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Debug, Default, Deserialize)]
pub struct CallPayload {
    pub call_id: String,
    pub device: Option<String>,
    pub reason: Option<String>,
    pub cause: Option<String>,
    pub video: Option<bool>,
}

impl CallPayload {
    /// `None` when the payload is not an object with a string `call_id`: such a signal is
    /// relayed as before, without a record (the guide's clients send no call ids).
    pub fn read(raw: &RawValue) -> Option<Self> {
        serde_json::from_str(raw.get()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    #[test]
    fn reads_the_fields_and_ignores_the_rest() {
        let p = CallPayload::read(&raw(
            r#"{"call_id":"c1","device":"d1","sdp":{"x":1},"video":false}"#,
        ))
        .unwrap();
        assert_eq!(p.call_id, "c1");
        assert_eq!(p.device.as_deref(), Some("d1"));
        assert_eq!(p.video, Some(false));
    }

    #[test]
    fn no_call_id_means_no_record() {
        assert!(CallPayload::read(&raw(r#"{"sdp":"v=0"}"#)).is_none());
        assert!(CallPayload::read(&raw(r#""just a string""#)).is_none());
        assert!(CallPayload::read(&raw(r#"{"call_id":7}"#)).is_none());
    }
}
