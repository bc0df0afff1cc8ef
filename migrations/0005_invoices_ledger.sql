-- Invoices, gap-free numbering, credit notes, quotes and the double-entry ledger.
-- Every table follows the RLS pattern of 0001_foundation.sql.

-- Gap-free counters: one row per (series, period scope). A number is taken by an UPDATE of
-- this row as the last statement before commit, so the row is locked only for the commit.
CREATE TABLE document_sequences (
  org_id text NOT NULL REFERENCES orgs (id),
  series text NOT NULL CHECK (series IN ('invoice', 'credit_note', 'quote')),
  scope text NOT NULL CHECK (length(scope) <= 20),
  last_value bigint NOT NULL CHECK (last_value >= 0),
  PRIMARY KEY (org_id, series, scope)
);
ALTER TABLE document_sequences ENABLE ROW LEVEL SECURITY;
ALTER TABLE document_sequences FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON document_sequences
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
GRANT SELECT, INSERT, UPDATE ON document_sequences TO billvault_app;

CREATE TABLE invoices (
  org_id text NOT NULL REFERENCES orgs (id),
  id text NOT NULL CHECK (id ~ '^inv_[0-9a-z]{32}$'),
  customer_id text NOT NULL,
  status text NOT NULL CHECK (status IN ('draft', 'open', 'paid', 'void', 'uncollectible')),
  number text CHECK (length(number) <= 64),
  currency char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  rounding text NOT NULL CHECK (rounding IN ('half_up', 'half_even')),
  issue_date date,
  due_date date,
  payment_terms_days integer NOT NULL CHECK (payment_terms_days BETWEEN 0 AND 365),
  po_number text CHECK (length(po_number) <= 100),
  -- free text shown on the invoice; may name people, so it is encrypted under the customer's key
  notes_enc text CHECK (notes_enc LIKE 'bv1:%'),
  footer text CHECK (length(footer) <= 2000),
  discounts jsonb NOT NULL DEFAULT '[]'::jsonb,
  charges jsonb NOT NULL DEFAULT '[]'::jsonb,
  tax_inclusive boolean NOT NULL DEFAULT false,
  subtotal bigint NOT NULL,
  line_extension_amount bigint NOT NULL,
  allowance_total_amount bigint NOT NULL,
  charge_total_amount bigint NOT NULL,
  tax_exclusive_amount bigint NOT NULL,
  tax_amount bigint NOT NULL,
  total bigint NOT NULL,
  prepaid_amount bigint NOT NULL DEFAULT 0,
  amount_due bigint NOT NULL,
  amount_paid bigint NOT NULL DEFAULT 0 CHECK (amount_paid >= 0),
  amount_credited bigint NOT NULL DEFAULT 0 CHECK (amount_credited >= 0),
  amount_remaining bigint NOT NULL CHECK (amount_remaining >= 0),
  tax_breakdown jsonb NOT NULL DEFAULT '[]'::jsonb,
  base_currency char(3) CHECK (base_currency ~ '^[A-Z]{3}$'),
  fx_rate text CHECK (fx_rate ~ '^[0-9]{1,12}(\.[0-9]{1,12})?$'),
  total_base bigint,
  seller_snapshot jsonb,
  -- legally required buyer details frozen at finalisation, under the org's (retention) key
  buyer_snapshot_enc text CHECK (buyer_snapshot_enc LIKE 'bv1:%'),
  finalized_at timestamptz,
  paid_at timestamptz,
  voided_at timestamptz,
  uncollectible_at timestamptz,
  version integer NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, customer_id) REFERENCES customers (org_id, id),
  CHECK ((status = 'draft') = (number IS NULL)),
  CHECK (status = 'draft' OR (issue_date IS NOT NULL AND due_date IS NOT NULL AND finalized_at IS NOT NULL))
);
CREATE UNIQUE INDEX invoices_number ON invoices (org_id, number) WHERE number IS NOT NULL;
CREATE INDEX invoices_created ON invoices (org_id, created_at DESC, id DESC);
CREATE INDEX invoices_customer ON invoices (org_id, customer_id, created_at DESC, id DESC);
CREATE INDEX invoices_status ON invoices (org_id, status, created_at DESC, id DESC);
CREATE INDEX invoices_open_due ON invoices (org_id, due_date) WHERE status IN ('open', 'uncollectible');
ALTER TABLE invoices ENABLE ROW LEVEL SECURITY;
ALTER TABLE invoices FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON invoices
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON invoices TO billvault_app;

