-- The audit projection: every event with its full envelope, in stream order. Lives in its own
-- schema so it can be rebuilt and swapped in without touching the core projection.

-- Last stream sequence applied, per projection: committed in the same transaction as the rows.
CREATE TABLE checkpoints (
    projection      text PRIMARY KEY,
    last_sequence   bigint NOT NULL DEFAULT 0,
    last_recorded_at timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- ── audit projection ────────────────────────────────────────────────────────────────────────
CREATE TABLE audit_log (
    stream_sequence bigint NOT NULL,
    position        integer NOT NULL,            -- index of the event within its commit
    event_id        uuid PRIMARY KEY,
    event_type      text NOT NULL,
    aggregate_type  text NOT NULL,
    aggregate_id    text NOT NULL,
    recorded_at     timestamptz NOT NULL,
    effective_at    timestamptz NOT NULL,
    actor_user      text NOT NULL,
    actor_unit      text,
    actor_role      text NOT NULL,
    correlation_id  text NOT NULL,
    causation_id    text NOT NULL,
    command_id      uuid NOT NULL,
    command_name    text NOT NULL,
    payload         jsonb NOT NULL,
    envelope        jsonb NOT NULL,
    UNIQUE (stream_sequence, position)
);
CREATE INDEX audit_log_aggregate ON audit_log (aggregate_type, aggregate_id, stream_sequence);
CREATE INDEX audit_log_actor ON audit_log (actor_user, stream_sequence);
CREATE INDEX audit_log_unit ON audit_log (actor_unit, stream_sequence);
CREATE INDEX audit_log_type ON audit_log (event_type, stream_sequence);
CREATE INDEX audit_log_recorded ON audit_log (recorded_at);
CREATE INDEX audit_log_effective ON audit_log (effective_at);

