-- As-of queries over the core projection's history tables, on both clocks.
--
-- Run them with the projection schemas on the search path (`SET search_path = core, audit;`);
-- $1 is the instant T (timestamptz), $2 the aggregate type ('item' or 'task') where asked.
-- The crate `time-travel` runs each of them by name (`-- name: …`) and its property test checks
-- them against the fold of the audit log with the domain's own `evolve`.
--
-- Recorded axis ("what the system knew at T"): an event counts when it was recorded at or
-- before T, in stream order. Effective axis ("what was true at T"): an event counts when it was
-- effective at or before T — including a backdated fact recorded after T — in effective-time
-- order, ties by stream sequence.


-- name: status_recorded
-- The status of every item (or task) as the system knew it at $1.
-- `status_history` gets one row per status an aggregate held; the projector opens a row when it
-- applies a status change and closes the previous open row with the new row's recorded time, so
-- recorded_from / recorded_until chain consecutively per aggregate in stream order, and exactly
-- one row per aggregate contains any instant after its creation was recorded.
SELECT aggregate_id, status
FROM status_history
WHERE aggregate_type = $2
  AND recorded_from <= $1 AND (recorded_until IS NULL OR $1 < recorded_until)
ORDER BY aggregate_id;


-- name: status_effective
-- The status of every item (or task) as it was at $1.
-- Written as "the row with the greatest effective_from <= $1, ties broken by stream sequence",
-- not as `effective_from <= $1 < effective_until`, for two reasons:
--  * effective_from / effective_until are maintained per aggregate in *recorded* order until the
--    projector's core migration 0003: a backdated change recorded after a later-effective one
--    then closed the open row with an earlier time (an inverted interval) and left the earlier
--    row overlapping the new one. The projector now recomputes effective_until in effective
--    order, but this form needs no interval at all, so it answers the same on any history;
--  * a change may be backdated to before the aggregate itself was created (the domain allows
--    it). Folded in effective order, such a change meets no aggregate and changes nothing; its
--    row, though, opens an interval before the creation row, where the interval test would
--    report a status for an item that did not exist yet. Hence the condition that the
--    aggregate's first row (previous_status NULL) is effective at or before $1; with it, the
--    interval form gives the same answers as this one on the current projector.
SELECT DISTINCT ON (h.aggregate_id) h.aggregate_id, h.status
FROM status_history h
WHERE h.aggregate_type = $2
  AND h.effective_from <= $1
  AND EXISTS (
      SELECT 1 FROM status_history c
      WHERE c.aggregate_type = h.aggregate_type AND c.aggregate_id = h.aggregate_id
        AND c.previous_status IS NULL AND c.effective_from <= $1)
ORDER BY h.aggregate_id, h.effective_from DESC, h.stream_sequence DESC;


-- name: assignments_effective
-- Assignments valid at $1 (chủ trì / phối hợp, unit or group), as the world was at $1.
-- valid_from / valid_until come from the events' own effective times, so the interval test is
-- exact here (an assignment has at most one revocation).
SELECT item_id, role, assignee_type, assignee_id, valid_from, valid_until
FROM assignments
WHERE valid_from <= $1 AND (valid_until IS NULL OR $1 < valid_until)
ORDER BY item_id, role, assignee_type, assignee_id, valid_from;


-- name: assignments_recorded
-- Assignments valid at $1 as the system knew it at $1: the assignment was recorded at or before
-- $1, and its revocation, if any, was not — or was, but takes effect after $1. `assignments`
-- keeps the assigning event's stream sequence; the recorded times come from the audit log, and
-- the revocation is the first `assignment_revoked` event for the same role and assignee after
-- the assignment (the domain closes the open assignment).
SELECT a.item_id, a.role, a.assignee_type, a.assignee_id, a.valid_from,
       CASE WHEN r.recorded_at <= $1 THEN a.valid_until END AS valid_until
FROM assignments a
JOIN audit_log g ON g.stream_sequence = a.stream_sequence
                AND g.aggregate_type = 'item' AND g.aggregate_id = a.item_id
                AND g.event_type LIKE '%.item.assigned.v%'
LEFT JOIN LATERAL (
    SELECT l.recorded_at FROM audit_log l
    WHERE l.aggregate_type = 'item' AND l.aggregate_id = a.item_id
      AND l.event_type LIKE '%.item.assignment_revoked.v%'
      AND l.stream_sequence > a.stream_sequence
      AND l.payload ->> 'role' = a.role
      AND l.payload -> 'assignee' ->> a.assignee_type = a.assignee_id
    ORDER BY l.stream_sequence LIMIT 1
) r ON true
WHERE g.recorded_at <= $1
  AND a.valid_from <= $1
  AND (a.valid_until IS NULL OR r.recorded_at > $1 OR $1 < a.valid_until)
ORDER BY a.item_id, a.role, a.assignee_type, a.assignee_id, a.valid_from;
