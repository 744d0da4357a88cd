-- The core projection of Plan 63: units, groups, plans, items, assignments, tasks, reports and
-- status history, plus the views and functions that answer dashboard, compliance and as-of
-- questions. It lives in its own schema; a rebuild builds the same schema under another name and
-- swaps it in, and the views move with their tables.

-- Last stream sequence applied, per projection: committed in the same transaction as the rows.
CREATE TABLE checkpoints (
    projection      text PRIMARY KEY,
    last_sequence   bigint NOT NULL DEFAULT 0,
    last_recorded_at timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- ── core projection ─────────────────────────────────────────────────────────────────────────
CREATE TABLE units (
    unit_id         text PRIMARY KEY,
    name            text NOT NULL,
    kind            text NOT NULL,
    registered_at   timestamptz NOT NULL,
    succeeded_on    date,                        -- local date from which successors hold its work
    successors      text[] NOT NULL DEFAULT '{}',
    succession_reason text
);

CREATE TABLE unit_groups (
    group_id        text PRIMARY KEY,
    name            text NOT NULL
);

CREATE TABLE group_members (
    group_id        text NOT NULL,
    unit_id         text NOT NULL,
    valid_from      date NOT NULL,
    valid_until     date,                        -- exclusive
    removal_reason  text,
    PRIMARY KEY (group_id, unit_id, valid_from)
);

CREATE TABLE plans (
    plan_id         text PRIMARY KEY,
    code            text NOT NULL,
    title           text NOT NULL,
    issuer          text NOT NULL,
    issued_on       date NOT NULL,
    legal_basis     jsonb NOT NULL,
    reporting_rule  text NOT NULL
);

CREATE TABLE items (
    item_id         text PRIMARY KEY,
    plan_id         text NOT NULL,
    ordinal         integer NOT NULL,
    title           text NOT NULL,
    sector          text,
    causes_objective text,
    causes_subjective text,
    remedies        text,
    due_on          date,
    status          text NOT NULL,
    status_since    timestamptz NOT NULL,
    completed_at    timestamptz
);
CREATE INDEX items_plan ON items (plan_id, ordinal);

-- Assignments with their validity on the effective axis.
CREATE TABLE assignments (
    item_id         text NOT NULL,
    role            text NOT NULL,               -- lead | coordinator
    assignee_type   text NOT NULL,               -- unit | group
    assignee_id     text NOT NULL,
    valid_from      timestamptz NOT NULL,
    valid_until     timestamptz,
    revoke_reason   text,
    stream_sequence bigint NOT NULL,
    PRIMARY KEY (item_id, role, assignee_type, assignee_id, valid_from)
);

CREATE TABLE tasks (
    task_id         text PRIMARY KEY,
    item_id         text NOT NULL,
    unit_id         text NOT NULL,
    title           text NOT NULL,
    person_responsible text NOT NULL,
    leader_in_charge text NOT NULL,
    due_on          date NOT NULL,
    status          text NOT NULL,
    status_since    timestamptz NOT NULL,
    evidence        text,
    cancelled       boolean NOT NULL DEFAULT false,
    cancel_reason   text,
    planned_at      timestamptz NOT NULL,
    completed_at    timestamptz
);
CREATE INDEX tasks_item ON tasks (item_id);
CREATE INDEX tasks_unit ON tasks (unit_id);

CREATE TABLE reports (
    report_id       text PRIMARY KEY,
    plan_id         text NOT NULL,
    unit_id         text NOT NULL,
    year            integer NOT NULL,
    quarter         integer NOT NULL,
    due_at          timestamptz NOT NULL,
    status          text NOT NULL,               -- submitted | accepted | returned
    first_submitted_at timestamptz NOT NULL,     -- effective
    last_revised_at timestamptz,
    revisions       integer NOT NULL DEFAULT 0,
    accepted_at     timestamptz,
    returned_at     timestamptz,
    return_reason   text,
    UNIQUE (plan_id, unit_id, year, quarter)
);

CREATE TABLE report_lines (
    report_id       text NOT NULL,
    item_id         text NOT NULL,
    progress        text NOT NULL,
    reported_status text,
    PRIMARY KEY (report_id, item_id)
);

-- One row per status an item or task held, valid on both axes: effective [from, until) and
-- recorded [from, until). The open row of each aggregate has NULL untils.
CREATE TABLE status_history (
    aggregate_type  text NOT NULL,               -- item | task
    aggregate_id    text NOT NULL,
    status          text NOT NULL,
    previous_status text,
    reason          text,
    evidence        text,
    effective_from  timestamptz NOT NULL,
    effective_until timestamptz,
    recorded_from   timestamptz NOT NULL,
    recorded_until  timestamptz,
    actor_user      text NOT NULL,
    actor_unit      text,
    stream_sequence bigint NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, stream_sequence)
);

