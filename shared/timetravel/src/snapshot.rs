//! Stored checkpoints of folded state, so that an as-of query folds at most a snapshot interval
//! of events however long the history grows.
//!
//! Table `fold_snapshots` in the audit schema (migration `audit/0002_fold_snapshots.sql`) holds,
//! per axis, the serialised [`PlanState`] after every `every` events (default
//! [`DEFAULT_EVERY`]) of that axis's order.
//!
//! **Recorded axis** — stream order. A snapshot at stream sequence S (always at a commit's end)
//! is the fold of commits 1..=S; the log only grows at its end, so nothing invalidates it. It is
//! usable for an instant T when every event in it was recorded at or before T
//! (`max_recorded_at <= T`); the query then folds the later events recorded at or before T.
//! Recorded times are normally increasing in stream order, but command services on different
//! machines can disagree by a little, so the query does not assume it: each snapshot also keeps
//! the earliest recorded time of the events since the previous snapshot, and the query reads only
//! the stretches that can hold an event recorded at or before T, plus the unsnapshotted tail.
//!
//! **Effective axis** — `(effective_at, stream_sequence, position)` order. A snapshot at key K
//! built from the log up to stream sequence H (`built_through`) is the fold of the events with
//! key ≤ K and sequence ≤ H. A backdated event recorded later (sequence > H) with key ≤ K belongs
//! inside it, so the snapshot no longer answers for the log. Two rules keep answers exact:
//!
//! 1. the builder ([`refresh`]), holding an advisory lock, reads the events that arrived since
//!    its last run (`fold_snapshot_progress.validated_through` < sequence ≤ head), deletes every
//!    effective snapshot at or after the smallest key among them, records the new head as
//!    validated, all in one transaction, and then folds forward from the latest surviving
//!    snapshot writing new ones;
//! 2. a reader takes the log head H0 first, then `validated_through` V, computes the smallest key
//!    among events with V < sequence ≤ H0 (the few not yet validated) and uses only a snapshot
//!    before that key with `built_through` ≤ H0.
//!
//! An event with the same effective time as a snapshot's key but recorded later sorts after it
//! (its stream sequence is larger), so only truly backdated events invalidate anything, and only
//! the snapshots after their effective time.
//!
//! **Reading.** A query takes the log head first and answers for the log up to it. It starts
//! decoding the snapshot's state (stored in frames that decode in parallel) while the events after
//! it stream in and decode in batches on the blocking pool; the events are applied once the state
//! is there. An optional in-process cache keeps decoded states by key: a key's content never
//! changes (an invalidated snapshot is deleted, its successor has another key).

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::{FutureExt, TryStreamExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use tokio::task::JoinHandle;

use crate::source::{Decoding, LoggedEvent, PLAN_KINDS, decode_row, for_each_event, head};
use remediation_domain::{AggregateRef, AggregateState};

use crate::state::PlanState;
use crate::{AsOf, Axis, Error, FoldStats, Folded, SnapshotCache, TimeTravel};

/// Events between two snapshots of one axis unless configured otherwise. A query folds half of
/// this on average after its snapshot, all of it at worst, which sets the p99; 5 000 keeps it
/// well under 100 ms at 100 000 events on two cores (`cargo bench -p stack-tests --bench as-of`), while a
/// snapshot stores (compressed) about a seventh of its decoded size.
pub const DEFAULT_EVERY: u64 = 5_000;

/// Encoding of `fold_snapshots.state`:
/// 1 — the JSON of a [`PlanState`];
/// 2 — the aggregates in [`CHUNKS`] frames, each a little-endian `u32` length and the JSON list of
///     its `[reference, state]` pairs, so that a large state decodes on several threads at once.
const FORMAT: i32 = 2;

/// Frames of a format-2 state.
const CHUNKS: usize = 8;

/// Encodes `state` in the current [`FORMAT`].
fn encode_state(state: &PlanState) -> Result<Vec<u8>, Error> {
    let aggregates: Vec<_> = state.aggregates().collect();
    let per_chunk = aggregates.len().div_ceil(CHUNKS).max(1);
    let mut bytes = Vec::new();
    for chunk in aggregates.chunks(per_chunk) {
        let json = serde_json::to_vec(chunk).map_err(|e| Error::Snapshot(e.to_string()))?;
        let length = u32::try_from(json.len())
            .map_err(|_| Error::Snapshot("a snapshot chunk exceeds 4 GiB".to_owned()))?;
        bytes.extend_from_slice(&length.to_le_bytes());
        bytes.extend_from_slice(&json);
    }
    Ok(bytes)
}

/// Where the frames of a format-2 state lie: (start, length) of each.
fn frames(bytes: &[u8]) -> Result<Vec<(usize, usize)>, Error> {
    let truncated = || Error::Snapshot("truncated snapshot frame".to_owned());
    let mut frames = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let header: [u8; 4] = bytes
            .get(at..at + 4)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(truncated)?;
        let length = u32::from_le_bytes(header) as usize;
        let start = at + 4;
        if bytes.len() < start + length {
            return Err(truncated());
        }
        frames.push((start, length));
        at = start + length;
    }
    Ok(frames)
}

