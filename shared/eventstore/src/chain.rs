//! The hash chain that makes stored history tamper-evident.
//!
//! Every event carries `hash`, a SHA-256 over its canonical envelope (which includes
//! `prevhash`), and `prevhash`, the hash of the previous event of the same aggregate (empty for
//! an aggregate's first event). One chain per aggregate: altering, dropping or inserting an event
//! anywhere breaks the link after it, and the chain heads of all aggregates fold into a digest
//! that is itself recorded as an event.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::envelope::{CloudEvent, Commit};

/// RFC 8785-style canonical JSON: object keys sorted at every level, no whitespace. Independent
/// of serde_json's `preserve_order` feature, so any consumer can reproduce it.
pub fn canonical_json(value: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    // Only serde_json's own output and ASCII punctuation were written.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Writes `value` canonically into `out`: keys and scalars straight through serde_json's compact
/// writer (the bytes `Value`'s `Display` produces), without a `String` per key or scalar.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => write_object(map, None, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_json(scalar, out),
    }
}

/// An object with its keys sorted, `except` left out.
fn write_object(map: &serde_json::Map<String, Value>, except: Option<&str>, out: &mut Vec<u8>) {
    let mut entries: Vec<(&String, &Value)> = map
        .iter()
        .filter(|(key, _)| Some(key.as_str()) != except)
        .collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json(key.as_str(), out);
        out.push(b':');
        write_canonical(value, out);
    }
    out.push(b'}');
}

/// A string, a scalar, a UUID or an instant as compact JSON — what `serde_json::to_value` followed
/// by `Value`'s `Display` would write.
fn write_json<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail, and these types always serialise (strings, numbers,
    // booleans, null; UUIDs and instants as strings).
    if let Err(e) = serde_json::to_writer(&mut *out, value) {
        unreachable!("serialising a JSON scalar into memory failed: {e}");
    }
}

/// An instant as chrono's `Serialize` writes it — RFC 3339 in UTC with `Z`, the fraction of a
/// second in 0, 3, 6 or 9 digits, as few as hold it — but without going through serde_json's
/// `collect_str`, which ran the string escaping over each of the dozen fragments chrono's
/// formatter writes: half the time of writing the canonical form in a profile of the projector's
/// catch-up, paid for every event on the command side and again in the projector. Years outside
/// 0–9999 and leap seconds, which chrono writes differently, go through chrono itself.
fn write_instant(at: &DateTime<Utc>, out: &mut Vec<u8>) {
    let nanos = at.nanosecond();
    let year = match u32::try_from(at.year()) {
        Ok(year) if year <= 9999 && nanos < 1_000_000_000 => year,
        _ => return write_json(at, out),
    };
    out.push(b'"');
    push_digits(year, 4, out);
    for (separator, value) in [
        (b'-', at.month()),
        (b'-', at.day()),
        (b'T', at.hour()),
        (b':', at.minute()),
        (b':', at.second()),
    ] {
        out.push(separator);
        push_digits(value, 2, out);
    }
    let fraction = match nanos {
        0 => None,
        n if n % 1_000_000 == 0 => Some((n / 1_000_000, 3)),
        n if n % 1_000 == 0 => Some((n / 1_000, 6)),
        n => Some((n, 9)),
    };
    if let Some((value, width)) = fraction {
        out.push(b'.');
        push_digits(value, width, out);
    }
    out.extend_from_slice(b"Z\"");
}

