-- The tasks a unit holds now: its own and those of units it succeeded (they pass to it from the
-- succession's effective date), plus its own historical ones if it was itself succeeded.
SELECT t.task_id, t.item_id, i.plan_id, i.ordinal AS item_ordinal, t.unit_id, t.title,
       t.person_responsible, t.leader_in_charge, t.due_on, t.status, t.status_since, t.cancelled,
       t.completed_at,
       deadline_qualifier(t.due_on, coalesce(t.completed_at, now())) AS deadline_qualifier
FROM tasks t
JOIN items i ON i.item_id = t.item_id
WHERE t.unit_id = $1
   OR t.unit_id IN (SELECT h.unit_id FROM unit_holders(now()) h WHERE h.holder_id = $1)
ORDER BY t.due_on, t.task_id
