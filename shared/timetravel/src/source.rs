//! Reading events from the audit log and decoding them into domain [`Event`]s, in batches on the
//! blocking pool while the next rows arrive.

use chrono::{DateTime, Utc};
use event_store::{CloudEvent, parse_event_type};
use std::collections::VecDeque;

use futures::TryStreamExt;
use remediation_domain::event::ABOUT_THE_LOG;
use remediation_domain::{AggregateRef, AggregateState, CURRENT_VERSION, DecodeError, Event};
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgConnection, Postgres, Row};
use tokio::task::JoinHandle;

use crate::state::aggregate_ref;
use crate::{AsOf, Axis, Error};

/// The aggregate types whose states make up the plan, as an SQL list. The log holds others too —
/// the ledger of chain digests, the record of audit-trail reads, quarantine decisions — which
/// concern the log itself.
pub(crate) const PLAN_KINDS: &str = "('unit', 'group', 'plan', 'item', 'task', 'report')";

/// How an audit row becomes a domain event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Decoding {
    /// From the columns the audit projection copied out of the envelope — `event_type`,
    /// `aggregate_type`, `aggregate_id`, `payload` (the envelope's `type`, `aggregatetype`,
    /// `aggregateid`, `data`) — by [`decode_payload`]: what `CloudEvent::decode` does with those
    /// attributes (upcasting included). PostgreSQL renders a ~1 KB envelope to text in about
    /// 10 µs but the ~0.2 KB payload in about 3 µs, which decides how fast a fold is.
    #[default]
    Columns,
    /// The whole envelope (`envelope` jsonb) as an [`event_store::CloudEvent`], then
    /// `CloudEvent::decode`.
    Envelope,
}

/// [`Decoding::Envelope`]'s columns: the audit table stores the data once, as the payload, so
/// the whole envelope is put together again ([`readmodel::AUDIT_ENVELOPE`]).
static ENVELOPE_COLUMNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "stream_sequence, position, recorded_at, effective_at, {} AS envelope",
        readmodel::AUDIT_ENVELOPE
    )
});

impl Decoding {
    /// The columns a fold selects, in the order [`decode_row`] reads them.
    pub(crate) fn columns(self) -> &'static str {
        match self {
            Decoding::Columns => {
                "stream_sequence, position, recorded_at, effective_at, event_type, aggregate_type, aggregate_id, payload::text"
            }
            Decoding::Envelope => ENVELOPE_COLUMNS.as_str(),
        }
    }
}

/// One decoded event with its place on both axes.
#[derive(Debug, Clone)]
pub struct LoggedEvent {
    pub stream_sequence: i64,
    pub position: i32,
    pub recorded_at: DateTime<Utc>,
    pub effective_at: DateTime<Utc>,
    pub target: AggregateRef,
    pub event: Event,
}

/// `Event::decode(kind, name, version, payload)`, reading the payload's JSON text straight into
/// the aggregate's event type when the version is current. `Event::decode` wraps the payload as
/// `{"event": name, "data": payload}` and deserialises that into the aggregate's adjacently tagged
/// event enum; at the current version no upcaster applies, so deserialising the same document
/// from its text, with the same `Deserialize` implementations, is the same decoding — without
/// building a `serde_json::Value` tree and buffering it once more for the enum. Anything else
/// (older versions, an aggregate type not listed here, a payload that does not decode) goes
/// through `Event::decode` itself.
pub fn decode_payload(
    kind: &str,
    name: &str,
    version: u32,
    payload: &str,
) -> Result<Event, DecodeError> {
    if version == CURRENT_VERSION && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        let tagged = if payload == "null" {
            format!("{{\"event\":\"{name}\"}}")
        } else {
            format!("{{\"event\":\"{name}\",\"data\":{payload}}}")
        };
        let direct = match kind {
            "unit" => serde_json::from_str(&tagged).map(Event::Unit).ok(),
            "group" => serde_json::from_str(&tagged).map(Event::Group).ok(),
            "plan" => serde_json::from_str(&tagged).map(Event::Plan).ok(),
            "item" => serde_json::from_str(&tagged).map(Event::Item).ok(),
            "task" => serde_json::from_str(&tagged).map(Event::Task).ok(),
            "report" => serde_json::from_str(&tagged).map(Event::Report).ok(),
            _ => None,
        };
        if let Some(event) = direct {
            return Ok(event);
        }
    }
    let data: Value = serde_json::from_str(payload).map_err(|source| DecodeError::Payload {
        kind: kind.to_owned(),
        name: name.to_owned(),
        source,
    })?;
    Event::decode(kind, name, version, data)
}

