-- A unit may leave a group and rejoin it from the same date: stretches are told apart by their
-- own key, not by their start date.
ALTER TABLE group_members DROP CONSTRAINT group_members_pkey;
ALTER TABLE group_members ADD COLUMN membership_id bigserial PRIMARY KEY;
CREATE INDEX group_members_group ON group_members (group_id, unit_id, valid_from);

-- Compliance as seen at `t` counts only reports submitted by `t`.
CREATE OR REPLACE FUNCTION reporting_compliance_at(t timestamptz)
    RETURNS TABLE (plan_id text, unit_id text, unit_name text, year integer, quarter integer,
                   due_at timestamptz, first_submitted_at timestamptz, last_revised_at timestamptz,
                   review_status text, compliance text)
    LANGUAGE sql STABLE AS $$
    WITH quarters AS (
        SELECT p.plan_id, extract(year FROM q)::integer AS year, extract(quarter FROM q)::integer AS quarter
        FROM plans p
        CROSS JOIN LATERAL generate_series(date_trunc('quarter', p.issued_on::timestamp),
                                           date_trunc('quarter', t AT TIME ZONE INTERVAL '+07:00'),
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
                         AND rp.first_submitted_at <= t
$$;
