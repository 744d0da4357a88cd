//! Appending commits with optimistic concurrency, and reading one aggregate's subject.

use std::error::Error;

use std::num::NonZeroU64;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, message::PublishMessage, stream};
use remediation_domain::AggregateRef;
use remediation_domain::quarantine::QuarantineId;

use crate::envelope::{BATCH_CONTENT_TYPE, CloudEvent, Commit};
use crate::publisher::Publisher;
use crate::quarantine::{NotSignedOff, SignedOff, StoredMessage, signed_off_on, utc};
use crate::stream::StreamSettings;
use crate::{IdempotencyStore, StoreError};

/// The outcome of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Stream sequence of the commit message.
    pub sequence: u64,
    /// JetStream recognised the `Nats-Msg-Id` within its duplicate window and stored nothing:
    /// `sequence` is that of the first copy.
    pub duplicate: bool,
}

/// The JetStream event store: one stream, a subject per aggregate instance.
#[derive(Debug, Clone)]
pub struct EventStore {
    stream: stream::Stream<()>,
    settings: StreamSettings,
    idempotency: IdempotencyStore,
    publisher: Publisher,
}

impl EventStore {
    /// Opens a provisioned stream and its idempotency bucket.
    pub async fn open(
        js: jetstream::Context,
        settings: StreamSettings,
    ) -> Result<Self, StoreError> {
        let stream = js
            .get_stream_no_info(&settings.name)
            .await
            .map_err(StoreError::unavailable)?;
        let bucket = js
            .get_key_value(&settings.idempotency_bucket)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(Self {
            publisher: Publisher::start(js),
            stream,
            settings,
            idempotency: IdempotencyStore::new(bucket),
        })
    }

    pub fn settings(&self) -> &StreamSettings {
        &self.settings
    }

    pub fn idempotency(&self) -> &IdempotencyStore {
        &self.idempotency
    }

    /// How many times the store has put appends on the NATS connection: fewer than the appends
    /// when appends made at the same moment went out together (see `publisher`).
    pub fn publish_bursts(&self) -> u64 {
        self.publisher.bursts()
    }

    /// `<prefix>.<aggregate type>.<id>`: identifiers are validated to be subject-safe.
    pub fn subject(&self, target: &AggregateRef) -> String {
        format!(
            "{}.{}.{}",
            self.settings.subject_prefix,
            target.kind(),
            target.id()
        )
    }

    /// Whether the stream answers: used by readiness probes.
    pub async fn check(&self) -> Result<u64, StoreError> {
        let info = self
            .stream
            .get_info()
            .await
            .map_err(StoreError::unavailable)?;
        Ok(info.state.last_sequence)
    }

