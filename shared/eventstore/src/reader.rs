//! Walking the stream in order from a sequence, for readers with narrow NATS rights.
//!
//! async-nats's ordered consumer names each replacement `<name>_<n>`. NATS permissions match
//! whole subject tokens, so granting that would mean granting every consumer name, the
//! projector's durables included. This reader uses ephemeral pull consumers created *without* a
//! name (the server picks one, and a create on that subject cannot make a durable) and, when
//! deliveries stop or skip, replaces its consumer the same way at the next sequence it wants.

use std::time::Duration;

use async_nats::jetstream::consumer::pull::{self, MessagesErrorKind};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy};
use async_nats::jetstream::{self, stream};
use futures::StreamExt;

use crate::StoreError;

/// How often a consumer is replaced in a row before the walk gives up (a few tens of seconds
/// with the back-off below: a NATS restart, not an outage).
const REPLACEMENTS: u32 = 20;

/// The stream's messages in order, from a starting sequence on.
pub struct StreamReader {
    stream: stream::Stream,
    /// The stream sequence wanted next.
    next: u64,
    /// Consumer sequence of the current consumer's last delivery: a jump means one was lost.
    delivered: u64,
    /// One missed heartbeat may be a slow reader; two in a row mean the consumer is gone.
    missed_heartbeat: bool,
    messages: pull::Stream,
}

impl std::fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamReader")
            .field("next", &self.next)
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

impl StreamReader {
    /// Starts reading `stream` at sequence `from` (1: the beginning).
    pub async fn open(stream: &stream::Stream, from: u64) -> Result<Self, StoreError> {
        let messages = consume(stream, from).await?;
        Ok(Self {
            stream: stream.clone(),
            next: from,
            delivered: 0,
            missed_heartbeat: false,
            messages,
        })
    }

    /// The next message in stream order. Waits for one to be stored; the caller decides where
    /// the walk ends.
    pub async fn next(&mut self) -> Result<jetstream::Message, StoreError> {
        loop {
            match self.messages.next().await {
                Some(Ok(message)) => {
                    let info = message.info().map_err(StoreError::unavailable)?;
                    if info.consumer_sequence == self.delivered + 1 {
                        self.delivered = info.consumer_sequence;
                        self.next = info.stream_sequence + 1;
                        self.missed_heartbeat = false;
                        return Ok(message);
                    }
                    tracing::debug!(
                        expected = self.delivered + 1,
                        got = info.consumer_sequence,
                        "a delivery was lost; replacing the consumer"
                    );
                }
                Some(Err(e))
                    if e.kind() == MessagesErrorKind::MissingHeartbeat
                        && !self.missed_heartbeat =>
                {
                    self.missed_heartbeat = true;
                    continue;
                }
                Some(Err(e))
                    if matches!(
                        e.kind(),
                        MessagesErrorKind::MissingHeartbeat
                            | MessagesErrorKind::ConsumerDeleted
                            | MessagesErrorKind::NoResponders
                    ) =>
                {
                    tracing::debug!(error = %e, "replacing the consumer");
                }
                Some(Err(e)) => return Err(StoreError::unavailable(e)),
                None => tracing::debug!("the consumer's deliveries ended; replacing it"),
            }
            self.replace().await?;
        }
    }

    async fn replace(&mut self) -> Result<(), StoreError> {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match consume(&self.stream, self.next).await {
                Ok(messages) => {
                    self.messages = messages;
                    self.delivered = 0;
                    self.missed_heartbeat = false;
                    return Ok(());
                }
                Err(e) if attempt < REPLACEMENTS => {
                    tracing::warn!(error = %e, next = self.next, attempt, "cannot resume reading the stream yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// How often the server signals an idle pull: a reader takes its consumer for gone after two
/// missed signals in a row. async-nats's default (15 s, missed after 30) left a consumer that
/// nats-server 2.9 had stopped answering — no message, no heartbeat, its pull requests
/// unanswered — unnoticed for a minute (`projector bench`'s catch-up: 62 s for 50 000 events).
const HEARTBEAT: Duration = Duration::from_secs(1);

/// An ephemeral consumer from `from` on: no acks, in memory, gone 30 s after its last pull.
async fn consume(stream: &stream::Stream, from: u64) -> Result<pull::Stream, StoreError> {
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from.max(1),
            },
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            memory_storage: true,
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .map_err(StoreError::unavailable)?;
    consumer
        .stream()
        .heartbeat(HEARTBEAT)
        .messages()
        .await
        .map_err(StoreError::unavailable)
}
