-- Outbound webhooks (issue 6): endpoints per org and a durable delivery outbox.
-- Both tables follow THE RLS PATTERN of 0001_foundation.sql (org_id leads every key; policy
-- org_isolation). The dispatcher claims due deliveries across orgs in one short transaction
-- that sets app.webhook_dispatch = 'on'; that setting shows it deliveries only (no endpoint,
-- no secret): each endpoint's URL and secret are read back in that org's own transaction.

CREATE TABLE webhook_endpoints (
  org_id text NOT NULL REFERENCES orgs (id),
  id text NOT NULL CHECK (id ~ '^we_[0-9a-z]{32}$'),
  -- The URL can carry a receiver's token in its path or query, and the signing secret is
  -- needed in clear by the sender (so it cannot be hashed): both are FieldCipher ciphertexts
  -- under the org's key, bound to this row. Deleting an endpoint shreds both.
  url_enc text CHECK (url_enc LIKE 'bv1:%'),
  -- the host alone, for lists, audit details and logs
  url_host text NOT NULL CHECK (length(url_host) BETWEEN 1 AND 255),
  secret_enc text CHECK (secret_enc LIKE 'bv1:%'),
  secret_hint text NOT NULL CHECK (length(secret_hint) <= 20),
  description text CHECK (length(description) <= 500),
  enabled_events text[] NOT NULL CHECK (cardinality(enabled_events) BETWEEN 1 AND 50),
  enabled boolean NOT NULL DEFAULT true,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  secret_rotated_at timestamptz,
  deleted_at timestamptz,
  PRIMARY KEY (org_id, id),
  CHECK ((deleted_at IS NULL) = (url_enc IS NOT NULL AND secret_enc IS NOT NULL)),
  CHECK (deleted_at IS NULL OR NOT enabled)
);
CREATE INDEX webhook_endpoints_created ON webhook_endpoints (org_id, created_at DESC, id DESC)
  WHERE deleted_at IS NULL;
-- The fan-out of emitEvent reads only this: an org without enabled endpoints costs one probe.
CREATE INDEX webhook_endpoints_fanout ON webhook_endpoints (org_id) WHERE enabled;
ALTER TABLE webhook_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_endpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON webhook_endpoints
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
GRANT SELECT, INSERT ON webhook_endpoints TO billvault_app;
GRANT UPDATE (url_enc, url_host, secret_enc, secret_hint, description, enabled_events, enabled,
              updated_at, secret_rotated_at, deleted_at) ON webhook_endpoints TO billvault_app;

-- One row per (endpoint, event): the outbox the dispatcher drains. It survives restarts; a
-- claim pushes next_attempt_at out by a lease and stamps claim_token, so a dispatcher that
-- dies mid-send leaves the row to be retried once the lease ends, and two dispatchers never
-- send the same row at once (FOR UPDATE SKIP LOCKED while claiming).
CREATE TABLE webhook_deliveries (
  org_id text NOT NULL REFERENCES orgs (id),
  id text NOT NULL CHECK (id ~ '^whd_[0-9a-z]{32}$'),
  endpoint_id text NOT NULL,
  event_id text NOT NULL CHECK (event_id ~ '^evt_[0-9a-z]{32}$'),
  event_type text NOT NULL CHECK (event_type ~ '^[a-z_]+(\.[a-z_]+)+$'),
  -- the exact bytes sent (and signed) on every attempt; identifiers and amounts, no PII
  payload text NOT NULL CHECK (length(payload) <= 65536),
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'failed', 'succeeded', 'dead')),
  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_attempt_at timestamptz NOT NULL,
  claim_token text,
  last_attempt_at timestamptz,
  last_status_code integer CHECK (last_status_code BETWEEN 100 AND 599),
  -- a short sanitised reason (status code, error class): never a response body or a secret
  last_error text CHECK (length(last_error) <= 300),
  delivered_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  UNIQUE (org_id, endpoint_id, event_id),
  FOREIGN KEY (org_id, endpoint_id) REFERENCES webhook_endpoints (org_id, id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
  WHERE status IN ('pending', 'failed');
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (org_id, endpoint_id, created_at DESC, id DESC);
ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON webhook_deliveries
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
CREATE POLICY dispatcher ON webhook_deliveries
  USING (current_setting('app.webhook_dispatch', true) = 'on')
  WITH CHECK (current_setting('app.webhook_dispatch', true) = 'on');
GRANT SELECT, INSERT ON webhook_deliveries TO billvault_app;
GRANT UPDATE (status, attempts, next_attempt_at, claim_token, last_attempt_at, last_status_code,
              last_error, delivered_at, updated_at) ON webhook_deliveries TO billvault_app;

-- Delivery ids are made inside the fan-out statement (one row per subscribed endpoint), so the
-- database draws them, in the same form as the application's ids (src/domain/ids.ts): a prefix
-- and 32 characters of the lower-case base32 alphabet. A hex UUID would do as a key but not as
-- an id: long runs of decimal digits in hex can look like a card number to the card guard.
CREATE FUNCTION billvault_new_id(prefix text) RETURNS text
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
  SELECT prefix || '_' || string_agg(
           substr('0123456789abcdefghjkmnpqrstvwxyz', (get_byte(b, i) % 32) + 1, 1), '' ORDER BY i)
  FROM (SELECT decode(replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', ''), 'hex') AS b) r,
       generate_series(0, 31) AS i
$$;
