-- Stored checkpoints of the time-travel fold (crate `time-travel`, `projector replay`).
--
-- A snapshot is the whole plan's folded state (every aggregate's `AggregateState`, serialised as
-- JSON) after a prefix of the audit log in one axis's order. An as-of query loads the latest
-- usable snapshot at or before its instant and folds only the events after it. Snapshots are a
-- cache: deleting every row is always safe, and `projector replay --snapshot` builds them again.
--
-- Recorded axis ("what the system knew"): events in stream order. A snapshot at stream sequence S
-- holds the fold of every event of the commits 1..S; nothing ever invalidates it.
--   max_recorded_at       the latest recorded time among those events: usable for T >= it
--   chunk_min_recorded_at the earliest recorded time among the events since the previous recorded
--                         snapshot: bounds the scan for instants between snapshots, even when
--                         recorded times are not monotonic in stream order (clock skew)
--
-- Effective axis ("what was true"): events in (effective_at, stream_sequence, position) order. A
-- snapshot at key K holds the fold of the events with key <= K and stream_sequence <=
-- built_through. A backdated event recorded later (stream_sequence > built_through, key <= K)
-- would belong inside it: such a snapshot is invalid. `fold_snapshot_progress.validated_through`
-- says up to which stream sequence every stored effective snapshot has been checked; readers check
-- the events after it themselves, and the builder deletes the snapshots at or after the earliest
-- key among newly arrived events before folding forward again.
CREATE TABLE fold_snapshots (
    axis                  text NOT NULL CHECK (axis IN ('recorded', 'effective')),
    effective_at          timestamptz,              -- effective axis: key of the last event folded
    stream_sequence       bigint NOT NULL,          -- last event folded
    position              integer NOT NULL,
    built_through         bigint NOT NULL,          -- log head the fold was built from
    max_recorded_at       timestamptz,              -- recorded axis only
    chunk_min_recorded_at timestamptz,              -- recorded axis only
    events                bigint NOT NULL,          -- events folded into the state
    format                integer NOT NULL,         -- encoding version of `state`
    state                 bytea NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (axis, stream_sequence, position),
    CHECK ((axis = 'effective') = (effective_at IS NOT NULL))
);
CREATE INDEX fold_snapshots_effective ON fold_snapshots (effective_at, stream_sequence, position)
    WHERE axis = 'effective';
CREATE INDEX fold_snapshots_recorded ON fold_snapshots (max_recorded_at, stream_sequence)
    WHERE axis = 'recorded';

CREATE TABLE fold_snapshot_progress (
    axis              text PRIMARY KEY CHECK (axis IN ('recorded', 'effective')),
    validated_through bigint NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- The effective-axis fold reads the log in (effective_at, stream_sequence, position) order from a
-- snapshot's key on: one index range scan.
CREATE INDEX audit_log_effective_order ON audit_log (effective_at, stream_sequence, position);
