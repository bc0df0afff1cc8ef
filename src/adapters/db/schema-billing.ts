import type { ColumnType, Generated } from 'kysely';

/** Row types of the billing tables (customers, catalog, documents, ledger). */
export interface CustomersTable {
  org_id: string;
  id: string;
  display_name: string | null;
  name_enc: string;
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
  version: Generated<number>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
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

export interface BillingTables {
  customers: CustomersTable;
  tax_rates: TaxRatesTable;
  products: ProductsTable;
  product_prices: ProductPricesTable;
  idempotency_keys: IdempotencyKeysTable;
}
