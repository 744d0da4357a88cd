//! Walking the whole stream and checking every link of every aggregate's chain.

use std::collections::{BTreeMap, HashMap};

use async_nats::jetstream::stream;
use uuid::Uuid;

use crate::chain::verify_link;
use crate::{StoreError, StreamReader, decode_commit};

/// The first broken link: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub sequence: u64,
    pub aggregate: String,
    pub reason: String,
}

/// What a walk found: counts, every chain's head, and the first broken link if any.
#[derive(Debug, Clone, Default)]
pub struct Verification {
    pub commits: u64,
    pub events: u64,
    /// `aggregate type/id` → hash of its last event.
    pub heads: BTreeMap<String, String>,
    /// Event id → hash, to check copies of the events (the audit table) against.
    pub event_hashes: HashMap<Uuid, String>,
    /// The last stream sequence checked.
    pub last_sequence: u64,
    /// (commit sequence, events up to and including it), for counting copies that stop earlier.
    cumulative: Vec<(u64, u64)>,
    pub broken: Option<Broken>,
}

impl Verification {
    /// How many events the stream holds up to and including `sequence`.
    pub fn events_up_to(&self, sequence: u64) -> u64 {
        let index = self.cumulative.partition_point(|(s, _)| *s <= sequence);
        index.checked_sub(1).map_or(0, |i| self.cumulative[i].1)
    }
}

/// Reads the stream from its first message to its last (as of the start) and verifies every
/// event's hash and link. Stops at the first broken link.
pub async fn verify_stream(stream: &stream::Stream) -> Result<Verification, StoreError> {
    verify_stream_reporting(stream, |_, _| {}).await
}

/// [`verify_stream`], telling `progress` the sequence of every commit checked and the last
/// sequence the walk goes to: a long walk can show how far it has got.
pub async fn verify_stream_reporting(
    stream: &stream::Stream,
    mut progress: impl FnMut(u64, u64),
) -> Result<Verification, StoreError> {
    let head = stream
        .get_info()
        .await
        .map_err(StoreError::unavailable)?
        .state
        .last_sequence;
    let mut verification = Verification::default();
    if head == 0 {
        return Ok(verification);
    }
    let mut reader = StreamReader::open(stream, 1).await?;
    loop {
        let message = reader.next().await?;
        let sequence = message
            .info()
            .map_err(StoreError::unavailable)?
            .stream_sequence;
        let commit = match decode_commit(sequence, &message.payload) {
            Ok(commit) => commit,
            Err(e) => {
                verification.broken = Some(Broken {
                    sequence,
                    aggregate: message.subject.to_string(),
                    reason: e.to_string(),
                });
                return Ok(verification);
            }
        };
        for event in &commit.events {
            let aggregate = format!("{}/{}", event.aggregatetype, event.aggregateid);
            let previous = verification
                .heads
                .get(&aggregate)
                .cloned()
                .unwrap_or_default();
            match verify_link(&previous, std::slice::from_ref(event)) {
                Ok(head) => {
                    verification.event_hashes.insert(event.id, head.clone());
                    verification.heads.insert(aggregate, head);
                    verification.events += 1;
                }
                Err(e) => {
                    verification.broken = Some(Broken {
                        sequence,
                        aggregate,
                        reason: e.to_string(),
                    });
                    return Ok(verification);
                }
            }
        }
        verification.commits += 1;
        verification.last_sequence = sequence;
        verification
            .cumulative
            .push((sequence, verification.events));
        progress(sequence, head);
        if sequence >= head {
            break;
        }
    }
    Ok(verification)
}
