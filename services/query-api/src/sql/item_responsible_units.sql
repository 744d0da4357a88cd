-- The units answerable for the item now, after group membership and succession.
SELECT r.role, r.unit_id, u.name AS unit_name, r.via_type, r.via_id
FROM responsible_units(now()) r
JOIN units u ON u.unit_id = r.unit_id
WHERE r.item_id = $1
ORDER BY r.role = 'lead' DESC, r.unit_id, r.via_type, r.via_id
