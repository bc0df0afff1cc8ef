-- Payments, their allocations to invoices, and refunds (issue 6). Every table follows the RLS
-- pattern of 0001_foundation.sql; journal entries go through the ledger tables of 0005.
--
-- Money rule kept by the use cases (row locks, one transaction each):
--   payments.amount = sum(active allocations of the payment) + amount_unapplied + amount_refunded
-- and the customer-credit account of the ledger always holds at least the sum of the payments'
-- unapplied amounts (the rest is credit from credit notes and voids).

CREATE TABLE payments (
  org_id text NOT NULL REFERENCES orgs (id),
  id text NOT NULL CHECK (id ~ '^pay_[0-9a-z]{32}$'),
  customer_id text NOT NULL,
  amount bigint NOT NULL CHECK (amount > 0),
  currency char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  method text NOT NULL CHECK (method IN ('bank_transfer', 'card', 'cash', 'cheque', 'other')),
  -- Remittance text often carries the payer's name, so it is PII: encrypted under the
  -- customer's data key (crypto-shredded with the customer).
  reference_enc text CHECK (reference_enc LIKE 'bv1:%'),
  received_on date NOT NULL,
  amount_unapplied bigint NOT NULL CHECK (amount_unapplied >= 0),
  amount_refunded bigint NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0),
  -- Card payments: never a card number (DESIGN.md §5); the gateway's token (encrypted), brand,
  -- last four digits and expiry only.
  card_token_enc text CHECK (card_token_enc LIKE 'bv1:%'),
  card_brand text CHECK (length(card_brand) <= 30),
  card_last4 char(4) CHECK (card_last4 ~ '^[0-9]{4}$'),
  card_exp_month smallint CHECK (card_exp_month BETWEEN 1 AND 12),
  card_exp_year smallint CHECK (card_exp_year BETWEEN 2000 AND 2100),
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, customer_id) REFERENCES customers (org_id, id),
  CHECK (amount_unapplied + amount_refunded <= amount),
  CHECK (method = 'card' OR (card_token_enc IS NULL AND card_brand IS NULL AND card_last4 IS NULL
                             AND card_exp_month IS NULL AND card_exp_year IS NULL))
);
CREATE INDEX payments_created ON payments (org_id, created_at DESC, id DESC);
CREATE INDEX payments_customer ON payments (org_id, customer_id, created_at, id);
CREATE INDEX payments_unapplied ON payments (org_id, customer_id, currency) WHERE amount_unapplied > 0;
ALTER TABLE payments ENABLE ROW LEVEL SECURITY;
ALTER TABLE payments FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON payments
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
-- A recorded payment's amount, customer and currency never change: only its balances move.
GRANT SELECT, INSERT ON payments TO billvault_app;
GRANT UPDATE (amount_unapplied, amount_refunded, updated_at) ON payments TO billvault_app;

-- Money settling an invoice: from a payment (source 'payment'), or from customer credit that
-- came from credit notes or voids (source 'credit', no payment). Unapplying stamps unapplied_at;
-- a row is never deleted, so the history of every allocation stays.
CREATE TABLE payment_allocations (
  org_id text NOT NULL REFERENCES orgs (id),
  id text NOT NULL CHECK (id ~ '^pal_[0-9a-z]{32}$'),
  customer_id text NOT NULL,
  payment_id text,
  invoice_id text NOT NULL,
  source text NOT NULL CHECK (source IN ('payment', 'credit')),
  amount bigint NOT NULL CHECK (amount > 0),
  currency char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  -- a payment on a written-off invoice is a bad-debt recovery (credited to bad debt, not AR)
  written_off boolean NOT NULL DEFAULT false,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  unapplied_at timestamptz,
  unapplied_by text,
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, customer_id) REFERENCES customers (org_id, id),
  FOREIGN KEY (org_id, payment_id) REFERENCES payments (org_id, id),
  FOREIGN KEY (org_id, invoice_id) REFERENCES invoices (org_id, id),
  CHECK ((source = 'payment') = (payment_id IS NOT NULL)),
  CHECK ((unapplied_at IS NULL) = (unapplied_by IS NULL))
);
CREATE INDEX payment_allocations_payment ON payment_allocations (org_id, payment_id) WHERE payment_id IS NOT NULL;
CREATE INDEX payment_allocations_invoice ON payment_allocations (org_id, invoice_id);
ALTER TABLE payment_allocations ENABLE ROW LEVEL SECURITY;
ALTER TABLE payment_allocations FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON payment_allocations
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
GRANT SELECT, INSERT ON payment_allocations TO billvault_app;
GRANT UPDATE (unapplied_at, unapplied_by) ON payment_allocations TO billvault_app;

-- An allocation is unapplied once, and nothing else about it ever changes.
CREATE FUNCTION payment_allocations_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.unapplied_at IS NOT NULL THEN
    RAISE EXCEPTION 'allocation % is already unapplied', OLD.id USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER payment_allocations_once BEFORE UPDATE ON payment_allocations
  FOR EACH ROW EXECUTE FUNCTION payment_allocations_guard();