CREATE TABLE invoice_lines (
  org_id text NOT NULL,
  invoice_id text NOT NULL,
  position integer NOT NULL CHECK (position >= 0),
  product_id text,
  description text NOT NULL CHECK (length(description) <= 1000),
  quantity text NOT NULL,
  unit_code text NOT NULL DEFAULT 'C62',
  unit_amount bigint,
  unit_amount_decimal text,
  discounts jsonb NOT NULL DEFAULT '[]'::jsonb,
  charges jsonb NOT NULL DEFAULT '[]'::jsonb,
  tax_rates jsonb NOT NULL DEFAULT '[]'::jsonb,
  gross_amount bigint NOT NULL,
  discount_amount bigint NOT NULL,
  charge_amount bigint NOT NULL,
  amount bigint NOT NULL,
  net_amount bigint NOT NULL,
  PRIMARY KEY (org_id, invoice_id, position),
  FOREIGN KEY (org_id, invoice_id) REFERENCES invoices (org_id, id) ON DELETE CASCADE,
  CHECK ((unit_amount IS NULL) <> (unit_amount_decimal IS NULL))
);
ALTER TABLE invoice_lines ENABLE ROW LEVEL SECURITY;
ALTER TABLE invoice_lines FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON invoice_lines
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON invoice_lines TO billvault_app;

-- A finalised invoice is immutable: the database refuses, whoever asks. Only the settlement
-- columns move after finalisation, and only along the state machine.
CREATE FUNCTION invoices_guard() RETURNS trigger LANGUAGE plpgsql AS $$
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
     OR (OLD.status IN ('paid', 'void') AND NEW.status <> OLD.status)
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
CREATE TRIGGER invoices_immutable BEFORE UPDATE OR DELETE ON invoices
  FOR EACH ROW EXECUTE FUNCTION invoices_guard();

CREATE FUNCTION invoice_lines_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  st text;
  inv text := COALESCE(NEW.invoice_id, OLD.invoice_id);
  org text := COALESCE(NEW.org_id, OLD.org_id);
BEGIN
  SELECT status INTO st FROM invoices WHERE org_id = org AND id = inv;
  -- st is null while the invoice itself is being deleted (cascade from a draft)
  IF st IS NOT NULL AND st <> 'draft' THEN
    RAISE EXCEPTION 'invoice % is finalized: its lines cannot change', inv USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN COALESCE(NEW, OLD);
END
$$;
CREATE TRIGGER invoice_lines_immutable BEFORE INSERT OR UPDATE OR DELETE ON invoice_lines
  FOR EACH ROW EXECUTE FUNCTION invoice_lines_guard();

CREATE TABLE credit_notes (
  org_id text NOT NULL REFERENCES orgs (id),
  id text NOT NULL CHECK (id ~ '^cn_[0-9a-z]{32}$'),
  invoice_id text NOT NULL,
  customer_id text NOT NULL,
  number text NOT NULL CHECK (length(number) <= 64),
  currency char(3) NOT NULL,
  reason text NOT NULL CHECK (reason IN ('duplicate', 'fraudulent', 'order_change', 'product_unsatisfactory', 'pricing_error', 'other')),
  memo text CHECK (length(memo) <= 1000),
  lines jsonb NOT NULL,
  tax_breakdown jsonb NOT NULL,
  tax_exclusive_amount bigint NOT NULL CHECK (tax_exclusive_amount >= 0),
  tax_amount bigint NOT NULL CHECK (tax_amount >= 0),
  total bigint NOT NULL CHECK (total > 0),
  applied_to_invoice bigint NOT NULL CHECK (applied_to_invoice >= 0),
  customer_credit bigint NOT NULL CHECK (customer_credit >= 0),
  issue_date date NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, invoice_id) REFERENCES invoices (org_id, id),
  FOREIGN KEY (org_id, customer_id) REFERENCES customers (org_id, id),
  CHECK (applied_to_invoice + customer_credit = total)
);
CREATE UNIQUE INDEX credit_notes_number ON credit_notes (org_id, number);
CREATE INDEX credit_notes_invoice ON credit_notes (org_id, invoice_id);
ALTER TABLE credit_notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE credit_notes FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON credit_notes
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
-- Credit notes are issued documents: insert and read only.
GRANT SELECT, INSERT ON credit_notes TO billvault_app;

