-- Every event's data was stored twice: in `payload` and as the `data` member of `envelope`.
-- From here on it is stored once, in `payload`, and `envelope` holds every other member. Readers
-- get the whole envelope back as `envelope || jsonb_build_object('data', payload)`
-- (`readmodel::AUDIT_ENVELOPE`): jsonb orders its keys itself, so that is the value stored
-- before, byte for byte as text, and the one its hash covers. Verification hashes that
-- reassembled envelope, so a payload changed here no longer matches the envelope's hash.
UPDATE audit_log SET envelope = envelope - 'data';