CREATE TABLE refunds (
  org_id text NOT NULL REFERENCES orgs (id),
  id text NOT NULL CHECK (id ~ '^ref_[0-9a-z]{32}$'),
  customer_id text NOT NULL,
  -- the payment refunded (from its unapplied money), or null for a refund of customer credit
  payment_id text,
  amount bigint NOT NULL CHECK (amount > 0),
  currency char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  -- free text that may name people: encrypted under the customer's data key
  reason_enc text NOT NULL CHECK (reason_enc LIKE 'bv1:%'),
  status text NOT NULL CHECK (status IN ('pending_approval', 'posted', 'rejected')),
  requested_by text NOT NULL,
  approved_by text,
  rejected_by text,
  posted_at timestamptz,
  decided_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, customer_id) REFERENCES customers (org_id, id),
  FOREIGN KEY (org_id, payment_id) REFERENCES payments (org_id, id),
  -- four eyes: whoever asked for a refund can never be the one who approves it
  CHECK (approved_by IS NULL OR approved_by <> requested_by),
  CHECK ((status = 'posted') = (posted_at IS NOT NULL)),
  CHECK (status <> 'rejected' OR rejected_by IS NOT NULL)
);
CREATE INDEX refunds_created ON refunds (org_id, created_at DESC, id DESC);
CREATE INDEX refunds_payment ON refunds (org_id, payment_id) WHERE payment_id IS NOT NULL;
CREATE INDEX refunds_pending ON refunds (org_id, customer_id) WHERE status = 'pending_approval';
ALTER TABLE refunds ENABLE ROW LEVEL SECURITY;
ALTER TABLE refunds FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON refunds
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
GRANT SELECT, INSERT ON refunds TO billvault_app;
GRANT UPDATE (status, approved_by, rejected_by, posted_at, decided_at, updated_at) ON refunds TO billvault_app;

-- Only a pending refund moves, and only once (to posted or rejected).
CREATE FUNCTION refunds_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status <> 'pending_approval' THEN
    RAISE EXCEPTION 'refund % is % and cannot change', OLD.id, OLD.status USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER refunds_once BEFORE UPDATE ON refunds
  FOR EACH ROW EXECUTE FUNCTION refunds_guard();

-- Unapplying a payment from a paid invoice reopens it (paid → open with a remainder again).
-- Same guard as 0005 otherwise: void stays final, and a paid invoice may only go back to open.
CREATE OR REPLACE FUNCTION invoices_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.status <> 'draft' THEN
      RAISE EXCEPTION 'invoice % is finalized and cannot be deleted', OLD.id USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN OLD;
  END IF;
  IF OLD.status = 'draft' THEN
    RETURN NEW;
  END IF;
  IF NEW.status = 'draft'
     OR (OLD.status = 'void' AND NEW.status <> OLD.status)
     OR (OLD.status = 'paid' AND NEW.status <> OLD.status AND NOT (NEW.status = 'open' AND NEW.amount_remaining > 0))
     OR (ROW(NEW.org_id, NEW.id, NEW.customer_id, NEW.number, NEW.currency, NEW.rounding, NEW.issue_date, NEW.due_date,
             NEW.payment_terms_days, NEW.po_number, NEW.notes_enc, NEW.footer, NEW.discounts, NEW.charges, NEW.tax_inclusive,
             NEW.subtotal, NEW.line_extension_amount, NEW.allowance_total_amount, NEW.charge_total_amount,
             NEW.tax_exclusive_amount, NEW.tax_amount, NEW.total, NEW.prepaid_amount, NEW.amount_due, NEW.tax_breakdown,
             NEW.base_currency, NEW.fx_rate, NEW.total_base, NEW.seller_snapshot, NEW.buyer_snapshot_enc, NEW.finalized_at,
             NEW.created_at)
         IS DISTINCT FROM
         ROW(OLD.org_id, OLD.id, OLD.customer_id, OLD.number, OLD.currency, OLD.rounding, OLD.issue_date, OLD.due_date,
             OLD.payment_terms_days, OLD.po_number, OLD.notes_enc, OLD.footer, OLD.discounts, OLD.charges, OLD.tax_inclusive,
             OLD.subtotal, OLD.line_extension_amount, OLD.allowance_total_amount, OLD.charge_total_amount,
             OLD.tax_exclusive_amount, OLD.tax_amount, OLD.total, OLD.prepaid_amount, OLD.amount_due, OLD.tax_breakdown,
             OLD.base_currency, OLD.fx_rate, OLD.total_base, OLD.seller_snapshot, OLD.buyer_snapshot_enc, OLD.finalized_at,
             OLD.created_at)) THEN
    RAISE EXCEPTION 'invoice % is finalized and cannot be changed', OLD.id USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NEW;
END
$$;
