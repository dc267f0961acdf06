//! The 16-byte topic id (KIP-516: `uuid topic_id` on the wire).
//!
//! The controller's proposer chooses the id before proposing, so applying a `CreateTopic` draws
//! no randomness (DESIGN.md, "The seams and determinism"). Two ids are reserved as Kafka
//! reserves them (`org.apache.kafka.common.Uuid`): all zeros means "no id" on the wire
//! (`Uuid.ZERO_UUID`) and the value 1 is the metadata log's own id (`Uuid.METADATA_TOPIC_ID`).
//!
//! Text form: the 36-character hyphenated lowercase UUID form, as the `uuid` crate prints it and
//! as `topics.json` stores it. Parsing is strict: exactly that form (upper-case hex accepted).

use std::fmt;

/// A topic id. Invariant when held by a topic: not reserved (`is_reserved` is false).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicId(pub [u8; 16]);

/// Compact in traces and assertion messages: `TopicId(` 32 hex digits `)`.
impl fmt::Debug for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicId(")?;
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        write!(f, ")")
    }
}

/// Byte positions of the hyphens in the text form (8-4-4-4-12 hex digits).
const HYPHENS_AT: [usize; 4] = [8, 13, 18, 23];
const TEXT_BYTES: usize = 36;

impl TopicId {
    /// `Uuid.ZERO_UUID`: no topic id.
    pub const ZERO: TopicId = TopicId([0; 16]);
    /// `Uuid.METADATA_TOPIC_ID`: the id of the metadata log itself.
    pub const METADATA: TopicId = TopicId([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

    /// Whether Kafka reserves this id (`Uuid.RESERVED`): a topic may not have it.
    pub fn is_reserved(self) -> bool {
        self == TopicId::ZERO || self == TopicId::METADATA
    }

    /// Parses the hyphenated form; `None` for anything else.
    pub fn parse(text: &str) -> Option<TopicId> {
        let text = text.as_bytes();
        if text.len() != TEXT_BYTES {
            return None;
        }
        let mut bytes = [0u8; 16];
        let mut nibbles = 0usize;
        for (at, &c) in text.iter().enumerate() {
            if HYPHENS_AT.contains(&at) {
                if c != b'-' {
                    return None;
                }
                continue;
            }
            let nibble = (c as char).to_digit(16)? as u8;
            bytes[nibbles / 2] |= if nibbles.is_multiple_of(2) { nibble << 4 } else { nibble };
            nibbles += 1;
        }
        assert_eq!(nibbles, 32);
        Some(TopicId(bytes))
    }
}

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (at, byte) in self.0.iter().enumerate() {
            if matches!(at, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_matches_the_uuid_layout() {
        let id =
            TopicId([0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x0f, 0xed, 0xcb, 0xa9, 0x87, 0x65, 0x43, 0x21]);
        let text = id.to_string();
        assert_eq!(text, "12345678-9abc-def0-0fed-cba987654321");
        assert_eq!(TopicId::parse(&text), Some(id));
        assert_eq!(TopicId::parse(&text.to_uppercase()), Some(id));
    }

    #[test]
    fn parse_refuses_every_other_shape() {
        for bad in [
            "",
            "12345678-9abc-def0-0fed-cba98765432",
            "12345678-9abc-def0-0fed-cba9876543210",
            "123456789abcdef00fedcba987654321",
            "12345678_9abc-def0-0fed-cba987654321",
            "1234567g-9abc-def0-0fed-cba987654321",
            "+2345678-9abc-def0-0fed-cba987654321",
            "12345678-9abc-def0-0fed-cba98765432é",
        ] {
            assert_eq!(TopicId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn kafka_reserves_zero_and_the_metadata_topic_id() {
        assert!(TopicId::ZERO.is_reserved());
        assert!(TopicId::METADATA.is_reserved());
        assert_eq!(TopicId::METADATA.to_string(), "00000000-0000-0000-0000-000000000001");
        assert!(!TopicId([2; 16]).is_reserved());
    }
}