/// Decodes a stored state off the async threads (a large plan is megabytes of JSON), the frames
/// of format 2 in parallel.
pub async fn decode_state(format: i32, bytes: Vec<u8>) -> Result<PlanState, Error> {
    let invalid =
        |e: serde_json::Error| Error::Snapshot(format!("stored state does not decode: {e}"));
    match format {
        1 => tokio::task::spawn_blocking(move || serde_json::from_slice::<PlanState>(&bytes))
            .await
            .map_err(|e| Error::Snapshot(e.to_string()))?
            .map_err(invalid),
        2 => {
            let spans = frames(&bytes)?;
            let bytes = Arc::new(bytes);
            let mut handles = Vec::with_capacity(spans.len());
            for (start, length) in spans {
                let bytes = bytes.clone();
                handles.push(tokio::task::spawn_blocking(move || {
                    serde_json::from_slice::<Vec<(AggregateRef, AggregateState)>>(
                        &bytes[start..start + length],
                    )
                }));
            }
            let mut pairs = Vec::new();
            for handle in handles {
                pairs.extend(
                    handle
                        .await
                        .map_err(|e| Error::Snapshot(e.to_string()))?
                        .map_err(invalid)?,
                );
            }
            Ok(PlanState::from_pairs(pairs))
        }
        other => Err(Error::Snapshot(format!("unknown snapshot format {other}"))),
    }
}

/// Identifies one stored snapshot; its content is a function of this key and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotKey {
    pub axis: Axis,
    /// Effective axis: the effective time of the last event folded in.
    pub effective_at: Option<DateTime<Utc>>,
    pub stream_sequence: i64,
    pub position: i32,
    pub built_through: i64,
    /// Events folded into the snapshot.
    pub events: u64,
}

/// What a refresh did on one axis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AxisReport {
    /// Snapshots deleted because a backdated event belongs inside them.
    pub invalidated: u64,
    pub written: u64,
    /// Snapshots stored after the refresh.
    pub stored: u64,
    pub events_folded: u64,
    pub seconds: f64,
}

/// What a refresh did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotReport {
    /// The log head the snapshots are now valid for.
    pub head_sequence: i64,
    pub every: u64,
    pub recorded: AxisReport,
    pub effective: AxisReport,
}

fn key_from(
    axis: Axis,
    (effective_at, stream_sequence, position, built_through, events): (
        Option<DateTime<Utc>>,
        i64,
        i32,
        i64,
        i64,
    ),
) -> SnapshotKey {
    SnapshotKey {
        axis,
        effective_at,
        stream_sequence,
        position,
        built_through,
        events: u64::try_from(events).unwrap_or(0),
    }
}

type KeyRow = (Option<DateTime<Utc>>, i64, i32, i64, i64);

/// Sequence, position, built_through, events and max_recorded_at of a recorded snapshot.
type RecordedRow = (i64, i32, i64, i64, Option<DateTime<Utc>>);

