//! The query side of the snapshots: picking the stored snapshot an as-of query may start from and
//! folding the events after it (rule 2 of the module documentation), kept apart from the builder
//! because readers never take the builder's lock and must stay correct while it runs.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use sqlx::{AssertSqlSafe, PgConnection};
use tokio::task::JoinHandle;

use super::SnapshotKey;
use super::encoding::decode_state;
use crate::source::{LoggedEvent, PLAN_KINDS, for_each_event, head};
use crate::state::PlanState;
use crate::{AsOf, Axis, Error, FoldStats, Folded, SnapshotCache, TimeTravel};

pub(super) fn key_from(
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

pub(super) type KeyRow = (Option<DateTime<Utc>>, i64, i32, i64, i64);

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
pub(super) async fn load_state(
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
