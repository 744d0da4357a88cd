//! A quarantined message on the read side: the projections continue past it without applying
//! it — no row, no chain head moves — and the audit projection records that it was set aside,
//! by whom and why, at its stream position.

use event_store::{SignedOff, StoredMessage};
use sqlx::PgConnection;

use crate::{ApplyError, Projection};

/// Records `message`, set aside by `decision`, in `projection`'s tables on `conn` (inside the
/// caller's transaction, with the schema on its search path). The core projection has nothing
/// to record: it only moves its checkpoint, which is the caller's.
pub async fn apply_quarantined(
    conn: &mut PgConnection,
    projection: Projection,
    message: &StoredMessage,
    decision: &SignedOff,
) -> Result<(), ApplyError> {
    if projection == Projection::Core {
        return Ok(());
    }
    // PostgreSQL text holds no NUL: such a payload, like one that is no UTF-8, goes as base64
    // (without the line breaks PostgreSQL's encoder inserts), so every byte stays readable.
    let text = std::str::from_utf8(&message.payload)
        .ok()
        .filter(|text| !text.contains('\0'));
    sqlx::query(
        "INSERT INTO quarantined_messages (stream_sequence, subject, digest, size, stored_at,
             payload_encoding, payload, reason, decided_by, decided_role, decision_sequence, decided_at)
         VALUES ($1, $2, $3, $4, $5,
             CASE WHEN $6::text IS NULL THEN 'base64' ELSE 'utf-8' END,
             coalesce($6, translate(encode($7, 'base64'), E'\\n', '')),
             $8, $9, $10, $11, $12)",
    )
    .bind(i64::try_from(message.sequence).unwrap_or(i64::MAX))
    .bind(&message.subject)
    .bind(&decision.digest)
    .bind(i64::try_from(decision.size).unwrap_or(i64::MAX))
    .bind(message.stored_at)
    .bind(text)
    .bind(message.payload.as_ref())
    .bind(&decision.reason)
    .bind(&decision.decided_by)
    .bind(&decision.decided_role)
    .bind(i64::try_from(decision.decision_sequence).unwrap_or(i64::MAX))
    .bind(decision.decided_at)
    .execute(conn)
    .await?;
    Ok(())
}
