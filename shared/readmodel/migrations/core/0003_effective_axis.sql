-- Status history: effective ends follow effective order (a backdated change lands inside the
-- timeline), and every effective interval runs forwards.
UPDATE status_history h SET effective_until = n.next_from
FROM (SELECT aggregate_type, aggregate_id, stream_sequence,
             lead(effective_from) OVER (PARTITION BY aggregate_type, aggregate_id
                                        ORDER BY effective_from, stream_sequence) AS next_from
      FROM status_history) n
WHERE h.aggregate_type = n.aggregate_type AND h.aggregate_id = n.aggregate_id
  AND h.stream_sequence = n.stream_sequence AND h.effective_until IS DISTINCT FROM n.next_from;

ALTER TABLE status_history
    ADD CONSTRAINT effective_interval_forwards CHECK (effective_until IS NULL OR effective_until >= effective_from),
    ADD CONSTRAINT recorded_interval_forwards CHECK (recorded_until IS NULL OR recorded_until >= recorded_from);

-- Vietnam keeps UTC+7 without daylight saving: a fixed offset is exact and truly immutable,
-- unlike a zone name whose rules could change.
CREATE OR REPLACE FUNCTION local_date(t timestamptz) RETURNS date
    LANGUAGE sql IMMUTABLE AS $$ SELECT (t AT TIME ZONE INTERVAL '+07:00')::date $$;

CREATE OR REPLACE FUNCTION deadline_qualifier(due date, t timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN due IS NULL THEN 'no_deadline'
        WHEN t >= ((due + 1)::timestamp - INTERVAL '7 hours') AT TIME ZONE 'UTC' THEN 'overdue'
        WHEN ((due + 1)::timestamp - INTERVAL '7 hours') AT TIME ZONE 'UTC' - t <= interval '3 days' THEN 'due_soon'
        ELSE 'within_time'
    END $$;

CREATE OR REPLACE FUNCTION report_due(y integer, q integer) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE AS $$
    SELECT (make_date(y, q * 3, 15)::timestamp - INTERVAL '7 hours') AT TIME ZONE 'UTC' $$;
