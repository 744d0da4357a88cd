//! The audit projection: one row per event, with the whole envelope as jsonb.

use event_store::Commit;
use sqlx::PgConnection;

use crate::ApplyError;

pub async fn apply(conn: &mut PgConnection, commit: &Commit) -> Result<(), ApplyError> {
    for (position, event) in commit.events.iter().enumerate() {
        let envelope = serde_json::to_value(event).map_err(|e| ApplyError::Inconsistent {
            sequence: commit.sequence,
            reason: e.to_string(),
        })?;
        sqlx::query(
            "INSERT INTO audit_log (stream_sequence, position, event_id, event_type, aggregate_type, aggregate_id,
                 recorded_at, effective_at, actor_user, actor_unit, actor_role, correlation_id, causation_id,
                 command_id, command_name, payload, envelope)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(commit.sequence as i64)
        .bind(position as i32)
        .bind(event.id)
        .bind(&event.event_type)
        .bind(&event.aggregatetype)
        .bind(&event.aggregateid)
        .bind(event.time)
        .bind(event.effectivetime)
        .bind(&event.actoruser)
        .bind(&event.actorunit)
        .bind(&event.actorrole)
        .bind(&event.correlationid)
        .bind(&event.causationid)
        .bind(event.commandid)
        .bind(&event.commandname)
        .bind(&event.data)
        .bind(envelope)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
