-- Assignments in force now for the given items, as the plan names them (a unit or a group),
-- in the order they were made.
SELECT a.item_id, a.role, a.assignee_type, a.assignee_id,
       coalesce(u.name, g.name, a.assignee_id) AS assignee_name
FROM assignments a
LEFT JOIN units u ON a.assignee_type = 'unit' AND u.unit_id = a.assignee_id
LEFT JOIN unit_groups g ON a.assignee_type = 'group' AND g.group_id = a.assignee_id
WHERE a.item_id = ANY($1::text[])
  AND a.valid_from <= now() AND (a.valid_until IS NULL OR now() < a.valid_until)
ORDER BY a.item_id, a.valid_from, a.stream_sequence, a.assignee_type, a.assignee_id