/// The stored encoding and bytes of `key`; `None` if the row is gone (deleted by a concurrent
/// refresh).
async fn state_bytes(
    conn: &mut PgConnection,
    schema: &str,
    key: &SnapshotKey,
) -> Result<Option<(i32, Vec<u8>)>, Error> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT format, state FROM {schema}.fold_snapshots
         WHERE axis = $1 AND stream_sequence = $2 AND position = $3 AND built_through = $4"
    )))
    .bind(key.axis.as_str())
    .bind(key.stream_sequence)
    .bind(key.position)
    .bind(key.built_through)
    .fetch_optional(conn)
    .await?)
}

/// The stored state of `key`; `None` if the row is gone.
async fn load_state(
    conn: &mut PgConnection,
    schema: &str,
    key: &SnapshotKey,
) -> Result<Option<PlanState>, Error> {
    match state_bytes(conn, schema, key).await? {
        Some((format, bytes)) => Ok(Some(decode_state(format, bytes).await?)),
        None => Ok(None),
    }
}

/// The state a fold starts from: ready, or still decoding on a blocking thread while the events
/// after it stream in (decoding a large state takes as long as reading thousands of events).
enum Base {
    Ready(PlanState),
    Decoding(JoinHandle<Result<PlanState, Error>>),
}

/// Folds events onto a [`Base`], holding them back while it is still decoding.
struct Folder {
    base: Base,
    held: Vec<LoggedEvent>,
    /// Where a freshly decoded state is kept for later queries.
    cache: Option<(SnapshotCache, SnapshotKey)>,
}

impl Folder {
    fn ready(&mut self, state: PlanState) -> Result<(), Error> {
        if let Some((cache, key)) = self.cache.take() {
            cache
                .lock()
                .map_err(|_| poisoned())?
                .put(key, Arc::new(state.clone()));
        }
        let mut state = state;
        for event in self.held.drain(..) {
            state.apply(&event.target, &event.event);
        }
        self.base = Base::Ready(state);
        Ok(())
    }

    fn push(&mut self, event: LoggedEvent) -> Result<(), Error> {
        if let Base::Decoding(handle) = &mut self.base
            && handle.is_finished()
        {
            let state = match handle.now_or_never() {
                Some(done) => done.map_err(|e| Error::Snapshot(e.to_string()))??,
                None => return Err(Error::Snapshot("decoding vanished".to_owned())),
            };
            self.ready(state)?;
        }
        match &mut self.base {
            Base::Ready(state) => state.apply(&event.target, &event.event),
            Base::Decoding(_) => self.held.push(event),
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<PlanState, Error> {
        if let Base::Decoding(handle) = &mut self.base {
            let state = handle.await.map_err(|e| Error::Snapshot(e.to_string()))??;
            self.ready(state)?;
        }
        match self.base {
            Base::Ready(state) => Ok(state),
            Base::Decoding(_) => Err(Error::Snapshot("decoding vanished".to_owned())),
        }
    }
}

fn decoding(format: i32, bytes: Vec<u8>) -> Result<Base, Error> {
    Ok(Base::Decoding(tokio::spawn(decode_state(format, bytes))))
}

impl TimeTravel {
    /// The state of `key`, from the cache or decoding; `None` if the row is gone.
    async fn snapshot_base(
        &self,
        conn: &mut PgConnection,
        key: &SnapshotKey,
    ) -> Result<Option<Folder>, Error> {
        if let Some(cache) = &self.cache
            && let Some(state) = cache.lock().map_err(|_| poisoned())?.get(key).cloned()
        {
            let state = Arc::try_unwrap(state).unwrap_or_else(|shared| (*shared).clone());
            return Ok(Some(Folder {
                base: Base::Ready(state),
                held: Vec::new(),
                cache: None,
            }));
        }
        let Some((format, bytes)) = state_bytes(conn, &self.schema, key).await? else {
            return Ok(None);
        };
        Ok(Some(Folder {
            base: decoding(format, bytes)?,
            held: Vec::new(),
            cache: self.cache.clone().map(|c| (c, *key)),
        }))
    }
}

fn poisoned() -> Error {
    Error::Snapshot("the snapshot cache lock is poisoned".to_owned())
}

/// The latest recorded-axis snapshot usable at `t`, and the stream-sequence ranges whose events
/// recorded at or before `t` remain to be folded after it.
async fn recorded_start(
    conn: &mut PgConnection,
    schema: &str,
    t: DateTime<Utc>,
    head: i64,
) -> Result<(Option<SnapshotKey>, Vec<(i64, i64)>), Error> {
    let row: Option<KeyRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT effective_at, stream_sequence, position, built_through, events
         FROM {schema}.fold_snapshots
         WHERE axis = 'recorded' AND max_recorded_at <= $1 AND stream_sequence <= $2
         ORDER BY stream_sequence DESC LIMIT 1"
    )))
    .bind(t)
    .bind(head)
    .fetch_optional(&mut *conn)
    .await?;
    let key = row.map(|r| key_from(Axis::Recorded, r));
    let from = key.map_or(0, |k| k.stream_sequence);
    // Later snapshots' chunks that hold an event recorded at or before `t` (clock skew), and
    // where the unsnapshotted tail begins.
    let (upto, last): (Option<i64>, Option<i64>) = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT max(stream_sequence) FILTER (WHERE chunk_min_recorded_at <= $1), max(stream_sequence)
         FROM {schema}.fold_snapshots
         WHERE axis = 'recorded' AND stream_sequence > $2 AND stream_sequence <= $3"
    )))
    .bind(t)
    .bind(from)
    .bind(head)
    .fetch_one(&mut *conn)
    .await?;
    let skewed_until = upto.unwrap_or(from);
    let tail_from = last.unwrap_or(from).max(skewed_until);
    let ranges = if skewed_until == tail_from {
        vec![(from, head)]
    } else {
        vec![(from, skewed_until), (tail_from, head)]
    };
    Ok((key, ranges))
}

