-- Receivables and reports (issue 6): indexes only, no new tables.
--
-- AR aging as of a date D starts from today's open remainders and adds back what changed after D,
-- so it needs (1) the open invoices, read from one covering partial index, and (2) the few events
-- dated after D, each found by its date. Statements read one customer's documents by date.

-- (1) Every open invoice with what aging needs, so the aggregate reads the index only (after
-- vacuum has marked the pages all-visible) instead of the wide invoice rows.
CREATE INDEX invoices_aging_open ON invoices (org_id, customer_id)
  INCLUDE (id, due_date, issue_date, currency, amount_remaining, fx_rate, rounding)
  WHERE status = 'open';
-- (2) Invoices voided or written off after D were still open at D.
CREATE INDEX invoices_voided_at ON invoices (org_id, voided_at) WHERE voided_at IS NOT NULL;
CREATE INDEX invoices_uncollectible_at ON invoices (org_id, uncollectible_at) WHERE uncollectible_at IS NOT NULL;
-- Allocations made or taken back after D, payments received after D, credit notes issued after D.
CREATE INDEX payment_allocations_created ON payment_allocations (org_id, created_at);
CREATE INDEX payment_allocations_unapplied ON payment_allocations (org_id, unapplied_at) WHERE unapplied_at IS NOT NULL;
CREATE INDEX payments_received ON payments (org_id, received_on);
CREATE INDEX credit_notes_issued ON credit_notes (org_id, issue_date);

-- Period reports (revenue, tax, DSO, top customers) read finalised invoices by issue date.
CREATE INDEX invoices_issued ON invoices (org_id, issue_date) WHERE status <> 'draft';
CREATE INDEX refunds_posted ON refunds (org_id, posted_at) WHERE status = 'posted';

-- Customer statements: one customer's documents in date order.
CREATE INDEX invoices_customer_issued ON invoices (org_id, customer_id, issue_date) WHERE status <> 'draft';
CREATE INDEX credit_notes_customer ON credit_notes (org_id, customer_id, issue_date);
CREATE INDEX payments_customer_received ON payments (org_id, customer_id, received_on);
CREATE INDEX refunds_customer_posted ON refunds (org_id, customer_id, posted_at) WHERE status = 'posted';
CREATE INDEX payment_allocations_customer ON payment_allocations (org_id, customer_id, created_at);
