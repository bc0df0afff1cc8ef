import { encryptedTable, type FieldPrivacy } from './encrypted-columns.js';

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
  privacy: {
    name: {
      category: 'identity',
      subjects: 'org contacts',
      purpose: 'contacting the business that uses Billvault',
      legal_basis: 'contract',
      retention: 'while the org exists',
    },
    email: {
      category: 'contact',
      subjects: 'org contacts',
      purpose: 'contacting the business that uses Billvault',
      legal_basis: 'contract',
      retention: 'while the org exists',
    },
  },
});

const customerField = (
  category: FieldPrivacy['category'],
  purpose: string,
  legal_basis: FieldPrivacy['legal_basis'] = 'contract',
): FieldPrivacy => ({
  category,
  subjects: 'customers',
  purpose,
  legal_basis,
  retention:
    'until erasure (crypto-shredded); on issued invoices the buyer details are kept restricted for privacy.retention_years',
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
  privacy: {
    name: customerField('identity', 'invoicing and account management'),
    legal_name: customerField(
      'identity',
      'invoicing (legal name of the buyer on invoices)',
      'legal_obligation',
    ),
    email: customerField('contact', 'sending invoices, quotes and reminders'),
    cc_emails: customerField('contact', 'sending invoices to further recipients the customer named'),
    phone: customerField('contact', 'contacting the customer about their account'),
    billing_address: customerField('contact', 'invoicing (buyer address on invoices)', 'legal_obligation'),
    shipping_address: customerField('contact', 'delivering goods'),
    tax_id: customerField('tax', 'invoicing and tax reporting (buyer VAT id)', 'legal_obligation'),
    notes: customerField('free_text', 'account management notes', 'legitimate_interest'),
  },
});

/**
 * Outbound webhook endpoints: the URL (it can carry a receiver's token) and the signing secret
 * (the sender needs it in clear, so it is encrypted rather than hashed), under the org's key.
 */
export const webhookEndpointsCrypto = encryptedTable({
  table: 'webhook_endpoints',
  idColumn: 'id',
  orgColumn: 'org_id',
  fields: {
    url: 'url_enc',
    secret: 'secret_enc',
  },
  privacy: {
    url: {
      category: 'authentication',
      subjects: 'org contacts',
      purpose: "delivering signed event notifications to the org's own systems (a URL may carry a token)",
      legal_basis: 'contract',
      retention: 'until the endpoint is deleted',
    },
    secret: {
      category: 'authentication',
      subjects: 'org contacts',
      purpose: 'signing outbound webhook deliveries',
      legal_basis: 'contract',
      retention: 'until the endpoint is deleted or its secret rotated',
    },
  },
});

/**
 * Encrypted columns kept outside the registry, classified here so the records of processing
 * list every encrypted field of the schema (a test compares the two with the database's `*_enc`
 * columns). Empty today: every encrypted column is registered above or below.
 */
export const OTHER_ENCRYPTED_COLUMNS: readonly ({ table: string; column: string } & FieldPrivacy)[] = [];

/** Payment-gateway webhook secrets: under the org's key; the row id bound into the AAD is the provider. */
export const gatewaySecretsCrypto = encryptedTable({
  table: 'gateway_secrets',
  idColumn: 'provider',
  orgColumn: 'org_id',
  fields: { secret: 'secret_enc', previous_secret: 'previous_secret_enc' },
  privacy: {
    secret: {
      category: 'authentication',
      subjects: 'org contacts',
      purpose: "verifying the payment gateway's webhook signatures",
      legal_basis: 'contract',
      retention: 'until replaced (the previous secret is kept during a rotation)',
    },
    previous_secret: {
      category: 'authentication',
      subjects: 'org contacts',
      purpose: "verifying the payment gateway's webhook signatures during a secret rotation",
      legal_basis: 'contract',
      retention: 'until the rotation ends',
    },
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
  privacy: {
    notes: customerField('free_text', 'notes printed on an invoice'),
    buyer_snapshot: {
      category: 'identity',
      subjects: 'customers',
      purpose: 'buyer name, address, tax id and email frozen on an issued invoice',
      legal_basis: 'legal_obligation',
      retention:
        'moved to restricted retention at erasure; purged after issue date + privacy.retention_years',
    },
  },
});

/** Payments: the reference and the gateway token, under the customer's key. */
export const paymentsCrypto = encryptedTable({
  table: 'payments',
  idColumn: 'id',
  orgColumn: 'org_id',
  subject: { type: 'customer', column: 'customer_id' },
  fields: { reference: 'reference_enc', card_token: 'card_token_enc' },
  privacy: {
    reference: customerField('financial', 'matching payments (remittance text)'),
    card_token: customerField('financial', "the payment gateway's card token (never a card number)"),
  },
});

/** Refunds: the free-text reason, under the customer's key. */
export const refundsCrypto = encryptedTable({
  table: 'refunds',
  idColumn: 'id',
  orgColumn: 'org_id',
  subject: { type: 'customer', column: 'customer_id' },
  fields: { reason: 'reason_enc' },
  privacy: {
    reason: customerField('free_text', 'why a refund was made', 'legal_obligation'),
  },
});

/** Stored idempotent responses (they can carry PII), under the org's key; the row id is the key. */
export const idempotencyCrypto = encryptedTable({
  table: 'idempotency_keys',
  idColumn: 'key',
  orgColumn: 'org_id',
  fields: { response: 'response_enc' },
  privacy: {
    response: {
      category: 'commercial',
      subjects: 'customers',
      purpose: 'replaying a retried API request (may repeat customer details)',
      legal_basis: 'legitimate_interest',
      retention: 'retention.idempotency_hours (default 24 hours)',
    },
  },
});

/** Users' TOTP secrets (a platform table), under the user's own key. */
export const usersCrypto = encryptedTable({
  table: 'users',
  idColumn: 'id',
  orgColumn: null,
  subject: { type: 'user', column: 'id' },
  fields: { totp_secret: 'totp_secret_enc' },
  privacy: {
    totp_secret: {
      category: 'authentication',
      subjects: 'users',
      purpose: 'second-factor authentication',
      legal_basis: 'legitimate_interest',
      retention: 'until the user removes the factor',
    },
  },
});

/**
 * Buyer details of an erased customer's issued invoices, kept restricted (Art. 18) under the
 * org's retention key of the year they may be purged (`retention_key`, e.g. y2036).
 */
export const retainedBuyerDetailsCrypto = encryptedTable({
  table: 'retained_buyer_details',
  idColumn: 'invoice_id',
  orgColumn: 'org_id',
  subject: { type: 'retention', column: 'retention_key' },
  fields: { details: 'details_enc' },
  privacy: {
    details: {
      category: 'identity',
      subjects: 'customers',
      purpose: 'legally required buyer details of an erased customer (restricted, Art. 18)',
      legal_basis: 'legal_obligation',
      retention: 'until retain_until (issue date + privacy.retention_years), then purged',
    },
  },
});
