//! The hash chain that makes stored history tamper-evident.
//!
//! Every event carries `hash`, a SHA-256 over its canonical envelope (which includes
//! `prevhash`), and `prevhash`, the hash of the previous event of the same aggregate (empty for
//! an aggregate's first event). One chain per aggregate: altering, dropping or inserting an event
//! anywhere breaks the link after it, and the chain heads of all aggregates fold into a digest
//! that is itself recorded as an event.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::envelope::CloudEvent;

/// RFC 8785-style canonical JSON: object keys sorted at every level, no whitespace. Independent
/// of serde_json's `preserve_order` feature, so any consumer can reproduce it.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash an event must carry: over its envelope without the `hash` attribute itself.
pub fn event_hash(event: &CloudEvent) -> String {
    envelope_hash(&serde_json::to_value(event).expect("envelopes always serialise"))
}

/// [`event_hash`] of an envelope held as JSON (as the audit table stores it).
pub fn envelope_hash(envelope: &Value) -> String {
    let mut envelope = envelope.clone();
    if let Value::Object(map) = &mut envelope {
        map.remove("hash");
    }
    hex(&Sha256::digest(canonical_json(&envelope).as_bytes()))
}

/// Links `events` (one commit, in order) onto the aggregate's chain whose head is `head`, and
/// returns the new head.
pub fn seal(head: &str, events: &mut [CloudEvent]) -> String {
    let mut previous = head.to_owned();
    for event in events.iter_mut() {
        event.prevhash = previous;
        event.hash = event_hash(event);
        previous = event.hash.clone();
    }
    previous
}

/// A broken link found while checking a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("event {event_id} of {aggregate}: prevhash does not match the previous event's hash")]
    BrokenLink { aggregate: String, event_id: String },
    #[error("event {event_id} of {aggregate}: hash does not match its content")]
    AlteredContent { aggregate: String, event_id: String },
}

/// Checks `events` (one commit) against the aggregate's chain `head`; returns the new head.
pub fn verify_link(head: &str, events: &[CloudEvent]) -> Result<String, ChainError> {
    let mut previous = head.to_owned();
    for event in events {
        let aggregate = format!("{}/{}", event.aggregatetype, event.aggregateid);
        if event.prevhash != previous {
            return Err(ChainError::BrokenLink {
                aggregate,
                event_id: event.id.to_string(),
            });
        }
        if event.hash != event_hash(event) {
            return Err(ChainError::AlteredContent {
                aggregate,
                event_id: event.id.to_string(),
            });
        }
        previous = event.hash.clone();
    }
    Ok(previous)
}

/// One digest over all chain heads (`aggregate → head`, in any order): a SHA-256 over the sorted
/// `aggregate=head` lines.
pub fn digest<'a>(heads: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut lines: Vec<String> = heads
        .into_iter()
        .map(|(a, h)| format!("{a}={h}\n"))
        .collect();
    lines.sort();
    let mut hasher = Sha256::new();
    for line in lines {
        hasher.update(line.as_bytes());
    }
    hex(&hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let value = json!({ "b": 1, "a": { "d": [2, { "z": null, "y": "ạ" }], "c": true } });
        assert_eq!(
            canonical_json(&value),
            r#"{"a":{"c":true,"d":[2,{"y":"ạ","z":null}]},"b":1}"#
        );
    }

    /// An envelope with every kind of value the canonical form must get right: nested data,
    /// non-ASCII text, characters JSON escapes, numbers, null, an optional attribute.
    fn fixed_envelope() -> CloudEvent {
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .expect("instant")
                .with_timezone(&chrono::Utc)
        };
        CloudEvent {
            specversion: "1.0".to_owned(),
            id: uuid::Uuid::parse_str("0193a6e2-4c1d-7a3b-8f00-123456789abc").expect("uuid"),
            source: crate::envelope::SOURCE.to_owned(),
            event_type: "vn.gov.thanhhoa.remediation.item.deadline-set.v1".to_owned(),
            subject: "item/kh-63-2025-01".to_owned(),
            time: at("2025-06-30T08:15:00.123456Z"),
            datacontenttype: "application/json".to_owned(),
            data: json!({
                "item_id": "kh-63-2025-01",
                "due_on": "2025-11-30",
                "reason": "Sở Tài chính đề nghị \"gia hạn\"\n\tlần 2 / ½",
                "nested": { "z": [1, 2.5, -3, null, true], "a": {} },
                "empty": [],
            }),
            aggregatetype: "item".to_owned(),
            aggregateid: "kh-63-2025-01".to_owned(),
            effectivetime: at("2025-06-29T00:00:00Z"),
            actoruser: "stc".to_owned(),
            actorunit: Some("so-tai-chinh".to_owned()),
            actorrole: "department_of_finance".to_owned(),
            correlationid: "corr-1".to_owned(),
            causationid: "cause-1".to_owned(),
            commandid: uuid::Uuid::parse_str("0193a6e2-4c1d-7a3b-8f00-cba987654321")
                .expect("uuid"),
            commandname: "set-item-deadline".to_owned(),
            prevhash: "ab".repeat(32),
            hash: "not part of the hash".to_owned(),
        }
    }

    /// The digest of a fixed envelope never changes: stored chains must keep verifying.
    #[test]
    fn the_hash_of_a_fixed_envelope_is_fixed() {
        let event = fixed_envelope();
        assert_eq!(
            event_hash(&event),
            "5bd3a9249c1b09f3370a0c412ce622f0b503aa0b96aae0f94a05149a2a10bb61"
        );
    }

    #[test]
    fn digest_ignores_order() {
        assert_eq!(
            digest([("item/a", "1"), ("unit/b", "2")]),
            digest([("unit/b", "2"), ("item/a", "1")])
        );
        assert_ne!(digest([("item/a", "1")]), digest([("item/a", "2")]));
    }
}