-- ── derived answers ─────────────────────────────────────────────────────────────────────────

-- The local (Asia/Ho_Chi_Minh) date of an instant.
CREATE FUNCTION local_date(t timestamptz) RETURNS date
    LANGUAGE sql IMMUTABLE AS $$ SELECT (t AT TIME ZONE 'Asia/Ho_Chi_Minh')::date $$;

-- Deadline qualifier of work due on `due`, seen at `t`: the same rule as the domain's
-- calendar::deadline_qualifier (due until the end of the local day; ≤ 3 days left = due soon).
CREATE FUNCTION deadline_qualifier(due date, t timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN due IS NULL THEN 'no_deadline'
        WHEN t >= ((due + 1)::timestamp AT TIME ZONE 'Asia/Ho_Chi_Minh') THEN 'overdue'
        WHEN ((due + 1)::timestamp AT TIME ZONE 'Asia/Ho_Chi_Minh') - t <= interval '3 days' THEN 'due_soon'
        ELSE 'within_time'
    END $$;

-- Report due instant of a quarter: 00:00 local on the 15th of its last month.
CREATE FUNCTION report_due(y integer, q integer) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE AS $$
    SELECT (make_date(y, q * 3, 15)::timestamp AT TIME ZONE 'Asia/Ho_Chi_Minh') $$;

-- Who holds each unit's responsibilities at `t`: itself, or its successors (transitively) from
-- the effective date of its succession.
CREATE FUNCTION unit_holders(t timestamptz) RETURNS TABLE (unit_id text, holder_id text)
    LANGUAGE sql STABLE AS $$
    WITH RECURSIVE chain (unit_id, holder_id, depth) AS (
        SELECT u.unit_id, u.unit_id, 0 FROM units u
        UNION ALL
        SELECT c.unit_id, s.successor, c.depth + 1
        FROM chain c
        JOIN units u ON u.unit_id = c.holder_id
        CROSS JOIN LATERAL unnest(u.successors) AS s (successor)
        WHERE u.succeeded_on IS NOT NULL AND u.succeeded_on <= local_date(t) AND c.depth < 16
    )
    SELECT c.unit_id, c.holder_id
    FROM chain c JOIN units u ON u.unit_id = c.holder_id
    WHERE u.succeeded_on IS NULL OR u.succeeded_on > local_date(t)
$$;

-- Units responsible for each item at `t`, after group membership and succession: the same rule as
-- the domain's Facts::responsible_units.
CREATE FUNCTION responsible_units(t timestamptz)
    RETURNS TABLE (item_id text, role text, unit_id text, via_type text, via_id text)
    LANGUAGE sql STABLE AS $$
    WITH active AS (
        SELECT * FROM assignments a
        WHERE a.valid_from <= t AND (a.valid_until IS NULL OR t < a.valid_until)
    ), direct AS (
        SELECT a.item_id, a.role, a.assignee_id AS unit_id, a.assignee_type, a.assignee_id
        FROM active a WHERE a.assignee_type = 'unit'
        UNION ALL
        SELECT a.item_id, a.role, m.unit_id, a.assignee_type, a.assignee_id
        FROM active a
        JOIN group_members m ON m.group_id = a.assignee_id
            AND m.valid_from <= local_date(t) AND (m.valid_until IS NULL OR local_date(t) < m.valid_until)
        WHERE a.assignee_type = 'group'
    )
    SELECT DISTINCT d.item_id, d.role, h.holder_id, d.assignee_type, d.assignee_id
    FROM direct d JOIN unit_holders(t) h ON h.unit_id = d.unit_id
$$;

-- Reporting compliance of every unit that owed a report for a plan's quarter, seen at `t`:
-- on_time / late / missing (due instant passed, nothing sent) / pending (not yet due).
CREATE FUNCTION reporting_compliance_at(t timestamptz)
    RETURNS TABLE (plan_id text, unit_id text, unit_name text, year integer, quarter integer,
                   due_at timestamptz, first_submitted_at timestamptz, last_revised_at timestamptz,
                   review_status text, compliance text)
    LANGUAGE sql STABLE AS $$
    WITH quarters AS (
        SELECT p.plan_id, extract(year FROM q)::integer AS year, extract(quarter FROM q)::integer AS quarter
        FROM plans p
        CROSS JOIN LATERAL generate_series(date_trunc('quarter', p.issued_on::timestamp),
                                           date_trunc('quarter', t AT TIME ZONE 'Asia/Ho_Chi_Minh'),
                                           interval '3 months') AS q
    ), owed AS (
        SELECT DISTINCT q.plan_id, r.unit_id, q.year, q.quarter, report_due(q.year, q.quarter) AS due_at
        FROM quarters q
        JOIN items i ON i.plan_id = q.plan_id
        JOIN LATERAL (
            SELECT ru.unit_id FROM responsible_units(least(report_due(q.year, q.quarter), t)) ru
            WHERE ru.item_id = i.item_id
        ) r ON true
    )
    SELECT o.plan_id, o.unit_id, u.name, o.year, o.quarter, o.due_at,
           rp.first_submitted_at, rp.last_revised_at, rp.status,
           CASE
               WHEN rp.report_id IS NOT NULL AND rp.first_submitted_at < o.due_at THEN 'on_time'
               WHEN rp.report_id IS NOT NULL THEN 'late'
               WHEN t >= o.due_at THEN 'missing'
               ELSE 'pending'
           END
    FROM owed o
    JOIN units u ON u.unit_id = o.unit_id
    LEFT JOIN reports rp ON rp.plan_id = o.plan_id AND rp.unit_id = o.unit_id
                         AND rp.year = o.year AND rp.quarter = o.quarter
$$;

CREATE VIEW reporting_compliance AS SELECT * FROM reporting_compliance_at(now());

-- Items with their current deadline qualifier and lead / coordinating units (as named).
CREATE VIEW items_overview AS
SELECT i.*, deadline_qualifier(i.due_on, coalesce(i.completed_at, now())) AS deadline_qualifier,
       coalesce((SELECT array_agg(a.assignee_id ORDER BY a.assignee_id) FROM assignments a
                 WHERE a.item_id = i.item_id AND a.role = 'lead' AND a.valid_until IS NULL), '{}') AS leads,
       coalesce((SELECT array_agg(a.assignee_id ORDER BY a.assignee_id) FROM assignments a
                 WHERE a.item_id = i.item_id AND a.role = 'coordinator' AND a.valid_until IS NULL), '{}') AS coordinators
FROM items i;

-- ── analytics views: one row per fact, with names, for BI tools ─────────────────────────────
CREATE VIEW analytics_status_changes AS
SELECT h.aggregate_type, h.aggregate_id,
       coalesce(i.item_id, t.item_id) AS item_id, coalesce(i.title, ti.title) AS item_title,
       t.unit_id AS task_unit_id, tu.name AS task_unit_name,
       h.previous_status, h.status, h.reason, h.evidence,
       h.effective_from AS changed_at, h.recorded_from AS recorded_at,
       h.actor_user, h.actor_unit, au.name AS actor_unit_name, h.stream_sequence
FROM status_history h
LEFT JOIN items i ON h.aggregate_type = 'item' AND i.item_id = h.aggregate_id
LEFT JOIN tasks t ON h.aggregate_type = 'task' AND t.task_id = h.aggregate_id
LEFT JOIN items ti ON ti.item_id = t.item_id
LEFT JOIN units tu ON tu.unit_id = t.unit_id
LEFT JOIN units au ON au.unit_id = h.actor_unit;

CREATE VIEW analytics_reports AS
SELECT r.report_id, r.plan_id, r.unit_id, u.name AS unit_name, r.year, r.quarter, r.due_at,
       r.first_submitted_at, r.last_revised_at, r.revisions, r.status AS review_status,
       CASE WHEN r.first_submitted_at < r.due_at THEN 'on_time' ELSE 'late' END AS timeliness,
       l.item_id, i.ordinal AS item_ordinal, i.title AS item_title, l.progress, l.reported_status
FROM reports r
JOIN units u ON u.unit_id = r.unit_id
JOIN report_lines l ON l.report_id = r.report_id
JOIN items i ON i.item_id = l.item_id;

CREATE VIEW analytics_assignments AS
SELECT a.item_id, i.ordinal AS item_ordinal, i.title AS item_title, a.role, a.assignee_type,
       a.assignee_id, coalesce(u.name, g.name) AS assignee_name, a.valid_from, a.valid_until,
       a.revoke_reason
FROM assignments a
JOIN items i ON i.item_id = a.item_id
LEFT JOIN units u ON a.assignee_type = 'unit' AND u.unit_id = a.assignee_id
LEFT JOIN unit_groups g ON a.assignee_type = 'group' AND g.group_id = a.assignee_id;
