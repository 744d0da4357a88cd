//! The audit projection: one row per event. Its data is stored once, in `payload`; `envelope`
//! holds every other member of the envelope, and [`ENVELOPE`] puts the two together again.

use event_store::{CloudEvent, HashedCommit, write_envelope_without_data};
use sqlx::PgConnection;

use crate::ApplyError;
use crate::copy::{BinaryRows, CopyIn};

/// The whole envelope of an audit row as SQL: the stored envelope, which lacks `data`, with the
/// payload put back as its `data`. jsonb keeps its keys in its own order whatever order they
/// were added in, so this is the very value the event was stored with — the one its hash covers
/// and the one readers answer with. Unqualified, for any select list over `audit_log`.
pub const ENVELOPE: &str = "(envelope || jsonb_build_object('data', payload))";

/// The audit table's columns, in the order [`apply`] writes them.
const COLUMNS: [&str; 17] = [
    "stream_sequence",
    "position",
    "event_id",
    "event_type",
    "aggregate_type",
    "aggregate_id",
    "recorded_at",
    "effective_at",
    "actor_user",
    "actor_unit",
    "actor_role",
    "correlation_id",
    "causation_id",
    "command_id",
    "command_name",
    "payload",
    "envelope",
];

/// Appends every event of `commits` with one binary `COPY`: the audit log only ever appends, so
/// a batch is one round trip however many events it holds, and PostgreSQL takes the rows as they
/// come instead of unpacking an array per column. Each event's data and the rest of its
/// envelope are serialised once each, straight into the rows; no JSON tree is built per event.
/// The data goes to `payload` only: written twice, it doubled the table (see [`ENVELOPE`]).
pub async fn apply(conn: &mut PgConnection, commits: &[&HashedCommit]) -> Result<(), ApplyError> {
    let statement = format!(
        "COPY audit_log ({}) FROM STDIN (FORMAT binary)",
        COLUMNS.join(", ")
    );
    let mut copy = CopyIn::new(conn, &statement, COLUMNS.len());
    for commit in commits {
        for (position, event) in commit.events.iter().enumerate() {
            copy.row(|rows| write_row(rows, commit.sequence, position, event))
                .await?;
        }
    }
    copy.finish().await?;
    Ok(())
}

/// One event's fields, in the order of [`COLUMNS`].
fn write_row(
    rows: &mut BinaryRows,
    sequence: u64,
    position: usize,
    event: &CloudEvent,
) -> Result<(), sqlx::Error> {
    rows.field(&(sequence as i64))?;
    rows.field(&(position as i32))?;
    rows.field(&event.id)?;
    rows.field(&event.event_type.as_str())?;
    rows.field(&event.aggregatetype.as_str())?;
    rows.field(&event.aggregateid.as_str())?;
    rows.field(&event.time)?;
    rows.field(&event.effectivetime)?;
    rows.field(&event.actoruser.as_str())?;
    rows.field(&event.actorunit.as_deref())?;
    rows.field(&event.actorrole.as_str())?;
    rows.field(&event.correlationid.as_str())?;
    rows.field(&event.causationid.as_str())?;
    rows.field(&event.commandid)?;
    rows.field(&event.commandname.as_str())?;
    rows.jsonb(|out| serde_json::to_writer(out, &event.data))?;
    rows.jsonb(|out| {
        write_envelope_without_data(event, out);
        Ok(())
    })
}
