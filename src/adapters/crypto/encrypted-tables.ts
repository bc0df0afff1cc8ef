import { encryptedTable } from './encrypted-columns.js';

/**
 * Every table with encrypted columns, declared in one place so that `billvault keys reencrypt`
 * and the key-destruction reference check always know all of them. Add yours here.
 */
export const orgContactsCrypto = encryptedTable({
  table: 'org_contacts',
  idColumn: 'id',
  orgColumn: 'org_id',
  fields: {
    name: 'name_enc',
    email: { column: 'email_enc', blindIndex: { column: 'email_bidx', purpose: 'email' } },
  },
});

/**
 * Customers: every PII field under the customer's own data key (subject), so erasure can
 * destroy that one key. Email and tax id are searchable through blind indexes.
 */
export const customersCrypto = encryptedTable({
  table: 'customers',
  idColumn: 'id',
  orgColumn: 'org_id',
  subject: { type: 'customer', column: 'id' },
  fields: {
    name: 'name_enc',
    legal_name: 'legal_name_enc',
    email: { column: 'email_enc', blindIndex: { column: 'email_bidx', purpose: 'email' } },
    cc_emails: 'cc_emails_enc',
    phone: 'phone_enc',
    billing_address: 'billing_address_enc',
    shipping_address: 'shipping_address_enc',
    tax_id: { column: 'tax_id_enc', blindIndex: { column: 'tax_id_bidx', purpose: 'tax_id' } },
    notes: 'notes_enc',
  },
});

/**
 * Invoices: the notes under the customer's key (erasure shreds them), the buyer snapshot of a
 * finalised invoice under the org's key (kept for the legal retention period after erasure).
 */
export const invoicesCrypto = encryptedTable({
  table: 'invoices',
  idColumn: 'id',
  orgColumn: 'org_id',
  subject: { type: 'customer', column: 'customer_id' },
  fields: {
    notes: 'notes_enc',
    buyer_snapshot: { column: 'buyer_snapshot_enc', subject: null },
  },
});

/** Payments: the reference and the gateway token, under the customer's key. */
export const paymentsCrypto = encryptedTable({
  table: 'payments',
  idColumn: 'id',
  orgColumn: 'org_id',
  subject: { type: 'customer', column: 'customer_id' },
  fields: { reference: 'reference_enc', card_token: 'card_token_enc' },
});

/** Refunds: the free-text reason, under the customer's key. */
export const refundsCrypto = encryptedTable({
  table: 'refunds',
  idColumn: 'id',
  orgColumn: 'org_id',
  subject: { type: 'customer', column: 'customer_id' },
  fields: { reason: 'reason_enc' },
});

/** Stored idempotent responses (they can carry PII), under the org's key; the row id is the key. */
export const idempotencyCrypto = encryptedTable({
  table: 'idempotency_keys',
  idColumn: 'key',
  orgColumn: 'org_id',
  fields: { response: 'response_enc' },
});

/** Users' TOTP secrets (a platform table), under the user's own key. */
export const usersCrypto = encryptedTable({
  table: 'users',
  idColumn: 'id',
  orgColumn: null,
  subject: { type: 'user', column: 'id' },
  fields: { totp_secret: 'totp_secret_enc' },
});
