import type { ColumnType, Generated } from 'kysely';

/** Row types of the billing tables (customers, catalog, documents, ledger). */
export interface CustomersTable {
  org_id: string;
  id: string;
  display_name: string | null;
  /** Null only once the customer is erased. */
  name_enc: string | null;
  legal_name_enc: string | null;
  email_enc: string | null;
  email_bidx: string | null;
  cc_emails_enc: string | null;
  phone_enc: string | null;
  billing_address_enc: string | null;
  shipping_address_enc: string | null;
  tax_id_enc: string | null;
  tax_id_bidx: string | null;
  notes_enc: string | null;
  currency: string | null;
  language: string | null;
  payment_terms_days: Generated<number>;
  owner_user_id: string | null;
  metadata: ColumnType<Record<string, string>, string, string>;
  archived_at: Date | null;
  /** Erasure (crypto-shredding) and legal hold (0012_privacy.sql). */
  erased_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  legal_hold_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  legal_hold_by: ColumnType<string | null, string | null | undefined, string | null>;
  legal_hold_reason: ColumnType<string | null, string | null | undefined, string | null>;
  version: Generated<number>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

/** Buyer details of an erased customer's finalised invoices, restricted and kept until retain_until. */
export interface RetainedBuyerDetailsTable {
  org_id: string;
  invoice_id: string;
  customer_id: string;
  details_enc: string | null;
  retention_key: string;
  retain_until: ColumnType<string, string, string>;
  restricted_at: Generated<Date>;
  purged_at: Date | null;
}

export interface TaxRatesTable {
  org_id: string;
  id: string;
  name: string;
  percentage: string;
  inclusive: boolean;
  compound: boolean;
  category: string;
  exemption_reason: string | null;
  exemption_reason_code: string | null;
  jurisdiction: string | null;
  active: Generated<boolean>;
  created_at: Generated<Date>;
}

export interface ProductsTable {
  org_id: string;
  id: string;
  name: string;
  description: string | null;
  unit_code: Generated<string>;
  tax_rate_ids: ColumnType<string[], string[], string[]>;
  active: Generated<boolean>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface ProductPricesTable {
  org_id: string;
  product_id: string;
  currency: string;
  unit_amount: bigint | null;
  unit_amount_decimal: string | null;
}

export interface IdempotencyKeysTable {
  org_id: string;
  key: string;
  actor_id: string;
  request_hash: string;
  status: 'in_progress' | 'completed';
  response_status: number | null;
  response_enc: string | null;
  created_at: Generated<Date>;
  completed_at: Date | null;
}

/** bigint money columns: read as bigint, written as bigint. */
type Money = bigint;

export interface DocumentSequencesTable {
  org_id: string;
  series: 'invoice' | 'credit_note' | 'quote';
  scope: string;
  last_value: bigint;
}

export interface InvoicesTable {
  org_id: string;
  id: string;
  customer_id: string;
  status: 'draft' | 'open' | 'paid' | 'void' | 'uncollectible';
  number: string | null;
  currency: string;
  rounding: 'half_up' | 'half_even';
  issue_date: ColumnType<string | null, string | null, string | null>;
  due_date: ColumnType<string | null, string | null, string | null>;
  payment_terms_days: number;
  po_number: string | null;
  notes_enc: string | null;
  footer: string | null;
  discounts: ColumnType<unknown[], string, string>;
  charges: ColumnType<unknown[], string, string>;
  tax_inclusive: boolean;
  subtotal: Money;
  line_extension_amount: Money;
  allowance_total_amount: Money;
  charge_total_amount: Money;
  tax_exclusive_amount: Money;
  tax_amount: Money;
  total: Money;
  prepaid_amount: Money;
  amount_due: Money;
  amount_paid: ColumnType<Money, Money | undefined, Money>;
  amount_credited: ColumnType<Money, Money | undefined, Money>;
  amount_remaining: Money;
  tax_breakdown: ColumnType<unknown[], string, string>;
  base_currency: string | null;
  fx_rate: string | null;
  total_base: Money | null;
  /** The lines, in order (migration 0019: objects, amounts as decimal strings). */
  lines: ColumnType<unknown[], string, string>;
  seller_snapshot: ColumnType<Record<string, unknown> | null, string | null, string | null>;
  buyer_snapshot_enc: string | null;
  finalized_at: Date | null;
  paid_at: Date | null;
  voided_at: Date | null;
  uncollectible_at: Date | null;
  version: Generated<number>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface CreditNotesTable {
  org_id: string;
  id: string;
  invoice_id: string;
  customer_id: string;
  number: string;
  currency: string;
  reason: string;
  memo: string | null;
  lines: ColumnType<unknown[], string, string>;
  tax_breakdown: ColumnType<unknown[], string, string>;
  tax_exclusive_amount: Money;
  tax_amount: Money;
  total: Money;
  applied_to_invoice: Money;
  customer_credit: Money;
  allocation: ColumnType<Record<string, unknown>, string, string>;
  issue_date: ColumnType<string, string, string>;
  created_at: Generated<Date>;
}

export interface QuotesTable {
  org_id: string;
  id: string;
  customer_id: string;
  status: 'draft' | 'sent' | 'accepted' | 'declined' | 'expired';
  number: string | null;
  currency: string;
  content: ColumnType<Record<string, unknown>, string, string>;
  subtotal: Money;
  tax_amount: Money;
  total: Money;
  expires_on: ColumnType<string | null, string | null, string | null>;
  invoice_id: string | null;
  version: Generated<number>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface JournalEntriesTable {
  org_id: string;
  id: string;
  kind: string;
  currency: string;
  reference: string;
  posted_at: Generated<Date>;
}

export interface JournalLinesTable {
  org_id: string;
  entry_id: string;
  line_no: number;
  account: string;
  debit: Money;
  credit: Money;
  customer_id: string | null;
  invoice_id: string | null;
  tax_group: string | null;
}

export interface PaymentsTable {
  org_id: string;
  id: string;
  customer_id: string;
  amount: Money;
  currency: string;
  method: 'bank_transfer' | 'card' | 'cash' | 'cheque' | 'other';
  reference_enc: string | null;
  received_on: ColumnType<string, string, string>;
  amount_unapplied: Money;
  amount_refunded: ColumnType<Money, Money | undefined, Money>;
  card_token_enc: string | null;
  card_brand: string | null;
  card_last4: string | null;
  card_exp_month: number | null;
  card_exp_year: number | null;
  /** The gateway a card payment came through (webhook intake), else null. */
  gateway: ColumnType<'stripe' | null, 'stripe' | null | undefined, never>;
  disputed_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  dispute_reason: ColumnType<string | null, string | null | undefined, string | null>;
  created_by: string | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface PaymentAllocationsTable {
  org_id: string;
  id: string;
  customer_id: string;
  payment_id: string | null;
  invoice_id: string;
  source: 'payment' | 'credit';
  amount: Money;
  currency: string;
  written_off: ColumnType<boolean, boolean | undefined, boolean>;
  created_by: string | null;
  created_at: Generated<Date>;
  unapplied_at: Date | null;
  unapplied_by: string | null;
}

export interface RefundsTable {
  org_id: string;
  id: string;
  customer_id: string;
  payment_id: string | null;
  amount: Money;
  currency: string;
  reason_enc: string;
  status: 'pending_approval' | 'posted' | 'rejected';
  requested_by: string;
  approved_by: string | null;
  rejected_by: string | null;
  posted_at: Date | null;
  decided_at: Date | null;
  /** Refunds executed at a gateway (webhook intake): the provider and its refund or charge id. */
  gateway: ColumnType<'stripe' | null, 'stripe' | null | undefined, never>;
  gateway_ref: ColumnType<string | null, string | null | undefined, never>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export type GatewayProviderName = 'stripe';

export interface GatewaySecretsTable {
  org_id: string;
  provider: GatewayProviderName;
  secret_enc: string;
  previous_secret_enc: string | null;
  updated_by: string;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface GatewayEventsTable {
  org_id: string;
  provider: GatewayProviderName;
  event_id: string;
  event_type: string;
  outcome: 'received' | 'processed' | 'ignored';
  reason: string | null;
  payment_id: string | null;
  refund_id: string | null;
  invoice_id: string | null;
  received_at: Generated<Date>;
  processed_at: Date | null;
}

export interface GatewayRefsTable {
  org_id: string;
  provider: GatewayProviderName;
  ref: string;
  payment_id: string;
  created_at: Generated<Date>;
}

export interface BillingTables {
  document_sequences: DocumentSequencesTable;
  invoices: InvoicesTable;
  credit_notes: CreditNotesTable;
  quotes: QuotesTable;
  journal_entries: JournalEntriesTable;
  journal_lines: JournalLinesTable;
  customers: CustomersTable;
  tax_rates: TaxRatesTable;
  products: ProductsTable;
  product_prices: ProductPricesTable;
  idempotency_keys: IdempotencyKeysTable;
  payments: PaymentsTable;
  payment_allocations: PaymentAllocationsTable;
  refunds: RefundsTable;
  retained_buyer_details: RetainedBuyerDetailsTable;
  gateway_secrets: GatewaySecretsTable;
  gateway_events: GatewayEventsTable;
  gateway_refs: GatewayRefsTable;
}