/// `value` in decimal, zero-padded to `width` digits (it has no more).
fn push_digits(value: u32, width: u32, out: &mut Vec<u8>) {
    for place in (0..width).rev() {
        // A digit: below 10, so the cast keeps it whole.
        out.push(b'0' + (value / 10u32.pow(place) % 10) as u8);
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The hash an event must carry: over its envelope without the `hash` attribute itself.
pub fn event_hash(event: &CloudEvent) -> String {
    let mut buffer = Vec::with_capacity(1024);
    event_hash_with(event, &mut buffer)
}

/// [`event_hash`] with `buffer` (cleared first) holding the canonical JSON, so that a commit's
/// events share one allocation.
fn event_hash_with(event: &CloudEvent, buffer: &mut Vec<u8>) -> String {
    buffer.clear();
    write_canonical_envelope(event, buffer);
    hex(&Sha256::digest(buffer.as_slice()))
}

/// The canonical JSON of `event` without `hash`, written from its fields directly instead of
/// through a `serde_json::Value` of the whole envelope (the attribute names below are in sorted
/// order; only `data` is a JSON tree to sort). The same bytes as [`canonical_json`] of its
/// serialised form with `hash` removed, which [`envelope_hash`] computes and a test compares.
fn write_canonical_envelope(event: &CloudEvent, out: &mut Vec<u8>) {
    write_attributes(event, Attribute::Hash, out);
}

/// Every attribute of `event` but `data`, as one JSON object (in the canonical form): how the
/// audit table stores the envelope beside its payload, written without building the envelope as
/// a JSON tree first.
pub fn write_envelope_without_data(event: &CloudEvent, out: &mut Vec<u8>) {
    write_attributes(event, Attribute::Data, out);
}

/// The one attribute [`write_attributes`] leaves out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Attribute {
    Data,
    Hash,
}

/// The attributes of `event` but `except`, keys in sorted order, `data` canonical.
fn write_attributes(event: &CloudEvent, except: Attribute, out: &mut Vec<u8>) {
    // Destructured without `..`: a new attribute does not compile until it is placed here.
    let CloudEvent {
        specversion,
        id,
        source,
        event_type,
        subject,
        time,
        datacontenttype,
        data,
        aggregatetype,
        aggregateid,
        effectivetime,
        actoruser,
        actorunit,
        actorrole,
        correlationid,
        causationid,
        commandid,
        commandname,
        prevhash,
        hash,
    } = event;
    let mut first = true;
    // The names are plain ASCII: written as they are, not through the JSON string escaping.
    let mut attribute = |name: &str, out: &mut Vec<u8>| {
        out.push(if first { b'{' } else { b',' });
        first = false;
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
    };
    attribute("actorrole", out);
    write_json(actorrole, out);
    // Skipped when absent, as its serde attribute says.
    if let Some(actorunit) = actorunit {
        attribute("actorunit", out);
        write_json(actorunit, out);
    }
    attribute("actoruser", out);
    write_json(actoruser, out);
    attribute("aggregateid", out);
    write_json(aggregateid, out);
    attribute("aggregatetype", out);
    write_json(aggregatetype, out);
    attribute("causationid", out);
    write_json(causationid, out);
    attribute("commandid", out);
    write_json(commandid, out);
    attribute("commandname", out);
    write_json(commandname, out);
    attribute("correlationid", out);
    write_json(correlationid, out);
    if except != Attribute::Data {
        attribute("data", out);
        write_canonical(data, out);
    }
    attribute("datacontenttype", out);
    write_json(datacontenttype, out);
    attribute("effectivetime", out);
    write_instant(effectivetime, out);
    if except != Attribute::Hash {
        attribute("hash", out);
        write_json(hash, out);
    }
    attribute("id", out);
    write_json(id, out);
    attribute("prevhash", out);
    write_json(prevhash, out);
    attribute("source", out);
    write_json(source, out);
    attribute("specversion", out);
    write_json(specversion, out);
    attribute("subject", out);
    write_json(subject, out);
    attribute("time", out);
    write_instant(time, out);
    attribute("type", out);
    write_json(event_type, out);
    out.push(b'}');
}

/// [`event_hash`] of an envelope held as JSON (as the audit table stores it).
pub fn envelope_hash(envelope: &Value) -> String {
    let mut out = Vec::with_capacity(1024);
    match envelope {
        // Left out while writing rather than removed from a copy.
        Value::Object(map) => write_object(map, Some("hash"), &mut out),
        other => write_canonical(other, &mut out),
    }
    hex(&Sha256::digest(&out))
}

/// Links `events` (one commit, in order) onto the aggregate's chain whose head is `head`, and
/// returns the new head.
pub fn seal(head: &str, events: &mut [CloudEvent]) -> String {
    let mut buffer = Vec::with_capacity(1024);
    let mut previous = head.to_owned();
    for event in events.iter_mut() {
        event.prevhash = previous;
        event.hash = event_hash_with(event, &mut buffer);
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
        check_link(&previous, event, || event.hash == event_hash(event))?;
        previous = event.hash.clone();
    }
    Ok(previous)
}

/// The checks of one event against the head `previous` of its aggregate's chain, in the order
/// they are reported: the link first, then (asked only when the link holds) whether its hash
/// matches its content.
fn check_link(
    previous: &str,
    event: &CloudEvent,
    content_matches: impl FnOnce() -> bool,
) -> Result<(), ChainError> {
    let aggregate = || format!("{}/{}", event.aggregatetype, event.aggregateid);
    if event.prevhash != previous {
        return Err(ChainError::BrokenLink {
            aggregate: aggregate(),
            event_id: event.id.to_string(),
        });
    }
    if !content_matches() {
        return Err(ChainError::AlteredContent {
            aggregate: aggregate(),
            event_id: event.id.to_string(),
        });
    }
    Ok(())
}

/// A commit whose events' hashes were each computed over their content once, when it was
/// decoded. Hashing is the costly half of checking a chain, and every projection receives the
/// same message: each then checks only the links, against its own chain heads
/// ([`HashedCommit::link`]), and reports a break exactly as [`verify_link`] would.
#[derive(Debug, Clone)]
pub struct HashedCommit {
    commit: Commit,
    /// The first event whose `hash` does not match its content. The events after it are never
    /// checked: a chain check stops at the first break.
    altered: Option<usize>,
}

impl HashedCommit {
    pub fn new(commit: Commit) -> Self {
        let mut buffer = Vec::with_capacity(1024);
        let altered = commit
            .events
            .iter()
            .position(|event| event.hash != event_hash_with(event, &mut buffer));
        Self { commit, altered }
    }

    /// Checks the commit's event at `index` against `previous`, the head of its aggregate's
    /// chain (what [`verify_link`] checks for it); its own hash is the new head.
    pub fn link(&self, index: usize, previous: &str) -> Result<(), ChainError> {
        let event = &self.commit.events[index];
        check_link(previous, event, || self.altered != Some(index))
    }
}

impl std::ops::Deref for HashedCommit {
    type Target = Commit;

    fn deref(&self) -> &Commit {
        &self.commit
    }
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
    use proptest::strategy::Strategy as _;
    use serde_json::json;

    /// The instant as chrono's own `Serialize` writes it, which is what the hashes of every
    /// stored event were computed over.
    fn chrono_written(at: &DateTime<Utc>) -> String {
        serde_json::to_string(at).expect("an instant serialises")
    }

    fn instant_written(at: &DateTime<Utc>) -> String {
        let mut out = Vec::new();
        write_instant(at, &mut out);
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn an_instant_is_written_as_chrono_serialises_it_at_the_edges() {
        let at = |secs: i64, nanos: u32| DateTime::from_timestamp(secs, nanos).expect("in range");
        let cases = [
            at(0, 0),
            at(1_751_271_300, 0),
            at(1_751_271_300, 123_000_000),
            at(1_751_271_300, 123_456_000),
            at(1_751_271_300, 123_456_789),
            at(1_751_271_300, 1),
            at(1_751_271_300, 1_000),
            at(1_751_271_300, 999_999_999),
            // A leap second: chrono writes second 60.
            at(1_751_327_999, 1_500_000_000),
            // The first and last instants of years 0 and 9999, and past them on both sides.
            at(-62_167_219_200, 0),
            at(-62_167_219_201, 5_000_000),
            at(253_402_300_799, 999_000_000),
            at(253_402_300_800, 0),
        ];
        for case in cases {
            assert_eq!(instant_written(&case), chrono_written(&case), "{case:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn an_instant_is_written_as_chrono_serialises_it(
            secs in -70_000_000_000i64..260_000_000_000,
            nanos in proptest::prop_oneof![
                proptest::strategy::Just(0u32),
                (0u32..1_000).prop_map(|ms| ms * 1_000_000),
                (0u32..1_000_000).prop_map(|us| us * 1_000),
                0u32..2_000_000_000,
            ],
        ) {
            if let Some(at) = DateTime::from_timestamp(secs, nanos) {
                proptest::prop_assert_eq!(instant_written(&at), chrono_written(&at));
            }
        }
    }

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
            DateTime::parse_from_rfc3339(s)
                .expect("instant")
                .with_timezone(&Utc)
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
            commandid: uuid::Uuid::parse_str("0193a6e2-4c1d-7a3b-8f00-cba987654321").expect("uuid"),
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

    /// The envelope written from its fields is what the generic path makes of its JSON (as the
    /// audit table holds it), with and without the optional attribute.
    #[test]
    fn an_envelope_hashes_as_its_json_does() {
        let mut event = fixed_envelope();
        for actorunit in [Some("so-tai-chinh".to_owned()), None] {
            event.actorunit = actorunit;
            let json = serde_json::to_value(&event).expect("envelope");
            assert_eq!(event_hash(&event), envelope_hash(&json));
            let mut written = Vec::new();
            write_canonical_envelope(&event, &mut written);
            let mut without_hash = json.clone();
            if let Value::Object(map) = &mut without_hash {
                map.remove("hash");
            }
            assert_eq!(
                String::from_utf8(written).expect("utf-8"),
                canonical_json(&without_hash)
            );
        }
    }

    /// The audit table's envelope is the serialised event without its `data`, `hash` included.
    #[test]
    fn the_envelope_without_data_is_the_json_without_data() {
        let mut event = fixed_envelope();
        for actorunit in [Some("so-tai-chinh".to_owned()), None] {
            event.actorunit = actorunit;
            let mut json = serde_json::to_value(&event).expect("envelope");
            if let Value::Object(map) = &mut json {
                map.remove("data");
            }
            let mut written = Vec::new();
            write_envelope_without_data(&event, &mut written);
            assert_eq!(
                String::from_utf8(written).expect("utf-8"),
                canonical_json(&json)
            );
        }
    }

    #[test]
    fn seal_links_each_event_to_the_one_before() {
        let mut events = vec![fixed_envelope(), fixed_envelope()];
        let head = seal("", &mut events);
        assert_eq!(events[0].prevhash, "");
        assert_eq!(events[1].prevhash, events[0].hash);
        assert_eq!(head, events[1].hash);
        assert_eq!(verify_link("", &events), Ok(head));
    }

    /// Whatever is wrong with a commit, checking its links after hashing it once reports what
    /// checking it whole reports: the same break at the same event, or the same head.
    #[test]
    fn a_hashed_commit_reports_what_verify_link_reports() {
        let mut sealed = vec![fixed_envelope(), fixed_envelope(), fixed_envelope()];
        seal("", &mut sealed);
        let altered_data =
            |e: &mut CloudEvent| e.data = serde_json::json!({"due_on": "2026-01-01"});
        let relinked = |e: &mut CloudEvent| e.prevhash = "cd".repeat(32);
        let rehashed = |e: &mut CloudEvent| e.hash = "ef".repeat(32);
        // What is changed, at which event of the commit.
        type Tampering<'a> = Vec<(usize, &'a dyn Fn(&mut CloudEvent))>;
        let cases: Vec<Tampering> = vec![
            vec![],
            vec![(1, &altered_data)],
            vec![(1, &relinked)],
            vec![(2, &rehashed)],
            vec![(0, &altered_data), (2, &relinked)],
            vec![(1, &relinked), (1, &altered_data)],
        ];
        for (case, changes) in cases.iter().enumerate() {
            let mut events = sealed.clone();
            for (index, change) in changes {
                change(&mut events[*index]);
            }
            let whole = verify_link("", &events);
            let hashed = HashedCommit::new(Commit {
                sequence: 1,
                events: events.clone(),
            });
            let mut previous = String::new();
            let linked = events
                .iter()
                .enumerate()
                .try_for_each(|(index, event)| {
                    hashed.link(index, &previous)?;
                    previous = event.hash.clone();
                    Ok(())
                })
                .map(|()| previous.clone());
            assert_eq!(linked, whole, "case {case}");
            assert_eq!(whole.is_ok(), changes.is_empty(), "case {case}");
        }
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
