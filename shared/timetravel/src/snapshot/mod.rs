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

mod build;
mod encoding;
mod read;
mod schedule;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Axis;
#[cfg(doc)]
use crate::state::PlanState;

pub use build::{clear, refresh};
pub use encoding::decode_state;
pub(crate) use read::fold_as_of;
pub use schedule::maintain;

/// Events between two snapshots of one axis unless configured otherwise. A query folds half of
/// this on average after its snapshot, all of it at worst, which sets the p99; 5 000 keeps it
/// well under 100 ms at 100 000 events on two cores (`cargo bench -p stack-tests --bench as-of`), while a
/// snapshot stores (zstd) about a tenth of its JSON.
pub const DEFAULT_EVERY: u64 = 5_000;

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
