//! `Idempotency-Key` answers kept in a JetStream key-value bucket.
//!
//! JetStream's own duplicate window (minutes) drops a re-sent message, but a client may retry
//! after hours, or after the service restarted. The bucket keeps the first answer for as long
//! as configured, so the retry gets that answer and nothing is appended.

use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::StoreError;

/// The stored first answer to a command sent with an idempotency key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAnswer {
    /// Digest of the command name and body: the same key with another request is refused.
    pub fingerprint: String,
    pub status: u16,
    pub body: Value,
}

#[derive(Debug, Clone)]
pub struct IdempotencyStore {
    bucket: kv::Store,
}

impl IdempotencyStore {
    pub fn new(bucket: kv::Store) -> Self {
        Self { bucket }
    }

    /// `key` must already be bucket-safe (the command service hashes the client's key).
    pub async fn get(&self, key: &str) -> Result<Option<StoredAnswer>, StoreError> {
        let Some(bytes) = self
            .bucket
            .get(key)
            .await
            .map_err(StoreError::unavailable)?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Encoding(format!("idempotency record {key}: {e}")))
    }

    pub async fn put(&self, key: &str, answer: &StoredAnswer) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(answer).map_err(|e| StoreError::Encoding(e.to_string()))?;
        self.bucket
            .put(key, bytes.into())
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }
}
