-- Audit content hash v3: the encoding is the bytes PostgreSQL's binary COPY sends for the row.
--
-- v2 (0015) hashed the text form of one array of the columns. Printing that text for every
-- event (array_out's quoting, to_char) was 60 % of the database's work in `audit verify`, and
-- the verifier still had to parse each row. v3 hashes a length-prefixed encoding that is, byte
-- for byte, what `COPY (SELECT 'billvault/audit-event/v3'::text, id, …, details::text) TO STDOUT
-- (FORMAT binary)` sends for the row's fields, so the verifier hashes a slice of what it reads:
--
--   field(x)  = int32 big-endian byte length of x, then x;  NULL = int32 -1 (ff ff ff ff), no bytes
--   encoding  = field('billvault/audit-event/v3') field(id) field(org_id) field(occurred_at)
--               field(actor_type) field(actor_id) field(session_id) field(action)
--               field(target_type) field(target_id) field(outcome) field(request_id) field(ip)
--               field(user_agent) field(details)
--
-- Text is UTF-8; occurred_at is 8 bytes, a signed big-endian count of microseconds since
-- 2000-01-01 00:00:00 UTC (PostgreSQL's timestamptz wire form); details is jsonb's normalised
-- text (keys ordered, one spelling per number). Lengths make it unambiguous without quoting, and
-- no setting changes any of it. content_hash = hex SHA-256 of the encoding.
--
-- Every function is schema-qualified: nothing a role can create elsewhere stands in for one.
-- Events that arrive with a content hash (v1/v2 rows, restores) keep it and their version.
-- src/app/audit-chain.ts reads the same fields in the same order; a test rebuilds the encoding
-- in JavaScript from the documented format and matches the stored hash.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_hash_version_check,
  ADD CONSTRAINT audit_events_hash_version_check CHECK (hash_version IN (1, 2, 3));

-- One plpgsql function: SQL helper functions called from a trigger are planned again in every
-- transaction, which cost more than the hashing in the one-event transactions the app writes.
CREATE OR REPLACE FUNCTION audit_events_content_hash() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  tag CONSTANT bytea := pg_catalog.convert_to('billvault/audit-event/v3', 'UTF8');
  enc bytea;
  f bytea;
BEGIN
  IF NEW.content_hash IS NULL THEN
    enc := pg_catalog.int4send(pg_catalog.length(tag)) OPERATOR(pg_catalog.||) tag;
    FOREACH f IN ARRAY ARRAY[
      pg_catalog.convert_to(NEW.id, 'UTF8'), pg_catalog.convert_to(NEW.org_id, 'UTF8'),
      pg_catalog.timestamptz_send(NEW.occurred_at),
      pg_catalog.convert_to(NEW.actor_type, 'UTF8'), pg_catalog.convert_to(NEW.actor_id, 'UTF8'),
      pg_catalog.convert_to(NEW.session_id, 'UTF8'), pg_catalog.convert_to(NEW.action, 'UTF8'),
      pg_catalog.convert_to(NEW.target_type, 'UTF8'), pg_catalog.convert_to(NEW.target_id, 'UTF8'),
      pg_catalog.convert_to(NEW.outcome, 'UTF8'), pg_catalog.convert_to(NEW.request_id, 'UTF8'),
      pg_catalog.convert_to(NEW.ip, 'UTF8'), pg_catalog.convert_to(NEW.user_agent, 'UTF8'),
      pg_catalog.convert_to(NEW.details::pg_catalog.text, 'UTF8')
    ] LOOP
      IF f IS NULL THEN
        enc := enc OPERATOR(pg_catalog.||) '\xffffffff'::bytea;
      ELSE
        enc := enc OPERATOR(pg_catalog.||) pg_catalog.int4send(pg_catalog.length(f)) OPERATOR(pg_catalog.||) f;
      END IF;
    END LOOP;
    NEW.hash_version := 3;
    NEW.content_hash := pg_catalog.encode(pg_catalog.sha256(enc), 'hex');
  END IF;
  RETURN NEW;
END $$;
