//! The one thing the coordinator reads inside a consumer's protocol metadata: the topics it
//! subscribes to (Kafka's `ConsumerProtocolSubscription`: version i16, then an array of
//! topic names, i32 count and i16-length strings; later fields are not read). OffsetDelete
//! refuses to delete the offsets of a topic a live member subscribes to
//! (GROUP_SUBSCRIBED_TO_TOPIC, KIP-496).

/// Topics one subscription lists at most when read (bounds a corrupt count).
const SUBSCRIBED_TOPICS_MAX: usize = 100_000;

/// The subscribed topics, or `None` if the metadata is not a consumer subscription.
pub fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut rest = metadata;
    let mut take = |count: usize| -> Option<&[u8]> {
        if rest.len() < count {
            return None;
        }
        let (head, tail) = rest.split_at(count);
        rest = tail;
        Some(head)
    };
    let _version = i16::from_be_bytes(take(2)?.try_into().ok()?);
    let count = i32::from_be_bytes(take(4)?.try_into().ok()?);
    if count < 0 || count as usize > SUBSCRIBED_TOPICS_MAX {
        return None;
    }
    let mut topics = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let length = i16::from_be_bytes(take(2)?.try_into().ok()?);
        if length < 0 {
            return None;
        }
        topics.push(std::str::from_utf8(take(length as usize)?).ok()?.to_owned());
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_topics_and_refuses_garbage() {
        let mut metadata = vec![0, 1, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c'];
        metadata.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // user data: null
        assert_eq!(subscribed_topics(&metadata), Some(vec!["a".to_owned(), "bc".to_owned()]));
        assert_eq!(subscribed_topics(&metadata[..8]), None);
        assert_eq!(subscribed_topics(&[0, 0, 0xff, 0xff, 0xff, 0xff]), None);
    }
}
