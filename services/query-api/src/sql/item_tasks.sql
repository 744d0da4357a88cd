-- The item's tasks; $2 limits them to some units (NULL: all units).
SELECT t.task_id, t.unit_id, u.name AS unit_name, t.title, t.person_responsible,
       t.leader_in_charge, t.due_on, t.status, t.status_since, t.evidence, t.cancelled,
       t.cancel_reason, t.planned_at, t.completed_at,
       deadline_qualifier(t.due_on, coalesce(t.completed_at, now())) AS deadline_qualifier
FROM tasks t
JOIN units u ON u.unit_id = t.unit_id
WHERE t.item_id = $1 AND ($2::text[] IS NULL OR t.unit_id = ANY($2::text[]))
ORDER BY t.due_on, t.task_id