/// The latest effective-axis snapshot usable at `t` for the log up to `head`.
async fn effective_start(
    conn: &mut PgConnection,
    schema: &str,
    t: DateTime<Utc>,
    head: i64,
) -> Result<Option<SnapshotKey>, Error> {
    let validated: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT validated_through FROM {schema}.fold_snapshot_progress WHERE axis = 'effective'"
    )))
    .fetch_optional(&mut *conn)
    .await?;
    let validated = validated.unwrap_or(0);
    // The earliest key among events no refresh has checked the snapshots against yet.
    let unchecked: Option<(DateTime<Utc>, i64, i32)> = if validated < head {
        sqlx::query_as(AssertSqlSafe(format!(
            "SELECT effective_at, stream_sequence, position FROM {schema}.audit_log
             WHERE stream_sequence > $1 AND stream_sequence <= $2 AND aggregate_type IN {PLAN_KINDS}
             ORDER BY effective_at, stream_sequence, position LIMIT 1"
        )))
        .bind(validated)
        .bind(head)
        .fetch_optional(&mut *conn)
        .await?
    } else {
        None
    };
    let row: Option<KeyRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT effective_at, stream_sequence, position, built_through, events
         FROM {schema}.fold_snapshots
         WHERE axis = 'effective' AND effective_at <= $1 AND built_through <= $2
           AND ($3::timestamptz IS NULL OR (effective_at, stream_sequence, position) < ($3, $4::int8, $5::int4))
         ORDER BY effective_at DESC, stream_sequence DESC, position DESC LIMIT 1"
    )))
    .bind(t)
    .bind(head)
    .bind(unchecked.map(|u| u.0))
    .bind(unchecked.map(|u| u.1))
    .bind(unchecked.map(|u| u.2))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| key_from(Axis::Effective, r)))
}

fn empty() -> Folder {
    Folder {
        base: Base::Ready(PlanState::default()),
        held: Vec::new(),
        cache: None,
    }
}

