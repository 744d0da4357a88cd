//! The event store over NATS JetStream: CloudEvents envelopes, stream provisioning,
//! optimistic-concurrency appends, per-aggregate loading with a bounded cache, and durable
//! idempotency records.

pub mod access;
mod chain;
pub mod credentials;
mod envelope;
mod idempotency;
mod publisher;
mod quarantine;
mod reader;
mod repository;
pub mod schemas;
mod store;
mod stream;
mod verify;

pub use chain::{
    ChainError, HashedCommit, canonical_json, digest, envelope_hash, event_hash, seal, verify_link,
    write_envelope_without_data,
};
pub use envelope::{
    BATCH_CONTENT_TYPE, CloudEvent, CommandMeta, Commit, SOURCE, TYPE_PREFIX, event_type,
    parse_event_type,
};
pub use idempotency::{Claim, ClaimState, IdempotencyRecord, IdempotencyStore, Versioned};
pub use quarantine::{
    DecisionFault, NotSignedOff, SignedOff, StoredMessage, message_digest, signed_off,
    signed_off_at, stored_message,
};
pub use reader::StreamReader;
pub use repository::{Loaded, Repository};
pub use store::{Appended, EventStore, decode_commit};
pub use stream::{Provisioned, REPLICATION_SINCE, StreamSettings, provision, replicates_safely};
pub use verify::{
    Broken, SignedOffBreak, Verification, verify_stream, verify_stream_reporting,
    verify_stream_until,
};

/// Failures of the store. `Conflict` is expected under concurrency; the others are not.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone appended to the aggregate since it was loaded.
    #[error("the aggregate changed since it was loaded")]
    Conflict,
    /// NATS or the stream did not answer (down, no leader, timed out).
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// The stream refused the write because a limit was reached (its maximum messages or bytes,
    /// or the server's storage); nothing was stored, and the stream drops nothing to make room
    /// (discard policy `new`), so an operator must raise the limit or free space.
    #[error("event store full: {0}")]
    Full(String),
    /// A stored message could not be read back.
    #[error("stored commit at stream sequence {sequence} is unreadable: {reason}")]
    Corrupt { sequence: u64, reason: String },
    #[error("encoding failed: {0}")]
    Encoding(String),
    #[error("misconfigured: {0}")]
    Misconfigured(String),
}

impl StoreError {
    pub fn unavailable(error: impl std::fmt::Display) -> Self {
        StoreError::Unavailable(error.to_string())
    }
}
