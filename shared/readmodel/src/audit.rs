//! The audit projection: one row per event. Its data is stored once, in `payload`; `envelope`
//! holds every other member of the envelope, and [`ENVELOPE`] puts the two together again.

use event_store::{CloudEvent, Commit};
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::ApplyError;

/// The whole envelope of an audit row as SQL: the stored envelope, which lacks `data`, with the
/// payload put back as its `data`. jsonb keeps its keys in its own order whatever order they
/// were added in, so this is the very value the event was stored with — the one its hash covers
/// and the one readers answer with. Unqualified, for any select list over `audit_log`.
pub const ENVELOPE: &str = "(envelope || jsonb_build_object('data', payload))";

/// Inserts every event of `commits` with one statement: the audit log only ever appends, so a
/// batch becomes one round trip however many events it holds. Each envelope is serialised once,
/// straight into the statement's parameters, and PostgreSQL splits it into `payload` (its data)
/// and `envelope` (the rest): no intermediate JSON tree is built per event on this side.
pub async fn apply(conn: &mut PgConnection, commits: &[Commit]) -> Result<(), ApplyError> {
    let events = commits.iter().flat_map(|c| {
        c.events
            .iter()
            .enumerate()
            .map(move |(position, e)| (c.sequence, position, e))
    });
    let mut columns = Columns::default();
    for (sequence, position, event) in events {
        columns.sequence.push(sequence as i64);
        columns.position.push(position as i32);
        columns.id.push(event.id);
        columns.event_type.push(&event.event_type);
        columns.aggregate_type.push(&event.aggregatetype);
        columns.aggregate_id.push(&event.aggregateid);
        columns.recorded_at.push(event.time);
        columns.effective_at.push(event.effectivetime);
        columns.actor_user.push(&event.actoruser);
        columns.actor_unit.push(event.actorunit.as_deref());
        columns.actor_role.push(&event.actorrole);
        columns.correlation_id.push(&event.correlationid);
        columns.causation_id.push(&event.causationid);
        columns.command_id.push(event.commandid);
        columns.command_name.push(&event.commandname);
        columns.whole.push(Json(event));
    }
    // The data goes to `payload` only: written twice, it doubled the table (see ENVELOPE).
    sqlx::query(
        "INSERT INTO audit_log (stream_sequence, position, event_id, event_type, aggregate_type, aggregate_id,
             recorded_at, effective_at, actor_user, actor_unit, actor_role, correlation_id, causation_id,
             command_id, command_name, payload, envelope)
         SELECT s, p, i, t, at, ai, r, e, au, un, ar, co, ca, ci, cn, w -> 'data', w - 'data'
         FROM UNNEST($1::int8[], $2::int4[], $3::uuid[], $4::text[], $5::text[], $6::text[],
             $7::timestamptz[], $8::timestamptz[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
             $14::uuid[], $15::text[], $16::jsonb[])
             AS u(s, p, i, t, at, ai, r, e, au, un, ar, co, ca, ci, cn, w)",
    )
    .bind(columns.sequence)
    .bind(columns.position)
    .bind(columns.id)
    .bind(columns.event_type)
    .bind(columns.aggregate_type)
    .bind(columns.aggregate_id)
    .bind(columns.recorded_at)
    .bind(columns.effective_at)
    .bind(columns.actor_user)
    .bind(columns.actor_unit)
    .bind(columns.actor_role)
    .bind(columns.correlation_id)
    .bind(columns.causation_id)
    .bind(columns.command_id)
    .bind(columns.command_name)
    .bind(columns.whole)
    .execute(conn)
    .await?;
    Ok(())
}

/// The audit rows of a batch, column by column, for UNNEST; texts borrowed from the commits.
#[derive(Default)]
struct Columns<'a> {
    sequence: Vec<i64>,
    position: Vec<i32>,
    id: Vec<uuid::Uuid>,
    event_type: Vec<&'a str>,
    aggregate_type: Vec<&'a str>,
    aggregate_id: Vec<&'a str>,
    recorded_at: Vec<chrono::DateTime<chrono::Utc>>,
    effective_at: Vec<chrono::DateTime<chrono::Utc>>,
    actor_user: Vec<&'a str>,
    actor_unit: Vec<Option<&'a str>>,
    actor_role: Vec<&'a str>,
    correlation_id: Vec<&'a str>,
    causation_id: Vec<&'a str>,
    command_id: Vec<uuid::Uuid>,
    command_name: Vec<&'a str>,
    /// The whole envelope, data included.
    whole: Vec<Json<&'a CloudEvent>>,
}