/// Picks a snapshot and starts loading it; retries when a concurrent refresh deleted the one
/// picked.
async fn start(
    tt: &TimeTravel,
    conn: &mut PgConnection,
    as_of: AsOf,
    head: i64,
) -> Result<(Folder, Option<SnapshotKey>, Vec<(i64, i64)>), Error> {
    for _ in 0..3 {
        let (key, ranges) = match as_of.axis {
            Axis::Recorded => recorded_start(conn, &tt.schema, as_of.instant, head).await?,
            Axis::Effective => (
                effective_start(conn, &tt.schema, as_of.instant, head).await?,
                vec![],
            ),
        };
        let Some(key) = key else {
            return Ok((empty(), None, ranges));
        };
        if let Some(folder) = tt.snapshot_base(conn, &key).await? {
            return Ok((folder, Some(key), ranges));
        }
    }
    // Refreshes kept replacing the snapshots under us: fold from the start instead.
    let ranges = match as_of.axis {
        Axis::Recorded => vec![(0, head)],
        Axis::Effective => vec![],
    };
    Ok((empty(), None, ranges))
}

/// The fold behind every as-of query (see the module documentation).
pub(crate) async fn fold_as_of(
    tt: &TimeTravel,
    conn: &mut PgConnection,
    as_of: AsOf,
) -> Result<Folded, Error> {
    let schema = &tt.schema;
    let columns = tt.decoding.columns();
    let head = head(conn, schema).await?;
    let (mut folder, snapshot, ranges) = if tt.use_snapshots {
        start(tt, conn, as_of, head).await?
    } else {
        (empty(), None, vec![(0, head)])
    };
    let mut folded = 0;
    match as_of.axis {
        Axis::Recorded => {
            let sql = format!(
                "SELECT {columns} FROM {schema}.audit_log
                 WHERE stream_sequence > $1 AND stream_sequence <= $2 AND recorded_at <= $3
                   AND aggregate_type IN {PLAN_KINDS}
                 ORDER BY stream_sequence, position"
            );
            for (from, to) in ranges {
                if from >= to {
                    continue;
                }
                let query = sqlx::query(AssertSqlSafe(sql.clone()))
                    .bind(from)
                    .bind(to)
                    .bind(as_of.instant);
                folded +=
                    for_each_event(conn, query, tt.decoding, head, |e| folder.push(e)).await?;
            }
        }
        Axis::Effective => {
            let query = match snapshot.and_then(|s| s.effective_at.map(|e| (e, s))) {
                Some((effective_at, s)) => sqlx::query(AssertSqlSafe(format!(
                    "SELECT {columns} FROM {schema}.audit_log
                     WHERE (effective_at, stream_sequence, position) > ($1, $2, $3)
                       AND effective_at <= $4 AND aggregate_type IN {PLAN_KINDS}
                     ORDER BY effective_at, stream_sequence, position"
                )))
                .bind(effective_at)
                .bind(s.stream_sequence)
                .bind(s.position)
                .bind(as_of.instant),
                None => sqlx::query(AssertSqlSafe(format!(
                    "SELECT {columns} FROM {schema}.audit_log
                     WHERE effective_at <= $1 AND aggregate_type IN {PLAN_KINDS}
                     ORDER BY effective_at, stream_sequence, position"
                )))
                .bind(as_of.instant),
            };
            folded = for_each_event(conn, query, tt.decoding, head, |e| folder.push(e)).await?;
        }
    }
    let state = folder.finish().await?;
    Ok(Folded {
        as_of,
        state,
        stats: FoldStats {
            head_sequence: head,
            events: snapshot.map_or(0, |s| s.events) + folded,
            snapshot,
            folded_after_snapshot: folded,
        },
    })
}

/// A key for `pg_advisory_xact_lock` per audit schema: one snapshot builder at a time. The
/// projection's own key for the schema, turned, so that building snapshots never waits on the
/// projector's batches.
fn lock_key(schema: &str) -> i64 {
    readmodel::lock_key(schema) ^ 0x6b68_3633_7474_0000
}

struct Writer<'c> {
    conn: &'c mut PgConnection,
    schema: &'c str,
    decoding: Decoding,
}

