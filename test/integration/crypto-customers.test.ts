import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { registeredTables } from '../../src/adapters/crypto/encrypted-columns.js';
import { parseCiphertext } from '../../src/adapters/crypto/field-cipher.js';
import { systemCtx } from '../../src/app/context.js';
import { createCustomer, getCustomer } from '../../src/app/customers.js';
import { type KeyAdminDeps, reencrypt, rotateKek } from '../../src/app/keys.js';
import { createOrg } from '../../src/app/orgs.js';
import { systemClock } from '../../src/app/ports.js';
import { testCipher, testKeyProvider } from '../helpers/crypto.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let t: TestDatabase;
let org: string;
const kp = testKeyProvider();
const cipher = testCipher({}, kp);

const PII = {
  name: 'Zebulon Quartermaine',
  legal_name: 'Quartermaine Heavy Industries Ltd',
  email: 'zebulon.q@quartermaine-industries.example',
  phone: '+44 20 7946 0123',
  tax_id: 'GB987654321',
  notes: 'Prefers invoices on Tuesdays',
  address: { line1: '221B Fictional Street', city: 'Londinium', postal_code: 'NW1 6XE', country: 'GB' },
};

before(async () => {
  t = await createTestDatabase();
  org = (await createOrg(t.db, { name: 'Customers Org', baseCurrency: 'GBP' })).id;
});
after(() => t.drop());

describe('customers at rest', () => {
  it('a direct SQL read of the customers table shows no plaintext PII', async () => {
    const deps = { db: t.db, cipher, clock: systemClock };
    const c = await createCustomer(deps, systemCtx(org), PII);
    const raw = await sql<Record<string, unknown>>`SELECT * FROM customers WHERE id = ${c.id}`.execute(t.db);
    assert.equal(raw.rows.length, 1);
    const dump = JSON.stringify(raw.rows).toLowerCase();
    for (const needle of [
      'zebulon',
      'quartermaine',
      'heavy industries',
      '7946',
      'gb987654321',
      '987654321',
      'tuesdays',
      'fictional',
      'londinium',
      'nw1 6xe',
    ]) {
      assert.ok(!dump.includes(needle), `customers row holds "${needle}" in clear`);
    }
    // Every PII column holds a versioned ciphertext under the customer's own data key.
    const row = raw.rows[0]!;
    const keyIds = new Set<string>();
    for (const col of ['name_enc', 'email_enc', 'phone_enc', 'tax_id_enc', 'notes_enc']) {
      const parsed = parseCiphertext(String(row[col]));
      assert.ok(parsed, `${col} is a bv1 ciphertext`);
      keyIds.add(parsed.keyId);
    }
    assert.equal(keyIds.size, 1);
    const key = await sql<{ subject_type: string; subject_id: string }>`
      SELECT subject_type, subject_id FROM org_data_keys WHERE id = ${[...keyIds][0]}`.execute(t.db);
    assert.deepEqual(key.rows[0], { subject_type: 'customer', subject_id: c.id });
    // …and the use case reads it back.
    const back = await getCustomer(deps, systemCtx(org), c.id);
    assert.equal(back.name, PII.name);
    assert.equal(back.email, PII.email);
  });

  it('customers survive KEK rotation and full re-encryption', async () => {
    const deps = { db: t.db, cipher, clock: systemClock };
    const ids: string[] = [];
    for (let i = 0; i < 5; i++)
      ids.push((await createCustomer(deps, systemCtx(org), { ...PII, name: `Customer ${i}` })).id);
    const admin: KeyAdminDeps = { db: t.db, keyProvider: kp, cipher, tables: registeredTables() };
    await rotateKek(admin, org);
    const before = (
      await sql<{ name_enc: string }>`SELECT name_enc FROM customers WHERE id = ${ids[0]}`.execute(t.db)
    ).rows[0]!.name_enc;
    const res = await reencrypt(admin, { orgId: org, batchSize: 2 });
    assert.equal(res.interrupted, false);
    assert.ok(res.reencrypted >= 6 * 5, `re-encrypted ${res.reencrypted}`);
    const after = (
      await sql<{ name_enc: string }>`SELECT name_enc FROM customers WHERE id = ${ids[0]}`.execute(t.db)
    ).rows[0]!.name_enc;
    assert.notEqual(parseCiphertext(after)?.keyId, parseCiphertext(before)?.keyId);
    for (const [i, id] of ids.entries()) {
      const c = await getCustomer(deps, systemCtx(org), id);
      assert.equal(c.name, `Customer ${i}`);
      assert.equal(c.tax_id, PII.tax_id);
    }
  });
});
