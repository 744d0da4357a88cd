-- Open tasks (neither completed nor cancelled) whose deadline qualifier now is $1, with the
-- units that hold them now (the task's unit, or its successors).
WITH holders AS (
    SELECT h.unit_id, array_agg(h.holder_id ORDER BY h.holder_id) AS held_by
    FROM unit_holders(now()) h
    GROUP BY h.unit_id
)
SELECT t.task_id, t.item_id, i.plan_id, i.ordinal AS item_ordinal, t.unit_id,
       u.name AS unit_name, coalesce(h.held_by, '{}') AS held_by, t.title, t.status, t.due_on,
       (t.due_on - local_date(now())) AS days_left
FROM tasks t
JOIN items i ON i.item_id = t.item_id
JOIN units u ON u.unit_id = t.unit_id
LEFT JOIN holders h ON h.unit_id = t.unit_id
WHERE t.status <> 'completed' AND NOT t.cancelled AND deadline_qualifier(t.due_on, now()) = $1
ORDER BY t.due_on, t.task_id