impl Writer<'_> {
    async fn write(
        &mut self,
        key: &SnapshotKey,
        recorded: Option<(DateTime<Utc>, DateTime<Utc>)>,
        state: &PlanState,
    ) -> Result<(), Error> {
        let bytes = encode_state(state)?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {}.fold_snapshots (axis, effective_at, stream_sequence, position, built_through,
                 max_recorded_at, chunk_min_recorded_at, events, format, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT DO NOTHING",
            self.schema
        )))
        .bind(key.axis.as_str())
        .bind(key.effective_at)
        .bind(key.stream_sequence)
        .bind(key.position)
        .bind(key.built_through)
        .bind(recorded.map(|r| r.0))
        .bind(recorded.map(|r| r.1))
        .bind(i64::try_from(key.events).unwrap_or(i64::MAX))
        .bind(FORMAT)
        .bind(bytes)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    async fn set_progress(&mut self, axis: Axis, through: i64) -> Result<(), Error> {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {}.fold_snapshot_progress (axis, validated_through) VALUES ($1, $2)
             ON CONFLICT (axis) DO UPDATE SET validated_through = excluded.validated_through, updated_at = now()",
            self.schema
        )))
        .bind(axis.as_str())
        .bind(through)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    async fn stored(&mut self, axis: Axis) -> Result<u64, Error> {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {}.fold_snapshots WHERE axis = $1",
            self.schema
        )))
        .bind(axis.as_str())
        .fetch_one(&mut *self.conn)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// Builds or refreshes the snapshots of both axes (see the module documentation). Holds an
/// advisory lock for the audit schema for its duration, so concurrent refreshes queue.
pub async fn refresh(
    pool: &PgPool,
    schema: &str,
    decoding: Decoding,
    every: u64,
) -> Result<SnapshotReport, Error> {
    if every == 0 {
        return Err(Error::Invalid(
            "the snapshot interval must be at least one event".to_owned(),
        ));
    }
    // A transaction-scoped lock: released however this ends, even if the future is dropped.
    let mut lock = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key(schema))
        .execute(&mut *lock)
        .await?;
    let mut read = pool.acquire().await?;
    let mut write = pool.acquire().await?;
    let head = head(&mut read, schema).await?;
    let mut writer = Writer {
        conn: &mut write,
        schema,
        decoding,
    };
    let recorded = refresh_recorded(&mut read, &mut writer, head, every).await?;
    let effective = refresh_effective(&mut read, &mut writer, head, every).await?;
    lock.rollback().await?;
    Ok(SnapshotReport {
        head_sequence: head,
        every,
        recorded,
        effective,
    })
}

async fn refresh_recorded(
    read: &mut PgConnection,
    writer: &mut Writer<'_>,
    head: i64,
    every: u64,
) -> Result<AxisReport, Error> {
    let started = Instant::now();
    let schema = writer.schema;
    let (decoding, columns) = (writer.decoding, writer.decoding.columns());
    let last: Option<RecordedRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT stream_sequence, position, built_through, events, max_recorded_at
             FROM {schema}.fold_snapshots WHERE axis = 'recorded'
             ORDER BY stream_sequence DESC LIMIT 1"
    )))
    .fetch_optional(&mut *read)
    .await?;
    let (mut state, from, mut max_recorded, mut total) = match last {
        Some((sequence, position, built_through, events, max_recorded)) => {
            let key = key_from(
                Axis::Recorded,
                (None, sequence, position, built_through, events),
            );
            let state = load_state(read, schema, &key).await?.ok_or_else(|| {
                Error::Snapshot("the latest recorded snapshot vanished".to_owned())
            })?;
            (state, sequence, max_recorded, key.events)
        }
        None => (PlanState::default(), 0, None, 0),
    };
    let mut report = AxisReport::default();
    if from < head {
        let query = sqlx::query(AssertSqlSafe(format!(
            "SELECT {columns} FROM {schema}.audit_log
             WHERE stream_sequence > $1 AND stream_sequence <= $2 AND aggregate_type IN {PLAN_KINDS}
             ORDER BY stream_sequence, position"
        )))
        .bind(from)
        .bind(head);
        let mut rows = query.fetch(&mut *read);
        let mut since = 0u64;
        let mut chunk_min: Option<DateTime<Utc>> = None;
        let mut last_event: Option<(i64, i32)> = None;
        let snapshot = |last: (i64, i32),
                        total: u64,
                        max_recorded: Option<DateTime<Utc>>,
                        chunk_min: Option<DateTime<Utc>>| {
            (
                SnapshotKey {
                    axis: Axis::Recorded,
                    effective_at: None,
                    stream_sequence: last.0,
                    position: last.1,
                    built_through: last.0,
                    events: total,
                },
                max_recorded.zip(chunk_min),
            )
        };
        while let Some(row) = rows.try_next().await? {
            let Some(event) = decode_row(&row, decoding)? else {
                continue;
            };
            // Snapshots end at a commit's end: a commit is recorded (and known) all at once.
            if let Some(last) = last_event
                && last.0 != event.stream_sequence
                && since >= every
            {
                let (key, recorded) = snapshot(last, total, max_recorded, chunk_min);
                writer.write(&key, recorded, &state).await?;
                report.written += 1;
                since = 0;
                chunk_min = None;
            }
            state.apply(&event.target, &event.event);
            since += 1;
            total += 1;
            report.events_folded += 1;
            max_recorded = max_recorded.max(Some(event.recorded_at));
            chunk_min = Some(chunk_min.map_or(event.recorded_at, |m| m.min(event.recorded_at)));
            last_event = Some((event.stream_sequence, event.position));
        }
        drop(rows);
        if let Some(last) = last_event
            && since >= every
        {
            let (key, recorded) = snapshot(last, total, max_recorded, chunk_min);
            writer.write(&key, recorded, &state).await?;
            report.written += 1;
        }
    }
    writer.set_progress(Axis::Recorded, head).await?;
    report.stored = writer.stored(Axis::Recorded).await?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

