-- The plan's items with the read model's deadline qualifier (completed work is judged at its
-- completion instant, open work now).
SELECT i.item_id, i.plan_id, i.ordinal, i.title, i.sector, i.status, i.status_since, i.due_on,
       i.completed_at, i.deadline_qualifier
FROM items_overview i
WHERE i.plan_id = $1
ORDER BY i.ordinal, i.item_id
