-- Open items (not completed) whose deadline qualifier now is $1.
SELECT i.item_id, i.plan_id, i.ordinal, i.title, i.status, i.due_on,
       (i.due_on - local_date(now())) AS days_left
FROM items i
WHERE i.status <> 'completed' AND deadline_qualifier(i.due_on, now()) = $1
ORDER BY i.due_on, i.plan_id, i.ordinal
