//! Checking the audit table against the hash chains and against the stream.

use std::collections::{BTreeMap, HashMap};

use event_store::{Broken, envelope_hash};
use futures::TryStreamExt;
use serde_json::Value;
use sqlx::{AssertSqlSafe, PgConnection, Row};
use uuid::Uuid;

/// What the walk over the audit table found.
#[derive(Debug, Clone, Default)]
pub struct AuditVerification {
    pub rows: u64,
    pub checkpoint: u64,
    pub broken: Option<Broken>,
    /// The table's newest stream sequence, walked or not: rows beyond the stream's own head
    /// cannot have come from it.
    pub newest: u64,
}

impl AuditVerification {
    /// A broken link when the table holds a row beyond `stream_head` (the stream's last sequence
    /// read after this walk).
    pub fn beyond(&self, stream_head: u64) -> Option<Broken> {
        (self.newest > stream_head).then(|| Broken {
            sequence: self.newest,
            aggregate: String::new(),
            reason: format!(
                "the audit table holds stream sequence {}, beyond the stream's last {stream_head}",
                self.newest
            ),
        })
    }
}

/// Walks `schema`'s audit log in stream order. Each row's payload must equal its envelope's
/// data, its envelope must hash to its `hash`, its `prevhash` must be the previous row's hash for
/// the aggregate, and its hash must equal the one the stream holds for that event
/// (`stream_hashes`: event id → hash). Only rows up to `up_to` — the last sequence the stream
/// walk saw — are walked: rows the projector applied after the walk (a read of the audit trail
/// recorded meanwhile, say) have no hash to compare with. Whether any row lies beyond the stream
/// itself is [`AuditVerification::beyond`]'s question.
///
/// Run it in a repeatable-read transaction to have the newest row and the walk agree.
/// `progress` hears the stream sequence of every row checked.
pub async fn verify_audit(
    conn: &mut PgConnection,
    schema: &str,
    stream_hashes: &HashMap<Uuid, String>,
    up_to: u64,
    mut progress: impl FnMut(u64),
) -> Result<AuditVerification, sqlx::Error> {
    let mut verification = AuditVerification::default();
    let mut heads: BTreeMap<String, String> = BTreeMap::new();
    let table = format!("\"{}\".audit_log", schema.replace('"', "\"\""));
    let newest: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT max(stream_sequence) FROM {table}"
    )))
    .fetch_one(&mut *conn)
    .await?;
    verification.newest = u64::try_from(newest.unwrap_or(0)).unwrap_or(0);
    let sql = format!(
        "SELECT stream_sequence, event_id, aggregate_type, aggregate_id, payload, envelope
         FROM {table} WHERE stream_sequence <= $1 ORDER BY stream_sequence, position"
    );
    let mut rows = sqlx::query(AssertSqlSafe(sql))
        .bind(i64::try_from(up_to).unwrap_or(i64::MAX))
        .fetch(conn);
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
        progress(sequence);
    }
    Ok(verification)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rows_beyond_the_stream_itself_are_a_break() {
        let table = AuditVerification {
            newest: 10,
            ..AuditVerification::default()
        };
        assert!(table.beyond(10).is_none());
        assert!(table.beyond(11).is_none());
        let broken = table.beyond(9).expect("a row the stream never held");
        assert_eq!(broken.sequence, 10);
        assert!(
            broken.reason.contains("beyond the stream's last 9"),
            "{}",
            broken.reason
        );
    }
}