async fn refresh_effective(
    read: &mut PgConnection,
    writer: &mut Writer<'_>,
    head: i64,
    every: u64,
) -> Result<AxisReport, Error> {
    let started = Instant::now();
    let schema = writer.schema;
    let (decoding, columns) = (writer.decoding, writer.decoding.columns());
    let mut report = AxisReport::default();

    // 1. Validate against what arrived since the last run, in one transaction.
    {
        let mut tx = Connection::begin(&mut *writer.conn).await?;
        let validated: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT validated_through FROM {schema}.fold_snapshot_progress
             WHERE axis = 'effective' FOR UPDATE"
        )))
        .fetch_optional(&mut *tx)
        .await?;
        let validated = validated.unwrap_or(0);
        if validated < head {
            let earliest: Option<(DateTime<Utc>, i64, i32)> =
                sqlx::query_as(AssertSqlSafe(format!(
                    "SELECT effective_at, stream_sequence, position FROM {schema}.audit_log
                     WHERE stream_sequence > $1 AND stream_sequence <= $2 AND aggregate_type IN {PLAN_KINDS}
                     ORDER BY effective_at, stream_sequence, position LIMIT 1"
                )))
                .bind(validated)
                .bind(head)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some((effective_at, sequence, position)) = earliest {
                report.invalidated = sqlx::query(AssertSqlSafe(format!(
                    "DELETE FROM {schema}.fold_snapshots
                     WHERE axis = 'effective' AND (effective_at, stream_sequence, position) >= ($1, $2, $3)"
                )))
                .bind(effective_at)
                .bind(sequence)
                .bind(position)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
        }
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {schema}.fold_snapshot_progress (axis, validated_through) VALUES ('effective', $1)
             ON CONFLICT (axis) DO UPDATE SET validated_through = greatest(fold_snapshot_progress.validated_through, excluded.validated_through),
                 updated_at = now()"
        )))
        .bind(head)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }

    // 2. Fold forward from the latest surviving snapshot.
    let base: Option<KeyRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT effective_at, stream_sequence, position, built_through, events
         FROM {schema}.fold_snapshots WHERE axis = 'effective'
         ORDER BY effective_at DESC, stream_sequence DESC, position DESC LIMIT 1"
    )))
    .fetch_optional(&mut *read)
    .await?;
    let base = base.map(|r| key_from(Axis::Effective, r));
    let (mut state, mut total) = match &base {
        Some(key) => (
            load_state(read, schema, key).await?.ok_or_else(|| {
                Error::Snapshot("the latest effective snapshot vanished".to_owned())
            })?,
            key.events,
        ),
        None => (PlanState::default(), 0),
    };
    // Events past the head this refresh validated against wait for the next one.
    let query = match base.and_then(|b| b.effective_at.map(|e| (e, b))) {
        Some((effective_at, b)) => sqlx::query(AssertSqlSafe(format!(
            "SELECT {columns} FROM {schema}.audit_log
             WHERE (effective_at, stream_sequence, position) > ($2, $3, $4)
               AND stream_sequence <= $1 AND aggregate_type IN {PLAN_KINDS}
             ORDER BY effective_at, stream_sequence, position"
        )))
        .bind(head)
        .bind(effective_at)
        .bind(b.stream_sequence)
        .bind(b.position),
        None => sqlx::query(AssertSqlSafe(format!(
            "SELECT {columns} FROM {schema}.audit_log
             WHERE stream_sequence <= $1 AND aggregate_type IN {PLAN_KINDS}
             ORDER BY effective_at, stream_sequence, position"
        )))
        .bind(head),
    };
    let mut rows = query.fetch(&mut *read);
    let mut since = 0u64;
    while let Some(row) = rows.try_next().await? {
        let Some(event) = decode_row(&row, decoding)? else {
            continue;
        };
        state.apply(&event.target, &event.event);
        since += 1;
        total += 1;
        report.events_folded += 1;
        if since >= every {
            let key = SnapshotKey {
                axis: Axis::Effective,
                effective_at: Some(event.effective_at),
                stream_sequence: event.stream_sequence,
                position: event.position,
                built_through: head,
                events: total,
            };
            writer.write(&key, None, &state).await?;
            report.written += 1;
            since = 0;
        }
    }
    drop(rows);
    report.stored = writer.stored(Axis::Effective).await?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Deletes every stored snapshot of the audit schema (they are a cache; the next refresh builds
/// them again from the first event).
pub async fn clear(pool: &PgPool, schema: &str) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key(schema))
        .execute(&mut *tx)
        .await?;
    sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {schema}.fold_snapshots"
    )))
    .execute(&mut *tx)
    .await?;
    sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {schema}.fold_snapshot_progress"
    )))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Keeps the snapshots fresh: refreshes every `interval` until `stop` resolves. For a
