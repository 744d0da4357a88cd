//! Applying a batch of delivered commits in one transaction with the checkpoint.
//!
//! The checkpoint decides what is applied: a commit at or below it was applied before (a
//! redelivery, or a crash between commit and ack) and is skipped; the next one must be exactly
//! checkpoint + 1. The stream denies deletes and every subject of it is a commit, so anything else
//! is a gap nobody can explain, and the projection stops rather than skip it.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use event_store::decode_commit;
use readmodel::{ApplyError, Projection, apply, lock_checkpoint, save_checkpoint};
use sqlx::{AssertSqlSafe, PgConnection, PgPool};

/// One delivered message: its stream sequence and payload.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub sequence: u64,
    pub payload: Bytes,
}

/// What a committed batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub checkpoint: u64,
    pub commits: usize,
    pub events: usize,
    pub last_recorded_at: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The database failed; nothing was committed and the batch can be tried again.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// An event that cannot be applied: the projection must stop here.
    #[error(transparent)]
    Apply(ApplyError),
    #[error("gap: expected stream sequence {expected}, got {got}")]
    Gap { expected: u64, got: u64 },
}

impl BatchError {
    /// The sequence a stop concerns; `None` for transient failures.
    pub fn stall_sequence(&self) -> Option<u64> {
        match self {
            BatchError::Database(_) => None,
            BatchError::Apply(e) => e.sequence(),
            BatchError::Gap { expected, .. } => Some(*expected),
        }
    }

    /// Worth trying the same batch again: the database failed, but not because of the data.
    /// Bad data (SQLSTATE classes 22 and 23: invalid values, constraint violations) fails the
    /// same way every time and must stop the projection instead.
    pub fn is_transient(&self) -> bool {
        let error = match self {
            BatchError::Database(e) | BatchError::Apply(ApplyError::Database(e)) => e,
            _ => return false,
        };
        let code = error
            .as_database_error()
            .and_then(|d| d.code().map(|c| c.into_owned()));
        !code.is_some_and(|c| c.starts_with("22") || c.starts_with("23"))
    }
}

/// Applies `messages` (in delivery order) to `projection` in `schema`, with its checkpoint, in
/// one transaction.
pub async fn apply_batch(
    pool: &PgPool,
    schema: &str,
    projection: Projection,
    messages: &[Delivered],
) -> Result<Applied, BatchError> {
    let mut tx = pool.begin().await?;
    let applied = apply_batch_in(&mut tx, schema, projection, messages).await?;
    tx.commit().await?;
    Ok(applied)
}

/// The body of [`apply_batch`], inside the caller's transaction (which then holds the
/// projection's advisory lock until it ends).
pub async fn apply_batch_in(
    conn: &mut PgConnection,
    schema: &str,
    projection: Projection,
    messages: &[Delivered],
) -> Result<Applied, BatchError> {
    sqlx::query(AssertSqlSafe(format!(
        "SET LOCAL search_path TO {}",
        quoted(schema)
    )))
    .execute(&mut *conn)
    .await?;
    let mut checkpoint = lock_checkpoint(conn, schema, projection).await?;
    let mut applied = Applied {
        checkpoint,
        commits: 0,
        events: 0,
        last_recorded_at: None,
    };
    // Decode and check the whole batch first, then apply it in one go.
    let mut commits = Vec::with_capacity(messages.len());
    for message in messages {
        if message.sequence <= checkpoint {
            continue;
        }
        if message.sequence != checkpoint + 1 {
            return Err(BatchError::Gap {
                expected: checkpoint + 1,
                got: message.sequence,
            });
        }
        let commit = decode_commit(message.sequence, &message.payload).map_err(|e| {
            BatchError::Apply(ApplyError::Inconsistent {
                sequence: message.sequence,
                reason: e.to_string(),
            })
        })?;
        checkpoint = message.sequence;
        applied.commits += 1;
        applied.events += commit.events.len();
        applied.last_recorded_at = commit
            .events
            .last()
            .map(|e| e.time)
            .or(applied.last_recorded_at);
        commits.push(commit);
    }
    apply(conn, projection, &commits)
        .await
        .map_err(BatchError::Apply)?;
    if applied.commits > 0 {
        save_checkpoint(conn, projection, checkpoint, applied.last_recorded_at).await?;
    }
    applied.checkpoint = checkpoint;
    Ok(applied)
}

/// Double-quotes an identifier for SQL.
pub fn quoted(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}