    /// Appends one commit to `target`'s subject if its last stored sequence is still
    /// `expected` (0: no commit yet). `message_id` lets JetStream drop a retried publish.
    pub async fn append(
        &self,
        target: &AggregateRef,
        expected: u64,
        message_id: &str,
        events: &[CloudEvent],
    ) -> Result<Appended, StoreError> {
        let payload =
            serde_json::to_vec(events).map_err(|e| StoreError::Encoding(e.to_string()))?;
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", BATCH_CONTENT_TYPE);
        let publish = PublishMessage::build()
            .payload(payload.into())
            .headers(headers)
            .message_id(message_id)
            .expected_last_subject_sequence(expected);
        let ack = self
            .publisher
            .publish(self.subject(target), publish)
            .await?
            .await
            .map_err(classify_publish_error)?;
        Ok(Appended {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    /// Every commit on `target`'s subject after stream sequence `after`, in order. Reads go to
    /// the stream leader, so a commit acknowledged to anyone is seen.
    pub async fn commits_after(
        &self,
        target: &AggregateRef,
        after: u64,
    ) -> Result<Vec<Commit>, StoreError> {
        self.messages_after(target, after)
            .await?
            .iter()
            .map(|message| decode_commit(message.sequence, &message.payload))
            .collect()
    }

    /// Every message on `target`'s subject after stream sequence `after`, in order, as stored.
    pub async fn messages_after(
        &self,
        target: &AggregateRef,
        after: u64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let subject = self.subject(target);
        let mut messages = Vec::new();
        let mut next = after + 1;
        loop {
            let found = self
                .stream
                .raw_message_builder()
                .sequence(next)
                .next_by_subject(subject.clone())
                .send()
                .await;
            match found {
                Ok(message) => {
                    next = message.sequence + 1;
                    messages.push(StoredMessage {
                        sequence: message.sequence,
                        subject: message.subject.to_string(),
                        payload: message.payload,
                        stored_at: utc(message.time),
                    });
                }
                Err(e) if matches!(e.kind(), stream::RawMessageErrorKind::NoMessageFound) => {
                    return Ok(messages);
                }
                Err(e) => return Err(StoreError::unavailable(e)),
            }
        }
    }

    /// The quarantine decision that sets `message` aside, checked against it (see
    /// [`crate::signed_off`]).
    pub async fn signed_off(&self, message: &StoredMessage) -> Result<SignedOff, NotSignedOff> {
        let Some(sequence) = NonZeroU64::new(message.sequence) else {
            return Err(NotSignedOff::NoDecision(message.sequence));
        };
        let subject = self.subject(&AggregateRef::Quarantine(QuarantineId::of(sequence)));
        signed_off_on(&self.stream, &subject, message).await
    }

    /// The commit stored at `sequence`.
    pub async fn commit_at(&self, sequence: u64) -> Result<Commit, StoreError> {
        let message = self
            .stream
            .get_raw_message(sequence)
            .await
            .map_err(StoreError::unavailable)?;
        decode_commit(sequence, &message.payload)
    }
}

/// Parses a commit message's payload.
pub fn decode_commit(sequence: u64, payload: &[u8]) -> Result<Commit, StoreError> {
    let mut events: Vec<CloudEvent> =
        serde_json::from_slice(payload).map_err(|e| StoreError::Corrupt {
            sequence,
            reason: e.to_string(),
        })?;
    // serde grows the vector to room for four; most commits hold one event, and the projector
    // keeps thousands of decoded commits at a time.
    events.shrink_to_fit();
    Ok(Commit { sequence, events })
}

pub(crate) fn classify_publish_error(error: jetstream::context::PublishError) -> StoreError {
    if refused_for_sequence(&error) {
        StoreError::Conflict
    } else {
        write_failed(error)
    }
}

/// A write the stream did not take, for a reason other than a conflict: full (no room; an
/// operator must act) or unavailable (retry soon). Appends and idempotency records alike.
pub(crate) fn write_failed(error: impl Error + 'static) -> StoreError {
    if refused_for_space(&error) {
        StoreError::Full(error.to_string())
    } else {
        StoreError::unavailable(error)
    }
}

/// Whether JetStream refused a write for lack of room: 10077 (the stream's store refused it:
/// maximum messages or bytes reached with discard policy `new`), 10047 (insufficient storage)
/// or 10023 (insufficient resources, e.g. the disk is full).
fn refused_for_space(error: &(dyn Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| (*e).source()).any(|e| {
        e.downcast_ref::<jetstream::Error>().is_some_and(|e| {
            [
                jetstream::ErrorCode::STREAM_STORE_FAILED,
                jetstream::ErrorCode::STORAGE_RESOURCES_EXCEEDED,
                jetstream::ErrorCode::INSUFFICIENT_RESOURCES,
            ]
            .contains(&e.error_code())
        })
    })
}

/// Whether JetStream refused a write because its expected sequence no longer held: 10071 (wrong
/// last subject sequence) and, on clustered streams, 10164 (another expected-sequence publish to
/// the subject is in flight) both mean someone else wrote first. async-nats reports the first as
/// `WrongLastSequence`, the second as `Other`, and its key-value API wraps both in its own errors,
/// so the server's code is looked for along the sources.
pub(crate) fn refused_for_sequence(error: &(dyn Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| (*e).source()).any(|e| {
        e.downcast_ref::<jetstream::Error>().is_some_and(|e| {
            e.error_code() == jetstream::ErrorCode::STREAM_WRONG_LAST_SEQUENCE
                || e.error_code() == jetstream::ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT
        })
    })
}
