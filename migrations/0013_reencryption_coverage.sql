-- Re-encryption and master-key rotation reach every encrypted value (issue 4 follow-up, issue 7).
--
-- `billvault keys reencrypt` now covers invoices.notes_enc and buyer_snapshot_enc,
-- payments.reference_enc and card_token_enc, refunds.reason_enc, idempotency_keys.response_enc
-- and users.totp_secret_enc (src/adapters/crypto/encrypted-tables.ts). Re-encryption moves a
-- value to another data key and never changes what it says, so the guards of finalised
-- invoices and decided refunds let exactly that through: a ciphertext replaced by one under a
-- different key id (`bv1:<key id>:…`). Any other change is still refused.
-- `billvault keys rotate --master` re-wraps the audit checkpoint signing seeds too.

CREATE FUNCTION bv_rekeyed(old_value text, new_value text) RETURNS boolean
  LANGUAGE sql IMMUTABLE AS $$
  SELECT old_value IS NOT NULL AND new_value IS NOT NULL
     AND old_value LIKE 'bv1:%' AND new_value LIKE 'bv1:%'
     AND split_part(old_value, ':', 2) <> split_part(new_value, ':', 2)
$$;

-- Same guard as 0012 (0008 plus the erasure exception), except that a re-keyed notes_enc or
-- buyer_snapshot_enc counts as unchanged.
CREATE OR REPLACE FUNCTION invoices_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  new_notes text := CASE WHEN bv_rekeyed(OLD.notes_enc, NEW.notes_enc) THEN OLD.notes_enc ELSE NEW.notes_enc END;
  new_buyer text := CASE WHEN bv_rekeyed(OLD.buyer_snapshot_enc, NEW.buyer_snapshot_enc)
                         THEN OLD.buyer_snapshot_enc ELSE NEW.buyer_snapshot_enc END;
BEGIN
  -- Erasure (0012): the buyer snapshot may be cleared once a retained, restricted copy exists.
  IF TG_OP = 'UPDATE' AND NEW.buyer_snapshot_enc IS NULL AND OLD.buyer_snapshot_enc IS NOT NULL AND EXISTS (
       SELECT 1 FROM retained_buyer_details r
        WHERE r.org_id = OLD.org_id AND r.invoice_id = OLD.id) THEN
    new_buyer := OLD.buyer_snapshot_enc;
  END IF;
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
             NEW.payment_terms_days, NEW.po_number, new_notes, NEW.footer, NEW.discounts, NEW.charges, NEW.tax_inclusive,
             NEW.subtotal, NEW.line_extension_amount, NEW.allowance_total_amount, NEW.charge_total_amount,
             NEW.tax_exclusive_amount, NEW.tax_amount, NEW.total, NEW.prepaid_amount, NEW.amount_due, NEW.tax_breakdown,
             NEW.base_currency, NEW.fx_rate, NEW.total_base, NEW.seller_snapshot, new_buyer, NEW.finalized_at,
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

-- Same guard as 0008, except that re-keying the reason of a decided refund is allowed.
CREATE OR REPLACE FUNCTION refunds_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status <> 'pending_approval' THEN
    IF bv_rekeyed(OLD.reason_enc, NEW.reason_enc)
       AND ROW(NEW.org_id, NEW.id, NEW.customer_id, NEW.payment_id, NEW.amount, NEW.currency, NEW.status,
               NEW.requested_by, NEW.approved_by, NEW.rejected_by, NEW.posted_at, NEW.decided_at,
               NEW.created_at, NEW.updated_at)
           IS NOT DISTINCT FROM
           ROW(OLD.org_id, OLD.id, OLD.customer_id, OLD.payment_id, OLD.amount, OLD.currency, OLD.status,
               OLD.requested_by, OLD.approved_by, OLD.rejected_by, OLD.posted_at, OLD.decided_at,
               OLD.created_at, OLD.updated_at) THEN
      RETURN NEW;
    END IF;
    RAISE EXCEPTION 'refund % is % and cannot change', OLD.id, OLD.status USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NEW;
END
$$;

GRANT UPDATE (reference_enc, card_token_enc) ON payments TO billvault_app;
GRANT UPDATE (reason_enc) ON refunds TO billvault_app;

-- Master-key rotation re-wraps each signing seed under the new master key (the public key,
-- id and status never change; verification checks the public key against the unwrapped seed).
GRANT UPDATE (master_key_id, wrapped_seed) ON audit_signing_keys TO billvault_app;
