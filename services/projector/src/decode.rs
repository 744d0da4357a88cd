//! Decoding a delivered message, and hashing its events, once for every projection.
//!
//! Each projection reads the stream through its own consumer, so every message reaches the
//! projector once per projection. Decoding it and hashing each event's content (the costly half
//! of checking the hash chain) do not depend on the projection: the first worker to get a message
//! keeps the result here, and the others take it instead of doing the work again. Each still
//! checks the links against its own chain heads, inside its own batch's transaction.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use event_store::{HashedCommit, StoreError, decode_commit};
use prometheus_client::metrics::counter::Counter;
use readmodel::Projection;

use crate::batch::Delivered;

/// Recently decoded commits, by stream sequence, shared by the projections of one process.
///
/// A commit is kept until every projection has taken it, or until more than `capacity` are kept
/// (the oldest go first: a projection far behind the others decodes for itself, as it would
/// alone). One is handed out only for the very payload it was decoded from, so a message that
/// differs from the one decoded before under its sequence (another stream, a restored one) is
/// decoded afresh. A projection that asks for a message the other is decoding at that moment
/// waits for it (microseconds) rather than decoding it too.
#[derive(Debug)]
pub struct Decoder {
    kept: Mutex<BTreeMap<u64, Kept>>,
    capacity: usize,
    decoded: Counter,
    taken: Counter,
}

/// A commit decoded once: `None` when its payload did not decode (each projection then decodes
/// it itself, for its own error).
type Once = Arc<OnceLock<Option<Arc<HashedCommit>>>>;

#[derive(Debug)]
struct Kept {
    payload: Bytes,
    commit: Once,
    /// The projections that took it, one bit each.
    taken_by: u8,
}

/// One bit per projection.
fn bit(projection: Projection) -> u8 {
    1 << Projection::ALL
        .iter()
        .position(|p| *p == projection)
        .unwrap_or_default()
}

/// Every projection's bit.
fn all_bits() -> u8 {
    Projection::ALL.into_iter().fold(0, |bits, p| bits | bit(p))
}

impl Decoder {
    /// Keeps at most `capacity` commits that not every projection has taken yet (0: none).
    pub fn new(capacity: usize) -> Self {
        Self {
            kept: Mutex::new(BTreeMap::new()),
            capacity,
            decoded: Counter::default(),
            taken: Counter::default(),
        }
    }

    /// The commit `message` holds, decoded and hashed, for `projection`.
    pub fn decode(
        &self,
        projection: Projection,
        message: &Delivered,
    ) -> Result<Arc<HashedCommit>, StoreError> {
        let (once, kept_before) = self.entry(projection, message);
        let mut failed = None;
        // Decoded outside the map's lock: only a projection asking for this very message waits.
        let commit = once.get_or_init(|| {
            self.decoded.inc();
            decode_commit(message.sequence, &message.payload)
                .map(|commit| Arc::new(HashedCommit::new(commit)))
                .map_err(|e| failed = Some(e))
                .ok()
        });
        match (commit, failed) {
            (Some(commit), _) => {
                if kept_before {
                    self.taken.inc();
                }
                Ok(Arc::clone(commit))
            }
            (None, Some(error)) => Err(error),
            // Another projection found it undecodable; decoded again for this one's own error.
            (None, None) => decode_commit(message.sequence, &message.payload)
                .map(|commit| Arc::new(HashedCommit::new(commit))),
        }
    }

