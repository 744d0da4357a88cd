-- Every assignment the item ever had, with its validity interval on the effective axis.
SELECT a.role, a.assignee_type, a.assignee_id,
       coalesce(u.name, g.name, a.assignee_id) AS assignee_name,
       a.valid_from, a.valid_until, a.revoke_reason,
       (a.valid_from <= now() AND (a.valid_until IS NULL OR now() < a.valid_until)) AS active,
       a.stream_sequence
FROM assignments a
LEFT JOIN units u ON a.assignee_type = 'unit' AND u.unit_id = a.assignee_id
LEFT JOIN unit_groups g ON a.assignee_type = 'group' AND g.group_id = a.assignee_id
WHERE a.item_id = $1
ORDER BY a.valid_from, a.stream_sequence, a.assignee_type, a.assignee_id
