//! Checking the audit table against the hash chains and against the stream.

use std::collections::{BTreeMap, HashMap};

use event_store::{Broken, envelope_hash};
use futures::TryStreamExt;
use serde_json::Value;
use sqlx::{AssertSqlSafe, PgPool, Row};
use uuid::Uuid;

/// What the walk over the audit table found.
#[derive(Debug, Clone, Default)]
pub struct AuditVerification {
    pub rows: u64,
    pub checkpoint: u64,
    pub broken: Option<Broken>,
}

/// Walks `schema`'s audit log in stream order. Each row's payload must equal its envelope's
/// data, its envelope must hash to its `hash`, its `prevhash` must be the previous row's hash for
/// the aggregate, and its hash must equal the one the stream holds for that event
/// (`stream_hashes`: event id → hash).
pub async fn verify_audit(
    pool: &PgPool,
    schema: &str,
    stream_hashes: &HashMap<Uuid, String>,
) -> Result<AuditVerification, sqlx::Error> {
    let mut verification = AuditVerification::default();
    let mut heads: BTreeMap<String, String> = BTreeMap::new();
    let sql = format!(
        "SELECT stream_sequence, event_id, aggregate_type, aggregate_id, payload, envelope
         FROM \"{}\".audit_log ORDER BY stream_sequence, position",
        schema.replace('"', "\"\"")
    );
    let mut rows = sqlx::query(AssertSqlSafe(sql)).fetch(pool);
    while let Some(row) = rows.try_next().await? {
        let sequence = row.try_get::<i64, _>("stream_sequence")? as u64;
        let event_id: Uuid = row.try_get("event_id")?;
        let aggregate = format!(
            "{}/{}",
            row.try_get::<String, _>("aggregate_type")?,
            row.try_get::<String, _>("aggregate_id")?
        );
        let payload: Value = row.try_get("payload")?;
        let envelope: Value = row.try_get("envelope")?;
        let hash = envelope["hash"].as_str().unwrap_or_default().to_owned();
        let previous = heads.get(&aggregate).cloned().unwrap_or_default();
        let problem = if envelope["data"] != payload {
            Some("payload differs from the envelope's data")
        } else if envelope_hash(&envelope) != hash {
            Some("envelope does not match its hash")
        } else if envelope["prevhash"].as_str().unwrap_or_default() != previous {
            Some("prevhash does not match the previous event of the aggregate")
        } else if stream_hashes.get(&event_id) != Some(&hash) {
            Some("the stream holds a different event under this id")
        } else {
            None
        };
        if let Some(reason) = problem {
            verification.broken = Some(Broken {
                sequence,
                aggregate,
                reason: format!("audit row of event {event_id}: {reason}"),
            });
            return Ok(verification);
        }
        heads.insert(aggregate, hash);
        verification.rows += 1;
        verification.checkpoint = sequence;
    }
    Ok(verification)
}
