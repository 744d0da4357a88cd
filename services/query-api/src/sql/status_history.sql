-- An item's or task's statuses on both axes: effective [from, until) and recorded [from, until).
SELECT h.status, h.previous_status, h.reason, h.evidence, h.effective_from, h.effective_until,
       h.recorded_from, h.recorded_until, h.actor_user, h.actor_unit, h.stream_sequence
FROM status_history h
WHERE h.aggregate_type = $1 AND h.aggregate_id = $2
ORDER BY h.stream_sequence
