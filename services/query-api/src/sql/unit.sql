SELECT u.unit_id, u.name, u.kind, u.registered_at, u.succeeded_on, u.successors,
       u.succession_reason
FROM units u
WHERE u.unit_id = $1
