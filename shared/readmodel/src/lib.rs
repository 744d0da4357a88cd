//! The PostgreSQL read model: one schema per projection, migrated by sqlx, kept up to date by
//! applying stored commits in stream order with the checkpoint in the same transaction.

mod audit;
mod chain;
mod copy;
mod core;
pub mod export;
mod quarantined;
mod schema;
mod stall;
mod verify;

use event_store::HashedCommit;
use sqlx::PgConnection;

pub use audit::ENVELOPE as AUDIT_ENVELOPE;
pub use chain::{HeadCache, Heads, HeadsMark, HeldHeads};
pub use quarantined::apply_quarantined;
pub use schema::{
    InvalidSchemaName, READER_ROLE, create_database_if_missing, create_indexes, drop_schema,
    drop_secondary_indexes, grant_reader, prepare_read_model, prepare_schema, quoted_schema,
    swap_schema,
};
pub use stall::{clear_stall, record_stall};
pub use verify::{AuditVerification, verify_audit};

/// A projection: a set of tables in its own schema, fed by its own durable consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Projection {
    /// Units, groups, plans, items, assignments, tasks, reports, status history and the views
    /// over them.
    Core,
    /// Every event with its envelope.
    Audit,
}

impl Projection {
    pub const ALL: [Projection; 2] = [Projection::Core, Projection::Audit];

    pub fn name(self) -> &'static str {
        match self {
            Projection::Core => "core",
            Projection::Audit => "audit",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The schema serving queries: `<prefix><name>`.
    pub fn schema(self, prefix: &str) -> String {
        format!("{prefix}{}", self.name())
    }

    fn migrator(self) -> sqlx::migrate::Migrator {
        match self {
            Projection::Core => sqlx::migrate!("./migrations/core"),
            Projection::Audit => sqlx::migrate!("./migrations/audit"),
        }
    }
}

/// Why applying a commit failed. Every variant stops the projection loudly.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stream sequence {sequence}: cannot decode event {event_id}: {reason}")]
    Undecodable {
        sequence: u64,
        event_id: uuid::Uuid,
        reason: String,
    },
    #[error("stream sequence {sequence}: {reason}")]
    Inconsistent { sequence: u64, reason: String },
    /// The event does not link into its aggregate's hash chain: forged or altered.
    #[error("stream sequence {sequence}: {aggregate}: {reason}")]
    Forged {
        sequence: u64,
        aggregate: String,
        reason: String,
    },
}

impl ApplyError {
    /// The stream sequence the failure concerns, when it is about one commit.
    pub fn sequence(&self) -> Option<u64> {
        match self {
            ApplyError::Database(_) => None,
            ApplyError::Undecodable { sequence, .. }
            | ApplyError::Inconsistent { sequence, .. }
            | ApplyError::Forged { sequence, .. } => Some(*sequence),
        }
    }
}

/// Applies `commits`, in order, to `projection`'s tables on `conn` (inside the caller's
/// transaction, with the schema on its search path).
pub async fn apply(
    conn: &mut PgConnection,
    projection: Projection,
    commits: &[&HashedCommit],
) -> Result<(), ApplyError> {
    apply_holding(conn, projection, commits, Heads::Stored).await
}

/// [`apply`], with the chain heads checked against and advanced where `heads` says.
pub async fn apply_holding(
    conn: &mut PgConnection,
    projection: Projection,
    commits: &[&HashedCommit],
    heads: Heads<'_>,
) -> Result<(), ApplyError> {
    chain::check_and_advance(conn, commits, heads).await?;
    match projection {
        Projection::Core => core::apply(conn, commits).await,
        Projection::Audit => audit::apply(conn, commits).await,
    }
}

/// A key for `pg_advisory_xact_lock` per schema: whoever writes a projection's schema holds it,
/// so a rebuild's switch and the live worker's batches never interleave, while writers of other
/// schemas (a rebuild in progress, another prefix) do not wait on each other.
pub fn lock_key(schema: &str) -> i64 {
    // FNV-1a: stable across builds and processes, unlike the standard library's hasher.
    let hash = schema.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    hash as i64
}

