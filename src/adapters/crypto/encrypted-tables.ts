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
