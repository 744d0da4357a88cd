-- The items a unit answers for now (directly, through a group it belongs to, or as the
-- successor of an assigned unit), one row per way it is assigned.
SELECT i.item_id, i.plan_id, i.ordinal, i.title, i.status, i.due_on, i.completed_at,
       i.deadline_qualifier, r.role, r.via_type, r.via_id
FROM responsible_units(now()) r
JOIN items_overview i ON i.item_id = r.item_id
WHERE r.unit_id = $1
ORDER BY i.plan_id, i.ordinal, r.role = 'lead' DESC, r.via_type, r.via_id
