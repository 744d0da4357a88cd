//! `Idempotency-Key` records kept in a JetStream key-value bucket.
//!
//! JetStream's own duplicate window (minutes) drops a re-sent message, but a client may retry
//! after hours, or after the service restarted. The bucket keeps the first answer for as long
//! as configured, so the retry gets that answer and nothing is appended. What an answer holds is
//! the command application's business (its type parameter here): this store only keeps records
//! and arbitrates between racing writers.
//!
//! Sends of one key may race (a client retrying while its first send is still in flight), so a
//! record is only ever written if absent or by compare-and-set on the revision it replaces: of
//! racing writers exactly one wins, and an answer once stored is never overwritten.

use async_nats::jetstream::kv;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StoreError;
use crate::store::{refused_for_sequence, write_failed};

/// A send's claim on a key while it decides, so that sends racing with it wait for its answer
/// instead of deciding too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub state: ClaimState,
    /// Digest of the command name and body the key was first used with: the same key with
    /// another request is refused.
    pub fingerprint: String,
    /// The command id the holder's events carry. A send taking the claim over keeps it, so it can
    /// recognise a commit an earlier holder appended before it stopped.
    pub command_id: Uuid,
    /// When the current holder claimed the key, by its clock: the start of its lease.
    pub claimed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimState {
    /// The holder is deciding.
    Pending,
    /// The holder failed transiently and gave the claim up: the next send takes it over at once.
    Released,
}

/// What a key holds: a claim, or the answer `A` of the send that held it. A claim is told apart
/// by its `state`, so an answer format need not name itself (records written before claims
/// existed are answers with no tag at all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IdempotencyRecord<A> {
    Claimed(Claim),
    Answered(A),
}

/// A record and the revision that a compare-and-set replacing it must name.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<A> {
    pub record: IdempotencyRecord<A>,
    pub revision: u64,
}

#[derive(Debug, Clone)]
pub struct IdempotencyStore {
    bucket: kv::Store,
}

fn encode<A: Serialize>(record: &IdempotencyRecord<A>) -> Result<bytes::Bytes, StoreError> {
    serde_json::to_vec(record)
        .map(Into::into)
        .map_err(|e| StoreError::Encoding(e.to_string()))
}

impl IdempotencyStore {
    pub fn new(bucket: kv::Store) -> Self {
        Self { bucket }
    }

    /// `key` must already be bucket-safe (the command service hashes the client's key). On a
    /// clustered bucket a lagging replica may answer; that is safe, as whatever is done on what
    /// was read is a compare-and-set, and an answer once stored never changes.
    pub async fn read<A: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<Versioned<A>>, StoreError> {
        let Some(entry) = self
            .bucket
            .entry(key)
            .await
            .map_err(StoreError::unavailable)?
        else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        let record = serde_json::from_slice(&entry.value)
            .map_err(|e| StoreError::Encoding(format!("idempotency record {key}: {e}")))?;
        Ok(Some(Versioned {
            record,
            revision: entry.revision,
        }))
    }

    /// Writes `claim` if the key holds no record; `None` if another send's record is there.
    pub async fn create(&self, key: &str, claim: &Claim) -> Result<Option<u64>, StoreError> {
        let bytes = encode(&IdempotencyRecord::<()>::Claimed(claim.clone()))?;
        match self.bucket.create(key, bytes).await {
            Ok(revision) => Ok(Some(revision)),
            Err(e)
                if e.kind() == kv::CreateErrorKind::AlreadyExists || refused_for_sequence(&e) =>
            {
                Ok(None)
            }
            Err(e) => Err(write_failed(e)),
        }
    }

    /// Replaces the record stored at `revision` with `record`; `None` if the key changed since.
    pub async fn replace<A: Serialize>(
        &self,
        key: &str,
        record: &IdempotencyRecord<A>,
        revision: u64,
    ) -> Result<Option<u64>, StoreError> {
        match self.bucket.update(key, encode(record)?, revision).await {
            Ok(revision) => Ok(Some(revision)),
            Err(e)
                if e.kind() == kv::UpdateErrorKind::WrongLastRevision
                    || refused_for_sequence(&e) =>
            {
                Ok(None)
            }
            Err(e) => Err(write_failed(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn an_untagged_answer_reads_as_an_answer_and_is_written_back_unchanged() {
        let old = r#"{"fingerprint":"ab12","status":201,"body":{"changed":true}}"#;
        let record: IdempotencyRecord<Value> = serde_json::from_str(old).expect("old record");
        assert_eq!(
            record,
            IdempotencyRecord::Answered(json!({
                "fingerprint": "ab12",
                "status": 201,
                "body": { "changed": true },
            }))
        );
        assert_eq!(
            serde_json::to_value(&record).expect("encode"),
            serde_json::from_str::<Value>(old).expect("json")
        );
    }

    #[test]
    fn claims_round_trip_with_their_state() {
        let claim = IdempotencyRecord::<Value>::Claimed(Claim {
            state: ClaimState::Released,
            fingerprint: "ab12".to_owned(),
            command_id: Uuid::now_v7(),
            claimed_at: Utc::now(),
        });
        let json = serde_json::to_value(&claim).expect("encode");
        assert_eq!(json["state"], "released");
        assert_eq!(
            serde_json::from_value::<IdempotencyRecord<Value>>(json).expect("decode"),
            claim
        );
    }
}
