SELECT i.item_id, i.plan_id, i.ordinal, i.title, i.sector, i.causes_objective,
       i.causes_subjective, i.remedies, i.status, i.status_since, i.due_on, i.completed_at,
       i.deadline_qualifier
FROM items_overview i
WHERE i.item_id = $1
