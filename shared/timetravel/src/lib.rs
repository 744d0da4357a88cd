//! Time travel: the whole plan as of any instant, on either clock.
//!
//! Every event carries two times (DESIGN.md §3): when the system recorded it and when it happened
//! in the world. "As of T" is asked on either axis:
//!
//! - [`Axis::Recorded`] — what the system knew at T: the events recorded at or before T, folded
//!   in stream order;
//! - [`Axis::Effective`] — what was true at T: the events effective at or before T, including
//!   backdated facts recorded later, folded in effective-time order (ties by stream sequence,
//!   then position in the commit).
//!
//! The events come from the audit projection (`audit.audit_log`) and are folded with the very
//! `AggregateState::evolve` the command side decides on, into a [`PlanState`] — one
//! implementation of the rules. Each row is decoded the way `CloudEvent::decode` decodes an
//! envelope (`Event::decode` of its type and data, upcasting included), from the columns the
//! audit projection copied out of the envelope ([`Decoding::Columns`], the default) or from the
//! envelope itself ([`Decoding::Envelope`]). Stored snapshots of folded state ([`snapshot`]) keep
//! a query to one snapshot load plus at most a snapshot interval of events, however long the
//! history grows. Views ([`view`]) derive what people read from the state at T, [`diff`]
//! compares two instants, [`sql`] holds the documented SQL as-of queries over the core
//! projection's history tables, and [`cli`] is `projector replay`.

pub mod diff;
pub mod snapshot;
pub mod source;
pub mod sql;
pub mod state;
pub mod table;
pub mod view;

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use remediation_domain::text::{ItemId, UnitId};
use remediation_domain::{AggregateRef, AggregateState};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};

pub use diff::{AuditEvent, Change, Entity, PlanDiff, diff};
pub use snapshot::{AxisReport, DEFAULT_EVERY, SnapshotReport};
pub use source::Decoding;
pub use state::PlanState;
pub use view::{ItemView, LogInfo, PlanView, UnitView};

/// Which clock an as-of question is asked on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Axis {
    /// What the system knew at T: events recorded at or before T, in stream order.
    Recorded,
    /// What was true at T: events effective at or before T, in effective-time order.
    Effective,
}

impl Axis {
    pub const ALL: [Axis; 2] = [Axis::Recorded, Axis::Effective];

    pub fn as_str(self) -> &'static str {
        match self {
            Axis::Recorded => "recorded",
            Axis::Effective => "effective",
        }
    }

    /// How Vietnamese reports name the axis.
    pub fn label_vi(self) -> &'static str {
        match self {
            Axis::Recorded => "theo thời điểm ghi nhận",
            Axis::Effective => "theo thời điểm hiệu lực",
        }
    }
}

impl fmt::Display for Axis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An axis name other than `recorded` and `effective`.
#[derive(Debug, thiserror::Error)]
#[error("axis must be \"recorded\" or \"effective\", not {0:?}")]
pub struct UnknownAxis(pub String);

impl FromStr for Axis {
    type Err = UnknownAxis;

    fn from_str(s: &str) -> Result<Self, UnknownAxis> {
        match s {
            "recorded" => Ok(Axis::Recorded),
            "effective" => Ok(Axis::Effective),
            other => Err(UnknownAxis(other.to_owned())),
        }
    }
}

/// An as-of question: the instant and the axis it is asked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AsOf {
    pub instant: DateTime<Utc>,
    pub axis: Axis,
}

impl AsOf {
    pub fn new(instant: DateTime<Utc>, axis: Axis) -> Self {
        Self { instant, axis }
    }

    pub fn recorded(instant: DateTime<Utc>) -> Self {
        Self::new(instant, Axis::Recorded)
    }

    pub fn effective(instant: DateTime<Utc>) -> Self {
        Self::new(instant, Axis::Effective)
    }
}

/// Why a time-travel query failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// An audit row whose envelope does not decode: the log holds something this build cannot
    /// fold, and an answer without it would be wrong.
    #[error("stream sequence {sequence}, position {position}: cannot decode the event: {reason}")]
    Undecodable {
        sequence: i64,
        position: i32,
        reason: String,
    },
    #[error("snapshot: {0}")]
    Snapshot(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Schema(#[from] readmodel::InvalidSchemaName),
}

/// What a fold read: the log head it answers for, how many events it folded and where it
/// started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FoldStats {
    /// The audit log's last stream sequence when the query started: the answer is the fold of
    /// the log up to here.
    pub head_sequence: i64,
    /// Events in the state (from the snapshot and folded after it).
    pub events: u64,
    /// The snapshot the fold started from, if any.
    pub snapshot: Option<snapshot::SnapshotKey>,
    /// Events folded after the snapshot.
    pub folded_after_snapshot: u64,
}

/// A folded state and how it was obtained.
#[derive(Debug, Clone)]
pub struct Folded {
    pub as_of: AsOf,
    pub state: PlanState,
    pub stats: FoldStats,
}

/// Decoded snapshots by key, shared between clones of a [`TimeTravel`].
pub(crate) type SnapshotCache = Arc<Mutex<lru::LruCache<snapshot::SnapshotKey, Arc<PlanState>>>>;

