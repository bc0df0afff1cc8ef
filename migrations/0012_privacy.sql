-- Privacy tooling (issue 7): erasure by crypto-shredding, legal hold, restricted retention of the
-- legally required buyer details (GDPR Art. 17(3)(b) / 18), and retention housekeeping.
-- Every new table follows the RLS pattern of 0001_foundation.sql.

-- Customers: erased and legal-hold state. An erased customer keeps its row (documents and the
-- ledger refer to it) but no PII: every ciphertext and blind index is gone, and its data keys
-- are destroyed. The database refuses an erased row that still holds any of them, and an
-- erasure while a legal hold is on.
ALTER TABLE customers ADD COLUMN erased_at timestamptz;
ALTER TABLE customers ADD COLUMN legal_hold_at timestamptz;
ALTER TABLE customers ADD COLUMN legal_hold_by text;
ALTER TABLE customers ADD COLUMN legal_hold_reason text CHECK (length(legal_hold_reason) BETWEEN 1 AND 500);
ALTER TABLE customers ALTER COLUMN name_enc DROP NOT NULL;
ALTER TABLE customers ADD CONSTRAINT customers_name_unless_erased
  CHECK (name_enc IS NOT NULL OR erased_at IS NOT NULL);
ALTER TABLE customers ADD CONSTRAINT customers_erased_blank CHECK (
  erased_at IS NULL OR (
    name_enc IS NULL AND legal_name_enc IS NULL AND email_enc IS NULL AND email_bidx IS NULL
    AND cc_emails_enc IS NULL AND phone_enc IS NULL AND billing_address_enc IS NULL
    AND shipping_address_enc IS NULL AND tax_id_enc IS NULL AND tax_id_bidx IS NULL AND notes_enc IS NULL
  )
);
ALTER TABLE customers ADD CONSTRAINT customers_hold_blocks_erasure
  CHECK (erased_at IS NULL OR legal_hold_at IS NULL);
ALTER TABLE customers ADD CONSTRAINT customers_hold_complete
  CHECK ((legal_hold_at IS NULL) = (legal_hold_reason IS NULL));

-- The buyer details of an erased customer's finalised invoices, moved out of the invoice and
-- re-encrypted under a retention key of the org (subject "retention", one key per year of
-- retain_until), restricted (Art. 18: readable only with privacy:read_restricted, each read
-- audited), and purged once retain_until has passed (details_enc cleared, the year's key
-- destroyed when its year is over).
CREATE TABLE retained_buyer_details (
  org_id text NOT NULL REFERENCES orgs (id),
  invoice_id text NOT NULL,
  customer_id text NOT NULL,
  details_enc text CHECK (details_enc LIKE 'bv1:%'),
  retention_key text NOT NULL CHECK (retention_key ~ '^y[0-9]{4}$'),
  retain_until date NOT NULL,
  restricted_at timestamptz NOT NULL DEFAULT now(),
  purged_at timestamptz,
  PRIMARY KEY (org_id, invoice_id),
  FOREIGN KEY (org_id, invoice_id) REFERENCES invoices (org_id, id),
  FOREIGN KEY (org_id, customer_id) REFERENCES customers (org_id, id),
  CHECK ((details_enc IS NULL) = (purged_at IS NOT NULL))
);
CREATE INDEX retained_buyer_details_customer ON retained_buyer_details (org_id, customer_id);
CREATE INDEX retained_buyer_details_due ON retained_buyer_details (org_id, retain_until) WHERE purged_at IS NULL;
ALTER TABLE retained_buyer_details ENABLE ROW LEVEL SECURITY;
ALTER TABLE retained_buyer_details FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON retained_buyer_details
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
GRANT SELECT, INSERT ON retained_buyer_details TO billvault_app;
GRANT UPDATE (details_enc, purged_at) ON retained_buyer_details TO billvault_app;

-- A finalised invoice stays immutable, with one exception: its buyer snapshot may be cleared,
-- and only once a retained (restricted) copy of it exists (erasure moves it there). Same guard
-- as 0008 otherwise.
CREATE OR REPLACE FUNCTION invoices_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  buyer text := NEW.buyer_snapshot_enc;
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
  IF NEW.buyer_snapshot_enc IS NULL AND OLD.buyer_snapshot_enc IS NOT NULL AND EXISTS (
       SELECT 1 FROM retained_buyer_details r
        WHERE r.org_id = OLD.org_id AND r.invoice_id = OLD.id) THEN
    buyer := OLD.buyer_snapshot_enc;
  END IF;
  IF NEW.status = 'draft'
     OR (OLD.status = 'void' AND NEW.status <> OLD.status)
     OR (OLD.status = 'paid' AND NEW.status <> OLD.status AND NOT (NEW.status = 'open' AND NEW.amount_remaining > 0))
     OR (ROW(NEW.org_id, NEW.id, NEW.customer_id, NEW.number, NEW.currency, NEW.rounding, NEW.issue_date, NEW.due_date,
             NEW.payment_terms_days, NEW.po_number, NEW.notes_enc, NEW.footer, NEW.discounts, NEW.charges, NEW.tax_inclusive,
             NEW.subtotal, NEW.line_extension_amount, NEW.allowance_total_amount, NEW.charge_total_amount,
             NEW.tax_exclusive_amount, NEW.tax_amount, NEW.total, NEW.prepaid_amount, NEW.amount_due, NEW.tax_breakdown,
             NEW.base_currency, NEW.fx_rate, NEW.total_base, NEW.seller_snapshot, buyer, NEW.finalized_at,
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

-- Retention keys: data keys of the org whose subject is a retention year ('y2036').
ALTER TABLE org_data_keys DROP CONSTRAINT org_data_keys_subject_type_check;
ALTER TABLE org_data_keys ADD CONSTRAINT org_data_keys_subject_type_check
  CHECK (subject_type IN ('org', 'customer', 'user', 'retention'));

-- Retention housekeeping (billvault retention run). The application role still may not DELETE
-- sessions or quotes: it gets two narrow functions instead, which remove only ended sessions
-- and draft quotes, only in the transaction's org, only older than the cut-off given.
CREATE FUNCTION purge_ended_sessions(cutoff timestamptz) RETURNS bigint
  LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  WITH gone AS (
    DELETE FROM sessions
     WHERE org_id = current_setting('app.org_id', true)
       AND (expires_at < cutoff OR revoked_at < cutoff)
    RETURNING 1)
  SELECT count(*) FROM gone
$$;
CREATE FUNCTION purge_stale_draft_quotes(cutoff timestamptz) RETURNS bigint
  LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  WITH gone AS (
    DELETE FROM quotes
     WHERE org_id = current_setting('app.org_id', true)
       AND status = 'draft' AND updated_at < cutoff
    RETURNING 1)
  SELECT count(*) FROM gone
$$;
REVOKE ALL ON FUNCTION purge_ended_sessions(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION purge_stale_draft_quotes(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION purge_ended_sessions(timestamptz) TO billvault_app;
GRANT EXECUTE ON FUNCTION purge_stale_draft_quotes(timestamptz) TO billvault_app;
