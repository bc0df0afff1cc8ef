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
-- events (charge.refunded, charge.dispute.created) find their payment here; the platform
-- lookup reads one ref by its exact value to learn the org, nothing else.
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
CREATE POLICY gateway_route ON gateway_refs FOR SELECT
  USING (current_setting('app.platform', true) = 'on'
         AND ref = current_setting('app.gateway_ref', true));
GRANT SELECT, INSERT ON gateway_refs TO billvault_app;

-- Which org an invoice named in a gateway event's metadata belongs to: visible to a platform
-- transaction that names that one invoice id exactly (ids are 160-bit random), and used to read
-- its org_id only, before the event's signature is checked with that org's secret.
CREATE POLICY gateway_route ON invoices FOR SELECT
  USING (current_setting('app.platform', true) = 'on'
         AND id = current_setting('app.gateway_invoice', true));

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
