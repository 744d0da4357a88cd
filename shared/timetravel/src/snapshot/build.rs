//! The builder (rule 1 of the module documentation): one at a time per audit schema under an
//! advisory lock, because invalidating effective snapshots and writing new ones must not
//! interleave with another builder's.

use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};

use super::encoding::{FORMAT, encode_state};
use super::read::{key_from, load_state};
use super::{AxisReport, SnapshotKey, SnapshotReport};
use crate::source::{Decoding, LoggedEvent, PLAN_KINDS, decode_row, head};
use crate::state::PlanState;
use crate::{Axis, Error};

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
    let recorded = refresh_axis(&mut read, &mut writer, Axis::Recorded, head, every).await?;
    let effective = refresh_axis(&mut read, &mut writer, Axis::Effective, head, every).await?;
    lock.rollback().await?;
    Ok(SnapshotReport {
        head_sequence: head,
        every,
        recorded,
        effective,
    })
}

/// Brings one axis's snapshots up to `head`. The axes differ only in what may invalidate a
/// snapshot (nothing on the recorded axis), in their order and in how a snapshot is keyed, which
/// [`FoldForward`] and [`forward_query`] take care of.
async fn refresh_axis(
    read: &mut PgConnection,
    writer: &mut Writer<'_>,
    axis: Axis,
    head: i64,
    every: u64,
) -> Result<AxisReport, Error> {
    let started = Instant::now();
    let invalidated = match axis {
        Axis::Recorded => 0,
        Axis::Effective => invalidate_effective(writer, head).await?,
    };
    let mut report = fold_forward(read, writer, axis, head, every).await?;
    report.invalidated = invalidated;
    if axis == Axis::Recorded {
        // The effective axis records its progress in the invalidating transaction instead.
        writer.set_progress(Axis::Recorded, head).await?;
    }
    report.stored = writer.stored(axis).await?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Validates the effective snapshots against what arrived since the last run, in one
/// transaction: deletes every snapshot a newly arrived event belongs inside, and records `head`
/// as validated. Returns how many it deleted.
async fn invalidate_effective(writer: &mut Writer<'_>, head: i64) -> Result<u64, Error> {
    let schema = writer.schema;
    let mut invalidated = 0;
    let mut tx = Connection::begin(&mut *writer.conn).await?;
    let validated: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT validated_through FROM {schema}.fold_snapshot_progress
         WHERE axis = 'effective' FOR UPDATE"
    )))
    .fetch_optional(&mut *tx)
    .await?;
    let validated = validated.unwrap_or(0);
    if validated < head {
        let earliest: Option<(DateTime<Utc>, i64, i32)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT effective_at, stream_sequence, position FROM {schema}.audit_log
             WHERE stream_sequence > $1 AND stream_sequence <= $2 AND aggregate_type IN {PLAN_KINDS}
             ORDER BY effective_at, stream_sequence, position LIMIT 1"
        )))
        .bind(validated)
        .bind(head)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((effective_at, sequence, position)) = earliest {
            invalidated = sqlx::query(AssertSqlSafe(format!(
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
    Ok(invalidated)
}

/// A snapshot's key columns (as [`KeyRow`](super::read::KeyRow)) and its `max_recorded_at`.
type LatestRow = (
    Option<DateTime<Utc>>,
    i64,
    i32,
    i64,
    i64,
    Option<DateTime<Utc>>,
);

/// The latest stored snapshot of `axis` and, on the recorded axis, the latest recorded time
/// folded into it.
async fn latest(
    read: &mut PgConnection,
    schema: &str,
    axis: Axis,
) -> Result<Option<(SnapshotKey, Option<DateTime<Utc>>)>, Error> {
    let order = match axis {
        Axis::Recorded => "stream_sequence DESC",
        Axis::Effective => "effective_at DESC, stream_sequence DESC, position DESC",
    };
    // The axis is spelled out rather than bound, so that the planner can pick the axis's
    // partial index whatever plan it caches.
    let row: Option<LatestRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT effective_at, stream_sequence, position, built_through, events, max_recorded_at
             FROM {schema}.fold_snapshots WHERE axis = '{axis}'
             ORDER BY {order} LIMIT 1"
    )))
    .fetch_optional(&mut *read)
    .await?;
    Ok(row.map(
        |(effective_at, sequence, position, built_through, events, max_recorded)| {
            (
                key_from(
                    axis,
                    (effective_at, sequence, position, built_through, events),
                ),
                max_recorded,
            )
        },
    ))
}

