//! Applying a batch of delivered commits in one transaction with the checkpoint.
//!
//! The checkpoint decides what is applied: a commit at or below it was applied before (a
//! redelivery, or a crash between commit and ack) and is skipped; the next one must be exactly
//! checkpoint + 1, and anything else refuses the batch. The stream denies deletes and every
//! subject of it is a commit, so a gap is either deliveries the consumer lost (the worker asks
//! the stream, and makes the consumer anew) or one nobody can explain, where the projection stops
//! rather than skip it — unless an auditor set the message aside with a quarantine decision that
//! holds: then it is applied as quarantined ([`apply_quarantined`]), which moves the checkpoint
//! past it and nothing else.

use async_nats::jetstream::stream;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use event_store::{
    HashedCommit, NotSignedOff, SignedOff, StoreError, StoredMessage, signed_off_at,
};
use readmodel::{
    ApplyError, Durability, HeadCache, Heads, HeldHeads, Projection, apply_holding,
    apply_quarantined as record_quarantined, lock_checkpoint, save_checkpoint,
};
use sqlx::{Connection, PgConnection, PgPool};

use crate::decode::Decoder;

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

impl Applied {
    /// This, then `later`, as one.
    fn then(self, later: Applied) -> Applied {
        Applied {
            checkpoint: later.checkpoint,
            commits: self.commits + later.commits,
            events: self.events + later.events,
            last_recorded_at: later.last_recorded_at.or(self.last_recorded_at),
        }
    }
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
    /// The stream did not answer while a quarantine decision was looked up.
    #[error(transparent)]
    Stream(#[from] StoreError),
}

impl BatchError {
    /// The sequence a stop concerns; `None` for transient failures.
    pub fn stall_sequence(&self) -> Option<u64> {
        match self {
            BatchError::Database(_) | BatchError::Stream(_) => None,
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
/// one transaction; each is decoded through `decoder`, shared with the other projections. The
/// chain heads are read through `heads`, kept by the caller from one batch to the next.
///
/// The transaction commits without waiting for its WAL flush ([`Durability::Unflushed`]): the
/// worker waited for that flush once a batch, with its core idle. A crash of PostgreSQL may then
/// lose the last batches (at most about three times `wal_writer_delay`, 600 ms by default) after
/// they were acknowledged, but always whole, each with its checkpoint: the read model goes back
/// to an earlier checkpoint and never holds half a batch, and the stream still holds those
/// commits. The restart ends the session holding the projection's leader lock, so the worker
/// stops within a [`crate::leader::HEARTBEAT`] and starts again from the stored checkpoint,
/// making its consumer anew there since its acknowledgements went past it (`went_back.rs` in the
/// projector's tests).
pub async fn apply_batch(
    pool: &PgPool,
    decoder: &Decoder,
    schema: &str,
    projection: Projection,
    messages: &[Delivered],
    heads: &mut HeadCache,
) -> Result<Applied, BatchError> {
    let mut tx = pool.begin().await?;
    let target = Target {
        decoder,
        schema,
        projection,
        durability: Durability::Unflushed,
    };
    let applied = apply_batch_in(&mut tx, target, messages, Heads::Cached(heads)).await?;
    tx.commit().await?;
    heads.committed(applied.checkpoint);
    Ok(applied)
}

/// The body of [`apply_batch`], inside the caller's transaction (which then holds the
/// projection's advisory lock until it ends), with the chain heads where `heads` says.
async fn apply_batch_in(
    conn: &mut PgConnection,
    Target {
        decoder,
        schema,
        projection,
        durability,
    }: Target<'_>,
    messages: &[Delivered],
    mut heads: Heads<'_>,
) -> Result<Applied, BatchError> {
    let locked = lock_checkpoint(conn, schema, projection, durability).await?;
    if let Heads::Cached(cache) = &mut heads {
        cache.enter(locked.table, locked.checkpoint);
    }
    let mut checkpoint = locked.checkpoint;
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
        let commit = decoder.decode(projection, message).map_err(|e| {
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
    let commits: Vec<&HashedCommit> = commits.iter().map(|commit| &**commit).collect();
    apply_holding(conn, projection, &commits, heads)
        .await
        .map_err(BatchError::Apply)?;
    if applied.commits > 0 {
        save_checkpoint(conn, projection, checkpoint, applied.last_recorded_at).await?;
    }
    applied.checkpoint = checkpoint;
    Ok(applied)
}

/// Applies the message stored at `message.sequence`, set aside by `decision`, as quarantined:
/// its content touches no table and no chain head; the audit projection records it as
/// quarantined, and the checkpoint moves past it (which clears a recorded stop). A message at or
/// below the checkpoint was passed before and changes nothing.
pub async fn apply_quarantined(
    pool: &PgPool,
    schema: &str,
    projection: Projection,
    message: &StoredMessage,
    decision: &SignedOff,
) -> Result<Applied, BatchError> {
    let mut tx = pool.begin().await?;
    let durability = Durability::Configured;
    let applied =
        apply_quarantined_in(&mut tx, schema, projection, durability, message, decision).await?;
    tx.commit().await?;
    Ok(applied)
}

/// The body of [`apply_quarantined`], inside the caller's transaction.
async fn apply_quarantined_in(
    conn: &mut PgConnection,
    schema: &str,
    projection: Projection,
    durability: Durability,
    message: &StoredMessage,
    decision: &SignedOff,
) -> Result<Applied, BatchError> {
    let checkpoint = lock_checkpoint(conn, schema, projection, durability)
        .await?
        .checkpoint;
    let passed = Applied {
        checkpoint,
        commits: 0,
        events: 0,
        last_recorded_at: None,
    };
    if message.sequence <= checkpoint {
        return Ok(passed);
    }
    if message.sequence != checkpoint + 1 {
        return Err(BatchError::Gap {
            expected: checkpoint + 1,
            got: message.sequence,
        });
    }
    record_quarantined(conn, projection, message, decision)
        .await
        .map_err(BatchError::Apply)?;
    save_checkpoint(conn, projection, message.sequence, None).await?;
    Ok(Applied {
        checkpoint: message.sequence,
        commits: 1,
        ..passed
    })
}

/// [`apply_batch_in`], except that a message the stream holds a quarantine decision for (one
/// that holds) is applied as quarantined instead of failing the batch — what a rebuild must do to
/// come out as the live projection, which the same decision released. Each piece is applied in a
/// transaction of its own (a savepoint inside the caller's): the whole batch at once, and only
/// when that fails one commit at a time, so that the message to set aside is found exactly.
/// The chain heads are in `held` when given (what a piece that fails changed there is undone),
/// else in the schema's table.
pub async fn apply_releasing(
    conn: &mut PgConnection,
    target: Target<'_>,
    stream: &stream::Stream,
    messages: &[Delivered],
    mut held: Option<&mut HeldHeads>,
) -> Result<Applied, BatchError> {
    let whole = Piece::Commits(messages);
    let first = match apply_piece(conn, target, whole, held.as_deref_mut()).await {
        Err(e) if e.stall_sequence().is_some() => e,
        outcome => return outcome,
    };
    let mut applied: Option<Applied> = None;
    for message in messages {
        let piece = Piece::Commits(std::slice::from_ref(message));
        let done = match apply_piece(conn, target, piece, held.as_deref_mut()).await {
            Err(e) if e.stall_sequence() == Some(message.sequence) => {
                let (stored, decision) = match signed_off_at(stream, message.sequence).await {
                    Ok(released) => released,
                    Err(NotSignedOff::Store(e)) => return Err(e.into()),
                    Err(_) => return Err(e),
                };
                let piece = Piece::Quarantined(&stored, &decision);
                apply_piece(conn, target, piece, held.as_deref_mut()).await?
            }
            outcome => outcome?,
        };
        applied = Some(applied.map_or(done, |before| before.then(done)));
    }
    applied.ok_or(first)
}

/// Where a batch applies, decoding through which decoder, committing how.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub decoder: &'a Decoder,
    pub schema: &'a str,
    pub projection: Projection,
    pub durability: Durability,
}

/// What [`apply_piece`] applies.
enum Piece<'a> {
    Commits(&'a [Delivered]),
    Quarantined(&'a StoredMessage, &'a SignedOff),
}

/// Applies `piece` in a transaction of its own on `conn` (a savepoint when `conn` is in one),
/// and undoes what it changed in `held` when it fails.
async fn apply_piece(
    conn: &mut PgConnection,
    target: Target<'_>,
    piece: Piece<'_>,
    mut held: Option<&mut HeldHeads>,
) -> Result<Applied, BatchError> {
    let mark = held.as_deref().map(HeldHeads::mark);
    let mut tx = conn.begin().await?;
    let outcome = match piece {
        Piece::Commits(messages) => {
            let heads = held.as_deref_mut().map_or(Heads::Stored, Heads::Held);
            apply_batch_in(&mut tx, target, messages, heads).await
        }
        Piece::Quarantined(message, decision) => {
            let Target {
                schema,
                projection,
                durability,
                ..
            } = target;
            apply_quarantined_in(&mut tx, schema, projection, durability, message, decision).await
        }
    };
    let settled = match outcome {
        Ok(applied) => tx
            .commit()
            .await
            .map(|()| applied)
            .map_err(BatchError::from),
        Err(e) => tx.rollback().await.map_err(BatchError::from).and(Err(e)),
    };
    if settled.is_err()
        && let (Some(held), Some(mark)) = (held, mark)
    {
        held.undo_to(mark);
    }
    settled
}