CREATE TABLE quotes (
  org_id text NOT NULL REFERENCES orgs (id),
  id text NOT NULL CHECK (id ~ '^quo_[0-9a-z]{32}$'),
  customer_id text NOT NULL,
  status text NOT NULL CHECK (status IN ('draft', 'sent', 'accepted', 'declined', 'expired')),
  number text CHECK (length(number) <= 64),
  currency char(3) NOT NULL,
  content jsonb NOT NULL,
  subtotal bigint NOT NULL,
  tax_amount bigint NOT NULL,
  total bigint NOT NULL,
  expires_on date,
  invoice_id text,
  version integer NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, customer_id) REFERENCES customers (org_id, id),
  FOREIGN KEY (org_id, invoice_id) REFERENCES invoices (org_id, id)
);
CREATE UNIQUE INDEX quotes_number ON quotes (org_id, number) WHERE number IS NOT NULL;
CREATE INDEX quotes_created ON quotes (org_id, created_at DESC, id DESC);
ALTER TABLE quotes ENABLE ROW LEVEL SECURITY;
ALTER TABLE quotes FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON quotes
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
GRANT SELECT, INSERT, UPDATE ON quotes TO billvault_app;

-- The ledger: append-only balanced journal entries.
CREATE TABLE journal_entries (
  org_id text NOT NULL REFERENCES orgs (id),
  id text NOT NULL CHECK (id ~ '^je_[0-9a-z]{32}$'),
  kind text NOT NULL,
  currency char(3) NOT NULL,
  reference text NOT NULL,
  posted_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id)
);
CREATE INDEX journal_entries_reference ON journal_entries (org_id, reference);
CREATE INDEX journal_entries_posted ON journal_entries (org_id, posted_at, id);

CREATE TABLE journal_lines (
  org_id text NOT NULL,
  entry_id text NOT NULL,
  line_no integer NOT NULL,
  account text NOT NULL CHECK (account IN ('accounts_receivable', 'revenue', 'tax_payable', 'customer_credit', 'cash', 'refunds', 'bad_debt', 'fx_gain_loss')),
  debit bigint NOT NULL CHECK (debit >= 0),
  credit bigint NOT NULL CHECK (credit >= 0),
  customer_id text,
  invoice_id text,
  tax_group text,
  PRIMARY KEY (org_id, entry_id, line_no),
  FOREIGN KEY (org_id, entry_id) REFERENCES journal_entries (org_id, id),
  CHECK ((debit = 0) <> (credit = 0))
);
CREATE INDEX journal_lines_account ON journal_lines (org_id, account, customer_id);
CREATE INDEX journal_lines_invoice ON journal_lines (org_id, invoice_id) WHERE invoice_id IS NOT NULL;

-- Every entry must balance when its transaction commits (deferred, so lines can be inserted one by one).
CREATE FUNCTION journal_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  d bigint;
  c bigint;
BEGIN
  SELECT COALESCE(sum(debit), 0), COALESCE(sum(credit), 0) INTO d, c
    FROM journal_lines WHERE org_id = NEW.org_id AND entry_id = NEW.entry_id;
  IF d <> c THEN
    RAISE EXCEPTION 'journal entry % does not balance (debits %, credits %)', NEW.entry_id, d, c
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER journal_lines_balanced AFTER INSERT ON journal_lines
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION journal_entry_balanced();

ALTER TABLE journal_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE journal_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON journal_entries
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
ALTER TABLE journal_lines ENABLE ROW LEVEL SECURITY;
ALTER TABLE journal_lines FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON journal_lines
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
-- Append-only for the application: corrections are new entries, never edits.
GRANT SELECT, INSERT ON journal_entries, journal_lines TO billvault_app;
