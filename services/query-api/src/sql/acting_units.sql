-- The units a unit's staff act for at the moment: their own, and every unit whose
-- responsibilities passed to it by succession (the same rule as the command side's acts_for).
SELECT $1::text AS unit_id
UNION
SELECT h.unit_id FROM unit_holders(now()) h WHERE h.holder_id = $1