/// long-running process (the projector service may spawn it beside its workers).
pub async fn maintain(
    pool: PgPool,
    audit_schema: String,
    every: u64,
    interval: std::time::Duration,
    stop: impl Future<Output = ()>,
) {
    let tt = match TimeTravel::new(&audit_schema) {
        Ok(tt) => tt,
        Err(e) => {
            tracing::error!(error = %e, "time-travel snapshots are not maintained");
            return;
        }
    };
    let work = async {
        loop {
            match tt.refresh_snapshots(&pool, every).await {
                Ok(report) => tracing::debug!(?report, "time-travel snapshots refreshed"),
                Err(e) => tracing::warn!(error = %e, "refreshing time-travel snapshots failed"),
            }
            tokio::time::sleep(interval).await;
        }
    };
    tokio::select! {
        () = work => {}
        () = stop => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::history::History;

    #[tokio::test]
    async fn stored_states_decode_to_what_was_encoded() {
        let mut history = History::new(3, 2_000, chrono::Duration::days(90));
        history.seed_commits();
        while !history.done() {
            history.next_commit();
        }
        // The generator folds with this crate as its own dependency, a build apart from the one
        // under test: the state crosses over as the JSON both builds read and write.
        let state: PlanState =
            serde_json::from_value(serde_json::to_value(history.state()).expect("state as JSON"))
                .expect("the same state");
        let stored = encode_state(&state).expect("encode");
        assert_eq!(frames(&stored).expect("frames").len(), CHUNKS);
        assert_eq!(
            decode_state(FORMAT, stored.clone()).await.expect("v2"),
            state
        );
        let v1 = serde_json::to_vec(&state).expect("v1");
        assert_eq!(decode_state(1, v1).await.expect("v1"), state);
        assert_eq!(
            decode_state(FORMAT, encode_state(&PlanState::default()).expect("empty"))
                .await
                .expect("empty"),
            PlanState::default()
        );
        assert!(
            decode_state(FORMAT, stored[..stored.len() - 1].to_vec())
                .await
                .is_err()
        );
        assert!(decode_state(7, vec![]).await.is_err());
    }
}
