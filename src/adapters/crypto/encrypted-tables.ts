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
});