    /// The kept entry for `message`'s sequence and payload, marked taken by `projection` (and
    /// dropped once every projection has taken it), or a new one; with whether it was kept.
    fn entry(&self, projection: Projection, message: &Delivered) -> (Once, bool) {
        let mut kept = self.lock();
        if let Some(entry) = kept.get_mut(&message.sequence)
            && entry.payload == message.payload
        {
            entry.taken_by |= bit(projection);
            let once = Arc::clone(&entry.commit);
            if entry.taken_by == all_bits() {
                kept.remove(&message.sequence);
            }
            return (once, true);
        }
        let once = Once::default();
        kept.insert(
            message.sequence,
            Kept {
                // A copy of its own: the delivered payload is a slice of the connection's read
                // buffer, which it would keep whole.
                payload: Bytes::copy_from_slice(&message.payload),
                commit: Arc::clone(&once),
                taken_by: bit(projection),
            },
        );
        while kept.len() > self.capacity {
            kept.pop_first();
        }
        (once, false)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Kept>> {
        // The map stays consistent whatever panicked while holding it: every change is one
        // insert or remove.
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts the messages decoded (and their events hashed), and the commits handed out kept
    /// instead of decoded again: the metrics' own counters, so they count from here on.
    pub fn counters(&self) -> (Counter, Counter) {
        (self.decoded.clone(), self.taken.clone())
    }

    /// How many commits are kept.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(sequence: u64, note: &str) -> Delivered {
        let mut events = vec![test_event(note)];
        event_store::seal("", &mut events);
        Delivered {
            sequence,
            payload: serde_json::to_vec(&events).expect("json").into(),
        }
    }

    fn test_event(note: &str) -> event_store::CloudEvent {
        serde_json::from_value(serde_json::json!({
            "specversion": "1.0",
            "id": uuid::Uuid::now_v7(),
            "source": "test",
            "type": "vn.gov.thanhhoa.remediation.unit.registered.v1",
            "subject": "unit/so-y-te",
            "time": "2025-04-08T00:00:00Z",
            "datacontenttype": "application/json",
            "data": { "note": note },
            "aggregatetype": "unit",
            "aggregateid": "so-y-te",
            "effectivetime": "2025-04-08T00:00:00Z",
            "actoruser": "test",
            "actorunit": null,
            "actorrole": "province_office",
            "correlationid": "c",
            "causationid": "c",
            "commandid": uuid::Uuid::now_v7(),
            "commandname": "test",
            "prevhash": "",
            "hash": ""
        }))
        .expect("envelope")
    }

    /// The second projection gets the very commit the first decoded, and nothing stays kept;
    /// the same projection asking again (a retried batch) does not count as another.
    #[test]
    fn a_commit_is_decoded_once_for_both_projections_then_dropped() {
        let decoder = Decoder::new(10);
        let delivered = message(7, "một");
        let first = decoder
            .decode(Projection::Core, &delivered)
            .expect("decodes");
        let again = decoder
            .decode(Projection::Core, &delivered)
            .expect("decodes");
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(decoder.kept(), 1);
        let other = decoder
            .decode(Projection::Audit, &delivered)
            .expect("decodes");
        assert!(Arc::ptr_eq(&first, &other));
        assert_eq!(decoder.kept(), 0);
    }

    /// Another payload under a kept sequence is decoded from its own bytes.
    #[test]
    fn a_different_payload_under_the_same_sequence_is_decoded_afresh() {
        let decoder = Decoder::new(10);
        let first = decoder
            .decode(Projection::Core, &message(7, "một"))
            .expect("decodes");
        let other = decoder
            .decode(Projection::Audit, &message(7, "hai"))
            .expect("decodes");
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(other.events[0].data["note"], "hai");
    }

    /// A payload that does not decode is an error for each projection that asks for it.
    #[test]
    fn an_undecodable_payload_fails_for_every_projection() {
        let decoder = Decoder::new(10);
        let garbage = Delivered {
            sequence: 3,
            payload: Bytes::from_static(b"[{\"not\": \"an envelope\"}]"),
        };
        for projection in Projection::ALL {
            assert!(
                decoder.decode(projection, &garbage).is_err(),
                "{projection:?}"
            );
        }
        assert_eq!(decoder.kept(), 0);
    }

    /// A projection far behind finds nothing kept beyond the capacity: the oldest went first.
    #[test]
    fn no_more_than_the_capacity_is_kept() {
        let decoder = Decoder::new(2);
        let messages: Vec<_> = (1..=3).map(|s| message(s, "ba")).collect();
        let decoded: Vec<_> = messages
            .iter()
            .map(|m| decoder.decode(Projection::Core, m).expect("decodes"))
            .collect();
        assert_eq!(decoder.kept(), 2);
        let late = decoder
            .decode(Projection::Audit, &messages[0])
            .expect("decodes");
        assert!(!Arc::ptr_eq(&late, &decoded[0]));
        let kept = decoder
            .decode(Projection::Audit, &messages[2])
            .expect("decodes");
        assert!(Arc::ptr_eq(&kept, &decoded[2]));
    }
}
