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

/** Payment-gateway webhook secrets: under the org's key; the row id bound into the AAD is the provider. */
export const gatewaySecretsCrypto = encryptedTable({
  table: 'gateway_secrets',
  idColumn: 'provider',
  orgColumn: 'org_id',
  fields: { secret: 'secret_enc', previous_secret: 'previous_secret_enc' },
});