/// Decodes one audit row (selected with `decoding.columns()`); `None` for events outside the
/// plan's state (the ledger, audit-trail reads, quarantine decisions).
pub(crate) fn decode_row(row: &PgRow, decoding: Decoding) -> Result<Option<LoggedEvent>, Error> {
    let stream_sequence: i64 = row.try_get(0)?;
    let position: i32 = row.try_get(1)?;
    let undecodable = |reason: String| Error::Undecodable {
        sequence: stream_sequence,
        position,
        reason,
    };
    let (kind, id, event) = match decoding {
        Decoding::Columns => {
            let event_type: &str = row.try_get(4)?;
            let kind: String = row.try_get(5)?;
            let id: String = row.try_get(6)?;
            if ABOUT_THE_LOG.contains(&kind.as_str()) {
                return Ok(None);
            }
            let payload: &str = row
                .try_get(7)
                .map_err(|e| undecodable(format!("payload: {e}")))?;
            let (event_kind, name, version) = parse_event_type(event_type)
                .ok_or_else(|| undecodable(format!("unknown event type {event_type:?}")))?;
            if event_kind != kind {
                return Err(undecodable(format!(
                    "event type {event_type} on a {kind} aggregate"
                )));
            }
            let event = decode_payload(event_kind, name, version, payload)
                .map_err(|e| undecodable(e.to_string()))?;
            (kind, id, event)
        }
        Decoding::Envelope => {
            let Json(envelope): Json<CloudEvent> = row
                .try_get(4)
                .map_err(|e| undecodable(format!("envelope: {e}")))?;
            if ABOUT_THE_LOG.contains(&envelope.aggregatetype.as_str()) {
                return Ok(None);
            }
            let event = envelope.decode().map_err(|e| undecodable(e.to_string()))?;
            (envelope.aggregatetype, envelope.aggregateid, event)
        }
    };
    let target = aggregate_ref(&kind, &id)
        .ok_or_else(|| undecodable(format!("unknown aggregate {kind}/{id}")))?;
    Ok(Some(LoggedEvent {
        stream_sequence,
        position,
        recorded_at: row.try_get(2)?,
        effective_at: row.try_get(3)?,
        target,
        event,
    }))
}

/// Rows decoded together on a blocking thread.
const DECODE_BATCH: usize = 256;

/// Decoding (JSON, Unicode normalisation of every text) costs several times what PostgreSQL
/// spends sending a row, so rows are decoded in batches on the blocking pool, several batches at
/// once, while the next rows arrive; events are still handed to `each` in the query's order.
fn decoders() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
}

fn decode_batch(rows: &[PgRow], decoding: Decoding) -> Result<Vec<LoggedEvent>, Error> {
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(event) = decode_row(row, decoding)? {
            events.push(event);
        }
    }
    Ok(events)
}

/// Streams `query`'s rows (selecting `decoding.columns()`) through `each`, in the query's
/// order, skipping rows past stream sequence `head`; returns how many events it passed on.
pub(crate) async fn for_each_event(
    conn: &mut PgConnection,
    query: Query<'_, Postgres, PgArguments>,
    decoding: Decoding,
    head: i64,
    mut each: impl FnMut(LoggedEvent) -> Result<(), Error>,
) -> Result<u64, Error> {
    let mut rows = query.fetch(conn);
    let mut count = 0;
    let mut pending: VecDeque<JoinHandle<Result<Vec<LoggedEvent>, Error>>> = VecDeque::new();
    let mut batch = Vec::with_capacity(DECODE_BATCH);
    let mut apply = |events: Vec<LoggedEvent>| -> Result<(), Error> {
        for event in events {
            if event.stream_sequence <= head {
                each(event)?;
                count += 1;
            }
        }
        Ok(())
    };
    let joined = |handle: JoinHandle<Result<Vec<LoggedEvent>, Error>>| async move {
        handle
            .await
            .map_err(|e| Error::Invalid(format!("decoding events failed: {e}")))?
    };
    while let Some(row) = rows.try_next().await? {
        batch.push(row);
        if batch.len() == DECODE_BATCH {
            let rows = std::mem::replace(&mut batch, Vec::with_capacity(DECODE_BATCH));
            pending.push_back(tokio::task::spawn_blocking(move || {
                decode_batch(&rows, decoding)
            }));
            if pending.len() >= decoders()
                && let Some(handle) = pending.pop_front()
            {
                apply(joined(handle).await?)?;
            }
        }
    }
    drop(rows);
    while let Some(handle) = pending.pop_front() {
        apply(joined(handle).await?)?;
    }
    apply(decode_batch(&batch, decoding)?)?;
    Ok(count)
}