/// The events after `base` up to `head` in `axis`'s order; `None` when there are none to read.
fn forward_query(
    axis: Axis,
    schema: &str,
    columns: &str,
    base: Option<&SnapshotKey>,
    head: i64,
) -> Option<sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>> {
    match axis {
        Axis::Recorded => {
            let from = base.map_or(0, |key| key.stream_sequence);
            (from < head).then(|| {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {columns} FROM {schema}.audit_log
                     WHERE stream_sequence > $1 AND stream_sequence <= $2 AND aggregate_type IN {PLAN_KINDS}
                     ORDER BY stream_sequence, position"
                )))
                .bind(from)
                .bind(head)
            })
        }
        // Events past the head this refresh validated against wait for the next one.
        Axis::Effective => Some(
            match base.and_then(|key| key.effective_at.map(|at| (at, key))) {
                Some((effective_at, key)) => sqlx::query(AssertSqlSafe(format!(
                    "SELECT {columns} FROM {schema}.audit_log
                     WHERE (effective_at, stream_sequence, position) > ($2, $3, $4)
                       AND stream_sequence <= $1 AND aggregate_type IN {PLAN_KINDS}
                     ORDER BY effective_at, stream_sequence, position"
                )))
                .bind(head)
                .bind(effective_at)
                .bind(key.stream_sequence)
                .bind(key.position),
                None => sqlx::query(AssertSqlSafe(format!(
                    "SELECT {columns} FROM {schema}.audit_log
                     WHERE stream_sequence <= $1 AND aggregate_type IN {PLAN_KINDS}
                     ORDER BY effective_at, stream_sequence, position"
                )))
                .bind(head),
            },
        ),
    }
}

/// Folds `axis` forward from its latest surviving snapshot up to `head`, writing a snapshot
/// every `every` events.
async fn fold_forward(
    read: &mut PgConnection,
    writer: &mut Writer<'_>,
    axis: Axis,
    head: i64,
    every: u64,
) -> Result<AxisReport, Error> {
    let (schema, decoding) = (writer.schema, writer.decoding);
    let base = latest(read, schema, axis).await?;
    let mut fold = FoldForward::new(axis, head, every);
    if let Some((key, max_recorded)) = &base {
        fold.state = load_state(read, schema, key)
            .await?
            .ok_or_else(|| Error::Snapshot(format!("the latest {axis} snapshot vanished")))?;
        fold.total = key.events;
        fold.max_recorded = *max_recorded;
    }
    let base = base.map(|(key, _)| key);
    if let Some(query) = forward_query(axis, schema, decoding.columns(), base.as_ref(), head) {
        let mut rows = query.fetch(&mut *read);
        while let Some(row) = rows.try_next().await? {
            let Some(event) = decode_row(&row, decoding)? else {
                continue;
            };
            fold.push(writer, event).await?;
        }
    }
    fold.finish(writer).await
}

/// A fold that leaves a snapshot behind every `every` events of one axis.
///
/// A snapshot falls due after `every` events and is written before the next event is applied, or
/// at the end. On the recorded axis it waits for the next commit: a commit is recorded (and
/// known) all at once, so a snapshot there always ends at a commit's end.
struct FoldForward {
    axis: Axis,
    head: i64,
    every: u64,
    state: PlanState,
    /// Events in `state`.
    total: u64,
    /// Events since the last snapshot.
    since: u64,
    /// Effective time, stream sequence and position of the last event folded.
    last: Option<(DateTime<Utc>, i64, i32)>,
    /// Recorded axis: the latest recorded time in `state`, and the earliest since the last
    /// snapshot.
    max_recorded: Option<DateTime<Utc>>,
    chunk_min: Option<DateTime<Utc>>,
    report: AxisReport,
}

impl FoldForward {
    fn new(axis: Axis, head: i64, every: u64) -> Self {
        Self {
            axis,
            head,
            every,
            state: PlanState::default(),
            total: 0,
            since: 0,
            last: None,
            max_recorded: None,
            chunk_min: None,
            report: AxisReport::default(),
        }
    }

    async fn push(&mut self, writer: &mut Writer<'_>, event: LoggedEvent) -> Result<(), Error> {
        let commit_ended = self.axis == Axis::Effective
            || self
                .last
                .is_some_and(|(_, sequence, _)| sequence != event.stream_sequence);
        if commit_ended {
            self.write_if_due(writer).await?;
        }
        self.state.apply(&event.target, &event.event);
        self.since += 1;
        self.total += 1;
        self.report.events_folded += 1;
        self.max_recorded = self.max_recorded.max(Some(event.recorded_at));
        self.chunk_min = Some(
            self.chunk_min
                .map_or(event.recorded_at, |m| m.min(event.recorded_at)),
        );
        self.last = Some((event.effective_at, event.stream_sequence, event.position));
        Ok(())
    }

    async fn finish(mut self, writer: &mut Writer<'_>) -> Result<AxisReport, Error> {
        self.write_if_due(writer).await?;
        Ok(self.report)
    }

    async fn write_if_due(&mut self, writer: &mut Writer<'_>) -> Result<(), Error> {
        let Some((effective_at, stream_sequence, position)) = self.last else {
            return Ok(());
        };
        if self.since < self.every {
            return Ok(());
        }
        let (key, recorded) = match self.axis {
            Axis::Recorded => (
                SnapshotKey {
                    axis: Axis::Recorded,
                    effective_at: None,
                    stream_sequence,
                    position,
                    built_through: stream_sequence,
                    events: self.total,
                },
                self.max_recorded.zip(self.chunk_min),
            ),
            Axis::Effective => (
                SnapshotKey {
                    axis: Axis::Effective,
                    effective_at: Some(effective_at),
                    stream_sequence,
                    position,
                    built_through: self.head,
                    events: self.total,
                },
                None,
            ),
        };
        writer.write(&key, recorded, &self.state).await?;
        self.report.written += 1;
        self.since = 0;
        self.chunk_min = None;
        Ok(())
    }
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
