//! Walking the whole stream and checking every link of every aggregate's chain.
//!
//! A message that breaks the record stops the walk — unless an auditor set it aside with a
//! quarantine decision that holds ([`crate::quarantine`]): the walk then lists it as a known,
//! signed-off break, leaves it out of every chain and count, and goes on.

use std::collections::{BTreeMap, HashMap};

use async_nats::jetstream::stream;
use uuid::Uuid;

use crate::chain::verify_link;
use crate::quarantine::{NotSignedOff, SignedOff, StoredMessage, signed_off, utc};
use crate::{StoreError, StreamReader, decode_commit};

/// The first broken link: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub sequence: u64,
    pub aggregate: String,
    pub reason: String,
}

/// A break the walk met and found signed off: what is wrong, and the decision setting it aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedOffBreak {
    pub broken: Broken,
    pub decision: SignedOff,
}

/// What a walk found: counts, every chain's head, the breaks signed off, and the first broken
/// link that is not, if any.
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
    /// Messages set aside by quarantine decisions, in stream order; in no count and no chain.
    pub quarantined: Vec<SignedOffBreak>,
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
/// event's hash and link. Stops at the first broken link that is not signed off.
pub async fn verify_stream(stream: &stream::Stream) -> Result<Verification, StoreError> {
    verify_stream_reporting(stream, |_, _| {}).await
}

/// [`verify_stream`], telling `progress` the sequence of every commit checked and the last
/// sequence the walk goes to: a long walk can show how far it has got.
pub async fn verify_stream_reporting(
    stream: &stream::Stream,
    progress: impl FnMut(u64, u64),
) -> Result<Verification, StoreError> {
    verify_stream_until(stream, u64::MAX, progress).await
}

/// [`verify_stream_reporting`] up to stream sequence `until` (or the stream's last, if lower).
pub async fn verify_stream_until(
    stream: &stream::Stream,
    until: u64,
    mut progress: impl FnMut(u64, u64),
) -> Result<Verification, StoreError> {
    let head = stream
        .get_info()
        .await
        .map_err(StoreError::unavailable)?
        .state
        .last_sequence
        .min(until);
    let mut verification = Verification::default();
    if head == 0 {
        return Ok(verification);
    }
    let mut reader = StreamReader::open(stream, 1).await?;
    loop {
        let message = reader.next().await?;
        let info = message.info().map_err(StoreError::unavailable)?;
        let (sequence, published) = (info.stream_sequence, info.published);
        match link(
            &verification.heads,
            sequence,
            &message.subject,
            &message.payload,
        ) {
            Ok(linked) => {
                verification.events += linked.len() as u64;
                for (aggregate, id, hash) in linked {
                    verification.event_hashes.insert(id, hash.clone());
                    verification.heads.insert(aggregate, hash);
                }
                verification.commits += 1;
                verification
                    .cumulative
                    .push((sequence, verification.events));
            }
            Err(broken) => {
                let stored = StoredMessage {
                    sequence,
                    subject: message.subject.to_string(),
                    payload: message.payload.clone(),
                    stored_at: utc(published),
                };
                match signed_off(stream, &stored).await {
                    Ok(decision) => verification
                        .quarantined
                        .push(SignedOffBreak { broken, decision }),
                    Err(NotSignedOff::Store(e)) => return Err(e),
                    Err(NotSignedOff::NoDecision(_)) => {
                        verification.broken = Some(broken);
                        return Ok(verification);
                    }
                    Err(invalid @ NotSignedOff::Invalid { .. }) => {
                        verification.broken = Some(Broken {
                            reason: format!("{}; {invalid}", broken.reason),
                            ..broken
                        });
                        return Ok(verification);
                    }
                }
            }
        }
        verification.last_sequence = sequence;
        progress(sequence, head);
        if sequence >= head {
            break;
        }
    }
    Ok(verification)
}

/// Checks one message against the chain `heads`: every event's (aggregate, id, hash), or where
/// it breaks (a message that is no commit at all is placed by its subject). Nothing of a broken
/// message counts, so the heads move only once all of it links.
fn link(
    heads: &BTreeMap<String, String>,
    sequence: u64,
    subject: &str,
    payload: &[u8],
) -> Result<Vec<(String, Uuid, String)>, Broken> {
    let commit = decode_commit(sequence, payload).map_err(|e| Broken {
        sequence,
        aggregate: subject.to_owned(),
        reason: e.to_string(),
    })?;
    let mut linked: Vec<(String, Uuid, String)> = Vec::with_capacity(commit.events.len());
    for event in &commit.events {
        let aggregate = format!("{}/{}", event.aggregatetype, event.aggregateid);
        let previous = linked
            .iter()
            .rev()
            .find(|(a, _, _)| *a == aggregate)
            .map(|(_, _, hash)| hash.as_str())
            .or_else(|| heads.get(&aggregate).map(String::as_str))
            .unwrap_or_default();
        let hash = verify_link(previous, std::slice::from_ref(event)).map_err(|e| Broken {
            sequence,
            aggregate: aggregate.clone(),
            reason: e.to_string(),
        })?;
        linked.push((aggregate, event.id, hash));
    }
    Ok(linked)
}
