//! A projection's stop, recorded next to its checkpoint so that other processes — the query
//! service above all — know the read model is frozen, not merely quiet.

use sqlx::{AssertSqlSafe, PgPool};

use crate::{Durability, Projection, lock_checkpoint, quoted_schema};

fn quoted(schema: &str) -> Result<String, sqlx::Error> {
    quoted_schema(schema).map_err(|e| sqlx::Error::Configuration(e.into()))
}

/// Records that `projection` (in `schema`) stopped at `sequence` (`None`: at no single commit)
/// for `reason`, in a transaction of its own that holds the projection's lock like a batch does.
/// The stop keeps the instant it was first recorded while it stays at the same sequence, so a
/// projector restarted onto the same commit does not make the stop look recent.
pub async fn record_stall(
    pool: &PgPool,
    schema: &str,
    projection: Projection,
    sequence: Option<u64>,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    lock_checkpoint(&mut tx, schema, projection, Durability::Configured).await?;
    sqlx::query(
        "UPDATE checkpoints SET stalled_sequence = $2, stalled_reason = $3,
             stalled_since = CASE
                 WHEN stalled_since IS NOT NULL AND stalled_sequence IS NOT DISTINCT FROM $2
                 THEN stalled_since ELSE now() END
         WHERE projection = $1",
    )
    .bind(projection.name())
    .bind(sequence.map(|s| i64::try_from(s).unwrap_or(i64::MAX)))
    // PostgreSQL text cannot hold NUL, and a stop must not fail to be recorded over its wording.
    .bind(reason.replace('\0', ""))
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Forgets a recorded stop: the projection runs again and has nothing left to apply (a batch it
/// applies clears the stop itself, see [`crate::save_checkpoint`]).
pub async fn clear_stall(
    pool: &PgPool,
    schema: &str,
    projection: Projection,
) -> Result<(), sqlx::Error> {
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE {}.checkpoints
         SET stalled_sequence = NULL, stalled_reason = NULL, stalled_since = NULL
         WHERE projection = $1 AND stalled_since IS NOT NULL",
        quoted(schema)?
    )))
    .bind(projection.name())
    .execute(pool)
    .await?;
    Ok(())
}