/// Whether a writer's transaction waits for its WAL to reach the disk when it commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// As the server is configured: normally it waits.
    Configured,
    /// It does not (`synchronous_commit` off for this transaction alone). A crash of PostgreSQL
    /// may then lose the last such transactions, always whole: for a projection, whole batches
    /// with their checkpoint, which the stream still holds.
    Unflushed,
}

/// Where a projection's schema stood when its writer lock was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    /// The last stream sequence applied.
    pub checkpoint: u64,
    /// The `checkpoints` table's oid: a rebuild's switch puts another table under the name.
    pub table: i64,
}

/// Enters `schema` for the rest of the transaction `conn` is in: puts it on the search path,
/// takes its writer lock (see [`lock_key`]) and locks its checkpoint row. The search path, the
/// commit's `durability` and the lock are set in one round trip, which a batch of the live
/// projector pays every time: they were three. The checkpoint is read in a statement of its own,
/// after the lock, so that it reads the table that holds the name once the lock is held.
pub async fn lock_checkpoint(
    conn: &mut PgConnection,
    schema: &str,
    projection: Projection,
    durability: Durability,
) -> Result<Locked, sqlx::Error> {
    let enter = match durability {
        Durability::Configured => {
            "SELECT set_config('search_path', $1, true), pg_advisory_xact_lock($2)"
        }
        Durability::Unflushed => {
            "SELECT set_config('search_path', $1, true), pg_advisory_xact_lock($2),
                    set_config('synchronous_commit', 'off', true)"
        }
    };
    sqlx::query(enter)
        .bind(quoted(schema))
        .bind(lock_key(schema))
        .execute(&mut *conn)
        .await?;
    let (checkpoint, table): (i64, i64) = sqlx::query_as(
        "SELECT last_sequence, tableoid::bigint FROM checkpoints WHERE projection = $1 FOR UPDATE",
    )
    .bind(projection.name())
    .fetch_one(&mut *conn)
    .await?;
    Ok(Locked {
        checkpoint: checkpoint as u64,
        table,
    })
}

/// Double-quotes an identifier for SQL.
pub fn quoted(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// The channel a checkpoint is announced on when its transaction commits (`NOTIFY` is delivered
/// at commit and not at all on rollback), with the schema as payload: readers waiting for a
/// sequence (read-your-writes) look again at once instead of at their next poll.
pub const CHECKPOINT_CHANNEL: &str = "readmodel_checkpoint";

/// Records that everything up to `sequence` is applied, and announces it on
/// [`CHECKPOINT_CHANNEL`]. A projection that applies is running, so a stop recorded before (see
/// [`record_stall`]) is cleared in the same transaction.
pub async fn save_checkpoint(
    conn: &mut PgConnection,
    projection: Projection,
    sequence: u64,
    recorded_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH saved AS (
             UPDATE checkpoints SET last_sequence = $2, last_recorded_at = coalesce($3, last_recorded_at), updated_at = now(),
                 stalled_sequence = NULL, stalled_reason = NULL, stalled_since = NULL
             WHERE projection = $1
             RETURNING 1)
         SELECT pg_notify($4, current_schema()) FROM saved",
    )
    .bind(projection.name())
    .bind(sequence as i64)
    .bind(recorded_at)
    .bind(CHECKPOINT_CHANNEL)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The checkpoint without locking: for readiness, metrics and read-your-writes.
pub async fn read_checkpoint(
    conn: &mut PgConnection,
    projection: Projection,
) -> Result<(u64, Option<chrono::DateTime<chrono::Utc>>), sqlx::Error> {
    let (last, recorded): (i64, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
        "SELECT last_sequence, last_recorded_at FROM checkpoints WHERE projection = $1",
    )
    .bind(projection.name())
    .fetch_one(&mut *conn)
    .await?;
    Ok((last as u64, recorded))
}

#[cfg(test)]
mod tests {
    use super::Projection;

    /// The NATS permissions grant the projector's durable consumers by name
    /// (`event_store::access`), which cannot depend on this crate.
    #[test]
    fn the_nats_permissions_know_every_projection() {
        assert_eq!(
            Projection::ALL.map(Projection::name),
            event_store::access::PROJECTION_SCHEMAS
        );
    }
}