/// Time travel over one audit schema, with an optional in-process cache of decoded snapshots.
///
/// Cheap to clone; share one per process (the cache is shared between clones).
#[derive(Clone)]
pub struct TimeTravel {
    schema: String,
    use_snapshots: bool,
    decoding: Decoding,
    cache: Option<SnapshotCache>,
}

impl fmt::Debug for TimeTravel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeTravel")
            .field("schema", &self.schema)
            .field("use_snapshots", &self.use_snapshots)
            .field("decoding", &self.decoding)
            .field("cache", &self.cache.is_some())
            .finish()
    }
}

/// Schema names end up in SQL text: the rule the projector applies before creating them.
fn checked_schema(name: &str) -> Result<String, Error> {
    Ok(readmodel::quoted_schema(name)?)
}

impl TimeTravel {
    /// Time travel over the audit projection in `audit_schema` (`audit`, or
    /// `Projection::Audit.schema(prefix)`), using stored snapshots, without a cache.
    pub fn new(audit_schema: &str) -> Result<Self, Error> {
        Ok(Self {
            schema: checked_schema(audit_schema)?,
            use_snapshots: true,
            decoding: Decoding::Columns,
            cache: None,
        })
    }

    /// Keeps up to `capacity` decoded snapshots in memory (0 turns the cache off). Snapshot
    /// rows never change once written (an invalidated one is deleted, and its successor has
    /// another key), so a cached state never goes stale.
    pub fn with_cache(mut self, capacity: usize) -> Self {
        self.cache = std::num::NonZeroUsize::new(capacity)
            .map(|c| Arc::new(Mutex::new(lru::LruCache::new(c))));
        self
    }

    /// Folds from the first event every time, ignoring stored snapshots (for verification).
    pub fn without_snapshots(mut self) -> Self {
        self.use_snapshots = false;
        self
    }

    /// Decodes each event from its whole envelope (`CloudEvent::decode`) instead of from the
    /// columns the audit projection copied out of it: the same events, about three times slower
    /// to read (for verification).
    pub fn decoding_envelopes(mut self) -> Self {
        self.decoding = Decoding::Envelope;
        self
    }

    /// The quoted schema name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The whole plan's state as of `as_of`: every aggregate folded with
    /// `AggregateState::evolve`.
    pub async fn fold(&self, conn: &mut PgConnection, as_of: AsOf) -> Result<Folded, Error> {
        snapshot::fold_as_of(self, conn, as_of).await
    }

    /// One aggregate's state as of `as_of`, folded from its own events only (no snapshot
    /// needed: the audit log is indexed by aggregate).
    pub async fn fold_aggregate(
        &self,
        conn: &mut PgConnection,
        as_of: AsOf,
        target: &AggregateRef,
    ) -> Result<AggregateState, Error> {
        source::fold_aggregate(conn, &self.schema, self.decoding, as_of, target).await
    }

    /// `GET /v1/as-of/plan`: the whole plan as of `as_of`.
    pub async fn plan(&self, conn: &mut PgConnection, as_of: AsOf) -> Result<PlanView, Error> {
        let folded = self.fold(conn, as_of).await?;
        Ok(view::plan_view(&folded.state, as_of, folded.stats))
    }

    /// `GET /v1/as-of/items/{item_id}`: one item as of `as_of`; `None` when it did not exist
    /// (yet) on that axis.
    pub async fn item(
        &self,
        conn: &mut PgConnection,
        as_of: AsOf,
        item_id: &ItemId,
    ) -> Result<Option<ItemView>, Error> {
        let folded = self.fold(conn, as_of).await?;
        Ok(view::item_view(&folded.state, as_of, folded.stats, item_id))
    }

    /// `GET /v1/as-of/units/{unit_id}`: one unit as of `as_of`; `None` when it was not
    /// registered (yet) on that axis.
    pub async fn unit(
        &self,
        conn: &mut PgConnection,
        as_of: AsOf,
        unit_id: &UnitId,
    ) -> Result<Option<UnitView>, Error> {
        let folded = self.fold(conn, as_of).await?;
        Ok(view::unit_view(&folded.state, as_of, folded.stats, unit_id))
    }

    /// `GET /v1/as-of/diff`: what changed between `from` and `to` on `axis`, and the events in
    /// between (at most `event_limit`, in the axis's order) with who and when.
    pub async fn diff(
        &self,
        conn: &mut PgConnection,
        axis: Axis,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        event_limit: u32,
    ) -> Result<PlanDiff, Error> {
        let a = self.plan(conn, AsOf::new(from, axis)).await?;
        let b = self.plan(conn, AsOf::new(to, axis)).await?;
        diff::plan_diff(conn, &self.schema, &a, &b, event_limit).await
    }

    /// Builds or refreshes the stored snapshots on both axes, one every `every` events; safe to
    /// run concurrently with queries, with the projector and with itself.
    pub async fn refresh_snapshots(
        &self,
        pool: &PgPool,
        every: u64,
    ) -> Result<SnapshotReport, Error> {
        snapshot::refresh(pool, &self.schema, self.decoding, every).await
    }
}
