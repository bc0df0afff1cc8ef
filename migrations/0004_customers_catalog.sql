-- Customers, tax rates, products with prices, and idempotency keys (issue: invoicing core).
-- Every table follows the RLS pattern of 0001_foundation.sql.

-- Customers: every PII field is a FieldCipher ciphertext under the customer's own data key
-- (scope {org, subject: customer}), so destroying that key shreds the profile. Exact-match
-- search goes through keyed blind indexes; display_name is a non-sensitive label the org
-- chooses (e.g. a company's trading name or an account code) for prefix search.
CREATE TABLE customers (
  org_id text NOT NULL REFERENCES orgs (id),
  id text NOT NULL CHECK (id ~ '^cus_[0-9a-z]{32}$'),
  display_name text CHECK (length(display_name) BETWEEN 1 AND 200),
  name_enc text NOT NULL CHECK (name_enc LIKE 'bv1:%'),
  legal_name_enc text CHECK (legal_name_enc LIKE 'bv1:%'),
  email_enc text CHECK (email_enc LIKE 'bv1:%'),
  email_bidx text CHECK (email_bidx ~ '^[0-9a-f]{32}$'),
  cc_emails_enc text CHECK (cc_emails_enc LIKE 'bv1:%'),
  phone_enc text CHECK (phone_enc LIKE 'bv1:%'),
  billing_address_enc text CHECK (billing_address_enc LIKE 'bv1:%'),
  shipping_address_enc text CHECK (shipping_address_enc LIKE 'bv1:%'),
  tax_id_enc text CHECK (tax_id_enc LIKE 'bv1:%'),
  tax_id_bidx text CHECK (tax_id_bidx ~ '^[0-9a-f]{32}$'),
  notes_enc text CHECK (notes_enc LIKE 'bv1:%'),
  currency char(3) CHECK (currency ~ '^[A-Z]{3}$'),
  language text CHECK (language ~ '^[a-z]{2,3}(-[A-Z]{2})?$'),
  payment_terms_days integer NOT NULL DEFAULT 30 CHECK (payment_terms_days BETWEEN 0 AND 365),
  owner_user_id text REFERENCES users (id),
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
  archived_at timestamptz,
  version integer NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id)
);
CREATE INDEX customers_email ON customers (org_id, email_bidx) WHERE email_bidx IS NOT NULL;
CREATE INDEX customers_tax_id ON customers (org_id, tax_id_bidx) WHERE tax_id_bidx IS NOT NULL;
CREATE INDEX customers_display_name ON customers (org_id, lower(display_name) text_pattern_ops);
CREATE INDEX customers_owner ON customers (org_id, owner_user_id);
CREATE INDEX customers_created ON customers (org_id, created_at DESC, id DESC);
ALTER TABLE customers ENABLE ROW LEVEL SECURITY;
ALTER TABLE customers FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON customers
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
-- No DELETE: customers referenced by documents are archived, never removed (erasure is crypto-shredding).
GRANT SELECT, INSERT, UPDATE ON customers TO billvault_app;

CREATE TABLE tax_rates (
  org_id text NOT NULL REFERENCES orgs (id),
  id text NOT NULL CHECK (id ~ '^txr_[0-9a-z]{32}$'),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  percentage text NOT NULL CHECK (percentage ~ '^[0-9]{1,3}(\.[0-9]{1,6})?$'),
  inclusive boolean NOT NULL DEFAULT false,
  compound boolean NOT NULL DEFAULT false,
  category text NOT NULL CHECK (category IN ('S', 'Z', 'E', 'AE', 'K', 'G', 'O', 'L', 'M')),
  exemption_reason text CHECK (length(exemption_reason) <= 300),
  exemption_reason_code text CHECK (length(exemption_reason_code) <= 30),
  jurisdiction text CHECK (length(jurisdiction) <= 50),
  active boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id)
);
ALTER TABLE tax_rates ENABLE ROW LEVEL SECURITY;
ALTER TABLE tax_rates FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON tax_rates
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
-- A rate's terms never change once created (documents snapshot them anyway): only `active` and `name` move.
GRANT SELECT, INSERT ON tax_rates TO billvault_app;
GRANT UPDATE (name, active) ON tax_rates TO billvault_app;

CREATE TABLE products (
  org_id text NOT NULL REFERENCES orgs (id),
  id text NOT NULL CHECK (id ~ '^prd_[0-9a-z]{32}$'),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  description text CHECK (length(description) <= 2000),
  unit_code text NOT NULL DEFAULT 'C62' CHECK (unit_code ~ '^[A-Z0-9]{1,3}$'),
  tax_rate_ids text[] NOT NULL DEFAULT '{}',
  active boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id)
);
CREATE INDEX products_created ON products (org_id, created_at DESC, id DESC);
ALTER TABLE products ENABLE ROW LEVEL SECURITY;
ALTER TABLE products FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON products
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
GRANT SELECT, INSERT, UPDATE ON products TO billvault_app;

-- One price per product and currency: integer minor units, or a decimal string of minor units
-- (up to 6 decimals) for sub-minor unit prices.
CREATE TABLE product_prices (
  org_id text NOT NULL,
  product_id text NOT NULL,
  currency char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  unit_amount bigint,
  unit_amount_decimal text CHECK (unit_amount_decimal ~ '^-?[0-9]{1,18}(\.[0-9]{1,6})?$'),
  PRIMARY KEY (org_id, product_id, currency),
  FOREIGN KEY (org_id, product_id) REFERENCES products (org_id, id),
  CHECK ((unit_amount IS NULL) <> (unit_amount_decimal IS NULL))
);
ALTER TABLE product_prices ENABLE ROW LEVEL SECURITY;
ALTER TABLE product_prices FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON product_prices
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON product_prices TO billvault_app;

-- Idempotency keys (DESIGN.md §6): the first request under a key is recorded as in progress;
-- its response is stored when it completes; a repeat with the same body gets that response,
-- with another body a 409, and while the first is still running a 409 as well.
CREATE TABLE idempotency_keys (
  org_id text NOT NULL REFERENCES orgs (id),
  key text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
  actor_id text NOT NULL,
  request_hash text NOT NULL CHECK (request_hash ~ '^[0-9a-f]{64}$'),
  status text NOT NULL CHECK (status IN ('in_progress', 'completed')),
  response_status integer,
  response_enc text CHECK (response_enc LIKE 'bv1:%'),
  created_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz,
  PRIMARY KEY (org_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON idempotency_keys
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO billvault_app;