/// The audit log's last stream sequence (0 when empty).
pub(crate) async fn head(conn: &mut PgConnection, schema: &str) -> Result<i64, Error> {
    Ok(sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT coalesce(max(stream_sequence), 0)::int8 FROM {schema}.audit_log"
    )))
    .fetch_one(conn)
    .await?)
}

/// Events of `schema`'s audit log as of `as_of`, optionally of one aggregate only, in the
/// axis's order, up to stream sequence `head`.
pub async fn events_as_of(
    conn: &mut PgConnection,
    schema: &str,
    decoding: Decoding,
    as_of: AsOf,
    target: Option<&AggregateRef>,
    mut each: impl FnMut(LoggedEvent) -> Result<(), Error>,
) -> Result<u64, Error> {
    let (time, order) = match as_of.axis {
        Axis::Recorded => ("recorded_at", "stream_sequence, position"),
        Axis::Effective => ("effective_at", "effective_at, stream_sequence, position"),
    };
    let filter = if target.is_some() {
        "aggregate_type = $2 AND aggregate_id = $3"
    } else {
        "aggregate_type IN ('unit', 'group', 'plan', 'item', 'task', 'report')"
    };
    let columns = decoding.columns();
    let sql = format!(
        "SELECT {columns} FROM {schema}.audit_log WHERE {time} <= $1 AND {filter} ORDER BY {order}"
    );
    let mut query = sqlx::query(AssertSqlSafe(sql)).bind(as_of.instant);
    if let Some(target) = target {
        query = query.bind(target.kind()).bind(target.id());
    }
    for_each_event(conn, query, decoding, i64::MAX, &mut each).await
}

/// One aggregate's state as of `as_of`, from its own events (the audit log's aggregate index).
pub async fn fold_aggregate(
    conn: &mut PgConnection,
    schema: &str,
    decoding: Decoding,
    as_of: AsOf,
    target: &AggregateRef,
) -> Result<AggregateState, Error> {
    let mut state = AggregateState::initial(target);
    events_as_of(conn, schema, decoding, as_of, Some(target), |e| {
        state = std::mem::replace(&mut state, AggregateState::initial(target)).evolve(&e.event);
        Ok(())
    })
    .await?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::history::History;

    #[test]
    fn decoding_payloads_directly_equals_event_decode() {
        let mut history = History::new(5, 3_000, chrono::Duration::days(120));
        let mut commits = history.seed_commits();
        while !history.done() {
            commits.push(history.next_commit());
        }
        let mut kinds = std::collections::BTreeSet::new();
        for envelope in commits.iter().flat_map(|c| &c.events) {
            let (kind, name, version) = parse_event_type(&envelope.event_type).expect("event type");
            let payload = serde_json::to_string(&envelope.data).expect("payload");
            let direct = decode_payload(kind, name, version, &payload).expect("direct");
            assert_eq!(direct, envelope.decode().expect("CloudEvent::decode"));
            kinds.insert(format!("{kind}.{name}"));
        }
        assert!(kinds.len() >= 15, "{kinds:?}");
        // Not current, or not a plan aggregate: through Event::decode and its errors.
        assert!(decode_payload("item", "status_changed", 99, "{}").is_err());
        assert!(decode_payload("nothing", "x", 1, "{}").is_err());
        assert!(decode_payload("item", "status_changed", 1, "{\"to\": 1}").is_err());
    }
}
