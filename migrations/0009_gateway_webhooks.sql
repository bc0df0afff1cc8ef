-- Inbound payment-gateway webhooks (issue 6): per-org webhook secrets, the event log that
-- deduplicates deliveries, the gateway references that route later events (refunds, disputes)
-- to their payment, and disputed payments. Every table follows the RLS pattern of 0001.

-- A gateway's webhook signing secrets of one org: the current one and, during a rotation, the
-- previous one. Encrypted under the org's data key (row id = provider); never returned.
CREATE TABLE gateway_secrets (
  org_id text NOT NULL REFERENCES orgs (id),
  provider text NOT NULL CHECK (provider IN ('stripe')),
  secret_enc text NOT NULL CHECK (secret_enc LIKE 'bv1:%'),
  previous_secret_enc text CHECK (previous_secret_enc LIKE 'bv1:%'),
  updated_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, provider)
);
ALTER TABLE gateway_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway_secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON gateway_secrets
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON gateway_secrets TO billvault_app;

-- Every verified event, once: the primary key is the deduplication. The row is claimed first in
-- the transaction that records the payment (or refund, or dispute), so a replayed delivery waits
-- for the first one and then finds it. Ids only: no payload, no card data.
CREATE TABLE gateway_events (
  org_id text NOT NULL REFERENCES orgs (id),
  provider text NOT NULL CHECK (provider IN ('stripe')),
  event_id text NOT NULL CHECK (event_id ~ '^[A-Za-z0-9_]{1,255}$'),
  event_type text NOT NULL CHECK (event_type ~ '^[a-z0-9_.]{1,100}$'),
  outcome text NOT NULL CHECK (outcome IN ('received', 'processed', 'ignored')),
  reason text CHECK (reason ~ '^[a-z_]{1,64}$'),
  payment_id text,
  refund_id text,
  invoice_id text,
  received_at timestamptz NOT NULL DEFAULT now(),
  processed_at timestamptz,
  PRIMARY KEY (org_id, provider, event_id)
);
ALTER TABLE gateway_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway_events FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON gateway_events
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
GRANT SELECT, INSERT ON gateway_events TO billvault_app;
GRANT UPDATE (outcome, reason, payment_id, refund_id, invoice_id, processed_at) ON gateway_events TO billvault_app;

-- The gateway's own ids of a recorded payment (Stripe: the PaymentIntent pi_… and the Charge
-- ch_…). One real payment reaches us as several events (payment_intent.succeeded and
-- charge.succeeded): whichever comes first claims these refs, the other finds them. Later
-- events (charge.refunded, charge.dispute.created) find their payment here.
CREATE TABLE gateway_refs (
  org_id text NOT NULL REFERENCES orgs (id),
  provider text NOT NULL CHECK (provider IN ('stripe')),
  ref text NOT NULL CHECK (ref ~ '^[A-Za-z0-9_]{1,255}$'),
  payment_id text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, provider, ref),
  -- the refs are claimed before the payment row is written in the same transaction
  FOREIGN KEY (org_id, payment_id) REFERENCES payments (org_id, id) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX gateway_refs_lookup ON gateway_refs (provider, ref);
CREATE INDEX gateway_refs_payment ON gateway_refs (org_id, payment_id);
ALTER TABLE gateway_refs ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway_refs FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON gateway_refs
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
GRANT SELECT, INSERT ON gateway_refs TO billvault_app;

-- Routing an event to its org before its signature can be checked (the org's secret verifies
-- it): a role of its own that reads only the org_id of ONE invoice or gateway ref, the one whose
-- exact id the transaction names in app.gateway_invoice / app.gateway_ref (invoice ids are
-- 160-bit random). Its policies apply to it alone, so billvault_app's queries keep their single
-- org_isolation policy (an OR of policies would stop the planner using the (org_id, id) keys).
DO $$
BEGIN
  CREATE ROLE billvault_router NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
EXCEPTION
  WHEN duplicate_object OR unique_violation THEN NULL; -- roles are cluster-wide
END
$$;
DO $$
BEGIN
  IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    EXECUTE format('GRANT billvault_router TO %I', current_user);
  END IF;
EXCEPTION
  WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;
GRANT USAGE ON SCHEMA public TO billvault_router;
GRANT SELECT (org_id, id) ON invoices TO billvault_router;
GRANT SELECT (org_id, provider, ref) ON gateway_refs TO billvault_router;
CREATE POLICY gateway_route ON invoices FOR SELECT TO billvault_router
  USING (id = current_setting('app.gateway_invoice', true));
CREATE POLICY gateway_route ON gateway_refs FOR SELECT TO billvault_router
  USING (ref = current_setting('app.gateway_ref', true));

-- Card disputes (chargebacks) opened at the gateway.
ALTER TABLE payments
  ADD COLUMN gateway text CHECK (gateway IN ('stripe')),
  ADD COLUMN disputed_at timestamptz,
  ADD COLUMN dispute_reason text CHECK (dispute_reason ~ '^[a-z_]{1,64}$');
GRANT UPDATE (disputed_at, dispute_reason) ON payments TO billvault_app;

-- Refunds executed at the gateway (already paid out: no four-eyes wait), with the gateway's id.
ALTER TABLE refunds
  ADD COLUMN gateway text CHECK (gateway IN ('stripe')),
  ADD COLUMN gateway_ref text CHECK (gateway_ref ~ '^[A-Za-z0-9_]{1,255}$');
