//! Checking the audit table against the hash chains and against the stream, and its record of
//! quarantined messages against the breaks the stream walk found signed off.

use std::collections::BTreeMap;

use event_store::{Broken, SignedOffBreak, Verification, envelope_hash, message_digest};
use futures::TryStreamExt;
use serde_json::Value;
use sqlx::{AssertSqlSafe, PgConnection, Row};
use uuid::Uuid;

/// What the walk over the audit table found.
#[derive(Debug, Clone, Default)]
pub struct AuditVerification {
    pub rows: u64,
    pub checkpoint: u64,
    /// Quarantined messages recorded in the table and checked (not counted in `rows`).
    pub quarantined: u64,
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

/// Walks `schema`'s audit log in stream order. Each row's envelope, reassembled with its payload
/// as its data ([`crate::AUDIT_ENVELOPE`]: the data is stored once), must hash to its `hash` — so a
/// changed payload breaks the hash like any other changed member —, its `prevhash` must be the previous row's hash for
/// the aggregate, and its hash must equal the one the stream holds for that event (`walked`, the
/// stream walk's findings). Only rows up to the last sequence the stream walk saw are walked:
/// rows the projector applied after the walk (a read of the audit trail recorded meanwhile, say)
/// have no hash to compare with. Whether any row lies beyond the stream itself is
/// [`AuditVerification::beyond`]'s question. Then the quarantined messages: see
/// [`check_quarantined`].
///
/// Run it in a repeatable-read transaction to have the newest row and the walk agree.
/// `progress` hears the stream sequence of every row checked.
pub async fn verify_audit(
    conn: &mut PgConnection,
    schema: &str,
    walked: &Verification,
    mut progress: impl FnMut(u64),
) -> Result<AuditVerification, sqlx::Error> {
    let mut verification = AuditVerification::default();
    let mut heads: BTreeMap<String, String> = BTreeMap::new();
    let schema = format!("\"{}\"", schema.replace('"', "\"\""));
    let table = format!("{schema}.audit_log");
    let up_to = walked.last_sequence;
    let newest: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT greatest(max(stream_sequence), (SELECT max(stream_sequence) FROM {schema}.quarantined_messages))
         FROM {table}"
    )))
    .fetch_one(&mut *conn)
    .await?;
    verification.newest = u64::try_from(newest.unwrap_or(0)).unwrap_or(0);
    let sql = format!(
        "SELECT stream_sequence, event_id, aggregate_type, aggregate_id, {} AS envelope
         FROM {table} WHERE stream_sequence <= $1 ORDER BY stream_sequence, position",
        crate::AUDIT_ENVELOPE
    );
    let mut rows = sqlx::query(AssertSqlSafe(sql))
        .bind(i64::try_from(up_to).unwrap_or(i64::MAX))
        .fetch(&mut *conn);
    while let Some(row) = rows.try_next().await? {
        let sequence = row.try_get::<i64, _>("stream_sequence")? as u64;
        let event_id: Uuid = row.try_get("event_id")?;
        let aggregate = format!(
            "{}/{}",
            row.try_get::<String, _>("aggregate_type")?,
            row.try_get::<String, _>("aggregate_id")?
        );
        let envelope: Value = row.try_get("envelope")?;
        let hash = envelope["hash"].as_str().unwrap_or_default().to_owned();
        let previous = heads.get(&aggregate).cloned().unwrap_or_default();
        let problem = if envelope_hash(&envelope) != hash {
            Some("envelope does not match its hash")
        } else if envelope["prevhash"].as_str().unwrap_or_default() != previous {
            Some("prevhash does not match the previous event of the aggregate")
        } else if walked.event_hashes.get(&event_id) != Some(&hash) {
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
    drop(rows);
    check_quarantined(conn, &schema, walked, &mut verification).await?;
    Ok(verification)
}

/// The quarantined messages recorded up to the stream walk's last sequence: each must be a break
/// the walk found signed off — same digest, same decision — and hold the message itself (its
/// subject and payload hash to that digest); and every signed-off break the projection has
/// passed (up to its checkpoint) must be recorded.
async fn check_quarantined(
    conn: &mut PgConnection,
    schema: &str,
    walked: &Verification,
    verification: &mut AuditVerification,
) -> Result<(), sqlx::Error> {
    let up_to = i64::try_from(walked.last_sequence).unwrap_or(i64::MAX);
    let recorded: Vec<(i64, String, String, i64, i64, Vec<u8>)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT stream_sequence, subject, digest, size, decision_sequence,
             CASE payload_encoding WHEN 'utf-8' THEN convert_to(payload, 'UTF8') ELSE decode(payload, 'base64') END
         FROM {schema}.quarantined_messages WHERE stream_sequence <= $1 ORDER BY stream_sequence"
    )))
    .bind(up_to)
    .fetch_all(&mut *conn)
    .await?;
    let passed: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT last_sequence FROM {schema}.checkpoints WHERE projection = 'audit'"
    )))
    .fetch_optional(&mut *conn)
    .await?
    .unwrap_or(0);
    let signed_off: BTreeMap<u64, &SignedOffBreak> = walked
        .quarantined
        .iter()
        .map(|b| (b.decision.sequence, b))
        .collect();
    for (sequence, subject, digest, size, decision_sequence, payload) in &recorded {
        let sequence = u64::try_from(*sequence).unwrap_or(0);
        let problem = match signed_off.get(&sequence) {
            None => Some("the stream holds no signed-off break there".to_owned()),
            Some(known) if known.decision.digest != *digest => Some(format!(
                "it names digest {digest}, the stream's signed-off message has {}",
                known.decision.digest
            )),
            Some(known)
                if known.decision.decision_sequence
                    != u64::try_from(*decision_sequence).unwrap_or(0) =>
            {
                Some(format!(
                    "it names the decision at {decision_sequence}, the stream's is at {}",
                    known.decision.decision_sequence
                ))
            }
            Some(_)
                if message_digest(subject, payload) != *digest
                    || usize::try_from(*size).ok() != Some(payload.len()) =>
            {
                Some("its subject and payload do not hash to its digest".to_owned())
            }
            Some(_) => None,
        };
        if let Some(problem) = problem {
            verification.broken = Some(Broken {
                sequence,
                aggregate: subject.clone(),
                reason: format!("quarantined message: {problem}"),
            });
            return Ok(());
        }
        verification.quarantined += 1;
    }
    let missing = signed_off.values().find(|known| {
        i64::try_from(known.decision.sequence).unwrap_or(i64::MAX) <= passed.min(up_to)
            && !recorded
                .iter()
                .any(|row| u64::try_from(row.0).ok() == Some(known.decision.sequence))
    });
    if let Some(known) = missing {
        verification.broken = Some(Broken {
            sequence: known.decision.sequence,
            aggregate: known.decision.subject.clone(),
            reason: format!(
                "the stream's break at {} is signed off (decision at {}), but the audit table, past it, does not record it as quarantined",
                known.decision.sequence, known.decision.decision_sequence
            ),
        });
    }
    Ok(())
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
