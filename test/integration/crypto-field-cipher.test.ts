import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { DecryptError } from '../../src/adapters/crypto/aead.js';
import { orgContactsCrypto } from '../../src/adapters/crypto/encrypted-tables.js';
import { normaliseForIndex, parseCiphertext } from '../../src/adapters/crypto/field-cipher.js';
import { destroyDataKeys, KeyDestroyedError, retireDataKeys } from '../../src/adapters/crypto/key-store.js';
import { shredSubjectKeys } from '../../src/app/keys.js';
import { createOrg } from '../../src/app/orgs.js';
import type { CipherScope } from '../../src/app/ports.js';
import { newId } from '../../src/domain/ids.js';
import { testCipher, testKeyProvider } from '../helpers/crypto.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { inOrg, inTransaction } from '../helpers/dbexports.js';

let t: TestDatabase;
let orgA: string;
let orgB: string;
const kp = testKeyProvider();
const cipher = testCipher({}, kp);

before(async () => {
  t = await createTestDatabase();
  orgA = (await createOrg(t.db, { name: 'A', baseCurrency: 'EUR' })).id;
  orgB = (await createOrg(t.db, { name: 'B', baseCurrency: 'EUR' })).id;
});
after(() => t.drop());

/** A promise and the function that resolves it. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/**
 * Starts retiring the org's data keys while a writer holds one open, checks that the retirement
 * waits, then lets the writer commit (`release`) and waits for both.
 */
async function assertRetirementWaits(
  org: string,
  writer: Promise<unknown>,
  release: () => void,
  what: string,
) {
  let retiredAt = 0;
  const retire = inOrg(t.db, org, (tx) => retireDataKeys(tx, org, { purpose: 'data' })).then(() => {
    retiredAt = Date.now();
  });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(retiredAt, 0, what);
  release();
  await writer;
  await retire;
  assert.ok(retiredAt > 0);
}

const NAME = 'Ada Lovelace-Plaintext';
const EMAIL = 'Ada.Lovelace@Example.org';

async function addContact(org: string, name: string, email: string | null) {
  const id = newId('contact');
  await inOrg(t.db, org, async (tx) => {
    const cols = await orgContactsCrypto.seal(cipher, tx, { orgId: org }, id, { name, email });
    await tx
      .insertInto('org_contacts')
      .values({
        org_id: org,
        id,
        kind: 'billing',
        name_enc: cols.name_enc!,
        email_enc: cols.email_enc ?? null,
        email_bidx: cols.email_bidx ?? null,
      })
      .execute();
  });
  return id;
}

async function readContact(org: string, id: string) {
  return inOrg(t.db, org, async (tx) => {
    const row = await tx
      .selectFrom('org_contacts')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    return orgContactsCrypto.open(cipher, tx, { orgId: org }, id, row);
  });
}

describe('field encryption', () => {
  it('round-trips through the encrypted-column helper and stores no plaintext', async () => {
    const id = await addContact(orgA, NAME, EMAIL);
    assert.deepEqual(await readContact(orgA, id), { name: NAME, email: EMAIL });
    // A direct SQL read (the owner connection, no application code) sees ciphertext only.
    const raw = await sql<Record<string, unknown>>`SELECT * FROM org_contacts WHERE id = ${id}`.execute(t.db);
    const dump = JSON.stringify(raw.rows);
    for (const needle of ['Ada', 'Lovelace', 'lovelace', 'Example', 'example.org', 'Plaintext']) {
      assert.ok(!dump.includes(needle), `raw row contains ${needle}`);
    }
    const row = raw.rows[0]!;
    assert.match(String(row.name_enc), /^bv1:dk_[0-9a-z]{32}:[A-Za-z0-9_-]+$/);
    assert.match(String(row.email_bidx), /^[0-9a-f]{32}$/);
    // The key tables hold wrapped keys only: no table holds anything that opens the row without the master key.
    const keys = await sql<{
      n: string;
    }>`SELECT count(*)::text AS n FROM org_data_keys WHERE org_id = ${orgA}`.execute(t.db);
    assert.ok(Number(keys.rows[0]?.n) >= 1);
  });

  it('handles empty strings, unicode and long values; null stays null', async () => {
    const long = 'ß∂ƒ©˙∆˚¬…æ 😀 '.repeat(500);
    const id = await addContact(orgA, long, null);
    assert.deepEqual(await readContact(orgA, id), { name: long, email: null });
    const id2 = await addContact(orgA, '', '');
    assert.deepEqual(await readContact(orgA, id2), { name: '', email: '' });
  });

  it('the same plaintext encrypts differently every time', async () => {
    const [a, b] = await inOrg(t.db, orgA, async (tx) => {
      const f = { table: 'org_contacts', column: 'name_enc', rowId: 'x' };
      return [
        await cipher.encrypt(tx, { orgId: orgA }, f, 'same'),
        await cipher.encrypt(tx, { orgId: orgA }, f, 'same'),
      ];
    });
    assert.notEqual(a, b);
  });

  it('a ciphertext moved to another row, column, table, subject or org fails to decrypt', async () => {
    const id = await addContact(orgA, NAME, EMAIL);
    const other = await addContact(orgA, 'Someone Else', 'else@example.org');
    const row = await sql<{ name_enc: string; email_enc: string }>`
      SELECT name_enc, email_enc FROM org_contacts WHERE id = ${id}`.execute(t.db);
    const ct = row.rows[0]!.name_enc;
    const attempts: [string, CipherScope, { table: string; column: string; rowId: string }][] = [
      ['other row', { orgId: orgA }, { table: 'org_contacts', column: 'name_enc', rowId: other }],
      ['other column', { orgId: orgA }, { table: 'org_contacts', column: 'email_enc', rowId: id }],
      ['other table', { orgId: orgA }, { table: 'customers', column: 'name_enc', rowId: id }],
      [
        'other subject',
        { orgId: orgA, subject: { type: 'customer', id: 'cus_x' } },
        { table: 'org_contacts', column: 'name_enc', rowId: id },
      ],
      ['platform scope', { orgId: null }, { table: 'org_contacts', column: 'name_enc', rowId: id }],
    ];
    for (const [label, scope, field] of attempts) {
      await assert.rejects(
        inOrg(t.db, orgA, (tx) => cipher.decrypt(tx, scope, field, ct)),
        DecryptError,
        label,
      );
    }
    // Another org cannot even find the key (RLS), let alone open the value.
    await assert.rejects(
      inOrg(t.db, orgB, (tx) =>
        cipher.decrypt(tx, { orgId: orgA }, { table: 'org_contacts', column: 'name_enc', rowId: id }, ct),
      ),
      DecryptError,
    );
    // Copying the ciphertext into the other row in the database: the read fails, it does not leak.
    await sql`UPDATE org_contacts SET name_enc = ${ct} WHERE id = ${other}`.execute(t.db);
    await assert.rejects(readContact(orgA, other), DecryptError);
  });

  it('tampering with a stored ciphertext is detected', async () => {
    const id = await addContact(orgA, NAME, EMAIL);
    const row = await sql<{ name_enc: string }>`SELECT name_enc FROM org_contacts WHERE id = ${id}`.execute(
      t.db,
    );
    const ct = row.rows[0]!.name_enc;
    const body = Buffer.from(ct.split(':')[2]!, 'base64url');
    body[body.length - 20]! ^= 0x01;
    const tampered = `${ct.split(':').slice(0, 2).join(':')}:${body.toString('base64url')}`;
    await sql`UPDATE org_contacts SET name_enc = ${tampered} WHERE id = ${id}`.execute(t.db);
    await assert.rejects(readContact(orgA, id), DecryptError);
    await assert.rejects(
      inOrg(t.db, orgA, (tx) =>
        cipher.decrypt(
          tx,
          { orgId: orgA },
          { table: 'org_contacts', column: 'name_enc', rowId: id },
          'garbage',
        ),
      ),
      /not a Billvault ciphertext/,
    );
  });

  it('a cipher with another master key cannot read the data', async () => {
    const id = await addContact(orgA, NAME, EMAIL);
    const stranger = testCipher();
    await assert.rejects(
      inOrg(t.db, orgA, async (tx) => {
        const row = await tx
          .selectFrom('org_contacts')
          .selectAll()
          .where('id', '=', id)
          .executeTakeFirstOrThrow();
        return orgContactsCrypto.open(stranger, tx, { orgId: orgA }, id, row);
      }),
      /does not hold/,
    );
  });

  it('platform-level secrets (no org) and per-subject keys work without an org context', async () => {
    const scope: CipherScope = { orgId: null, subject: { type: 'user', id: 'usr_a' } };
    const field = { table: 'users', column: 'totp_secret_enc', rowId: 'usr_a' };
    const ct = await inTransaction(t.db, {}, (tx) => cipher.encrypt(tx, scope, field, 'JBSWY3DPEHPK3PXP'));
    assert.equal(
      await inTransaction(t.db, {}, (tx) => cipher.decrypt(tx, scope, field, ct)),
      'JBSWY3DPEHPK3PXP',
    );
    // Also from inside an org's transaction (login flows run in one).
    assert.equal(await inOrg(t.db, orgB, (tx) => cipher.decrypt(tx, scope, field, ct)), 'JBSWY3DPEHPK3PXP');
    const keys = await sql<{ subject_type: string; subject_id: string }>`
      SELECT subject_type, subject_id FROM platform_data_keys WHERE purpose = 'data'`.execute(t.db);
    assert.deepEqual(keys.rows, [{ subject_type: 'user', subject_id: 'usr_a' }]);
  });

  it('each subject has its own data key; destroying it shreds only that subject', async () => {
    const cus1 = { orgId: orgA, subject: { type: 'customer' as const, id: 'cus_one' } };
    const cus2 = { orgId: orgA, subject: { type: 'customer' as const, id: 'cus_two' } };
    const f = (rowId: string) => ({ table: 'customers', column: 'name_enc', rowId });
    const [c1, c2] = await inOrg(t.db, orgA, async (tx) => [
      await cipher.encrypt(tx, cus1, f('cus_one'), 'Customer One'),
      await cipher.encrypt(tx, cus2, f('cus_two'), 'Customer Two'),
    ]);
    assert.notEqual(parseCiphertext(c1!)?.keyId, parseCiphertext(c2!)?.keyId);
    await inOrg(t.db, orgA, (tx) => destroyDataKeys(tx, orgA, [parseCiphertext(c1!)!.keyId]));
    cipher.forget();
    await assert.rejects(
      inOrg(t.db, orgA, (tx) => cipher.decrypt(tx, cus1, f('cus_one'), c1!)),
      KeyDestroyedError,
    );
    assert.equal(
      await inOrg(t.db, orgA, (tx) => cipher.decrypt(tx, cus2, f('cus_two'), c2!)),
      'Customer Two',
    );
    // The shredded subject gets a new key if it is ever written again; the old data stays gone.
    const c3 = await inOrg(t.db, orgA, (tx) => cipher.encrypt(tx, cus1, f('cus_one'), 'again'));
    assert.notEqual(parseCiphertext(c3)?.keyId, parseCiphertext(c1!)?.keyId);
  });

  it('shredding a subject destroys all its keys, including retired ones', async () => {
    const scope = { orgId: orgA, subject: { type: 'customer' as const, id: 'cus_shred' } };
    const f = { table: 'customers', column: 'notes_enc', rowId: 'cus_shred' };
    const c1 = await inOrg(t.db, orgA, (tx) => cipher.encrypt(tx, scope, f, 'old value'));
    await inOrg(t.db, orgA, (tx) => retireDataKeys(tx, orgA, { ids: [parseCiphertext(c1)!.keyId] }));
    cipher.forget();
    const c2 = await inOrg(t.db, orgA, (tx) => cipher.encrypt(tx, scope, f, 'new value'));
    assert.notEqual(parseCiphertext(c1)!.keyId, parseCiphertext(c2)!.keyId);
    const n = await inOrg(t.db, orgA, (tx) => shredSubjectKeys(tx, cipher, orgA, scope.subject));
    assert.equal(n, 2);
    for (const ct of [c1, c2])
      await assert.rejects(
        inOrg(t.db, orgA, (tx) => cipher.decrypt(tx, scope, f, ct)),
        KeyDestroyedError,
      );
    // Other subjects are untouched.
    const other = { orgId: orgA, subject: { type: 'customer' as const, id: 'cus_keep' } };
    const ok = await inOrg(t.db, orgA, (tx) => cipher.encrypt(tx, other, f, 'kept'));
    assert.equal(await inOrg(t.db, orgA, (tx) => cipher.decrypt(tx, other, f, ok)), 'kept');
  });

  it('the application role cannot delete keys', async () => {
    await assert.rejects(
      inOrg(t.db, orgA, (tx) => sql`DELETE FROM org_data_keys`.execute(tx)),
      /permission denied/,
    );
    await assert.rejects(
      inOrg(t.db, orgA, (tx) => sql`DELETE FROM platform_key_versions`.execute(tx)),
      /permission denied/,
    );
  });

  it('concurrent first uses in a new org create exactly one KEK and one data key', async () => {
    const org = (await createOrg(t.db, { name: 'Race', baseCurrency: 'EUR' })).id;
    const c = testCipher({}, kp);
    const cts = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        inOrg(t.db, org, (tx) =>
          c.encrypt(
            tx,
            { orgId: org },
            { table: 'org_contacts', column: 'name_enc', rowId: `r${i}` },
            `v${i}`,
          ),
        ),
      ),
    );
    const keks = await sql<{
      n: string;
    }>`SELECT count(*)::text AS n FROM org_key_versions WHERE org_id = ${org}`.execute(t.db);
    const dks = await sql<{
      n: string;
    }>`SELECT count(*)::text AS n FROM org_data_keys WHERE org_id = ${org}`.execute(t.db);
    assert.equal(keks.rows[0]?.n, '1');
    assert.equal(dks.rows[0]?.n, '1');
    assert.equal(new Set(cts.map((x) => parseCiphertext(x)?.keyId)).size, 1);
  });
});

describe('concurrency of key use', () => {
  it('many writers reserving usage mid-transaction never deadlock (no retries allowed)', async () => {
    const org = (await createOrg(t.db, { name: 'Writers', baseCurrency: 'EUR' })).id;
    const c = testCipher({ reserveBlock: 3 }, kp);
    await inOrg(t.db, org, (tx) =>
      c.encrypt(tx, { orgId: org }, { table: 'org_contacts', column: 'name_enc', rowId: 'warm' }, 'warm'),
    );
    await Promise.all(
      Array.from({ length: 8 }, (_, w) =>
        inOrg(
          t.db,
          org,
          async (tx) => {
            for (let i = 0; i < 10; i++) {
              await c.encrypt(
                tx,
                { orgId: org },
                { table: 'org_contacts', column: 'name_enc', rowId: `w${w}i${i}` },
                'x',
              );
              await new Promise((r) => setImmediate(r));
            }
          },
          { attempts: 1 },
        ),
      ),
    );
    const usage = await sql<{
      u: bigint;
    }>`SELECT usage_count AS u FROM org_data_keys WHERE org_id = ${org} AND purpose = 'data'`.execute(t.db);
    assert.ok(usage.rows[0]!.u >= 81n, `usage ${usage.rows[0]!.u} counts every encryption`);
  });

  it('retiring a key waits for a transaction still encrypting under it', async () => {
    const org = (await createOrg(t.db, { name: 'Waits', baseCurrency: 'EUR' })).id;
    // The key exists and is committed before the writer starts.
    await inOrg(t.db, org, (tx) =>
      cipher.encrypt(
        tx,
        { orgId: org },
        { table: 'org_contacts', column: 'name_enc', rowId: 'warm' },
        'warm',
      ),
    );
    const gate = deferred();
    const started = deferred();
    const writer = inOrg(t.db, org, async (tx) => {
      const id = newId('contact');
      const cols = await orgContactsCrypto.seal(cipher, tx, { orgId: org }, id, { name: 'late writer' });
      started.resolve();
      await gate.promise;
      await tx
        .insertInto('org_contacts')
        .values({ org_id: org, id, kind: 'billing', name_enc: cols.name_enc! })
        .execute();
    });
    await started.promise;
    await assertRetirementWaits(org, writer, gate.resolve, 'retirement must wait for the open writer');
    // The writer's ciphertext is committed before the key is retired: a re-encryption sees it.
    const n = await sql<{
      n: string;
    }>`SELECT count(*)::text AS n FROM org_contacts WHERE org_id = ${org}`.execute(t.db);
    assert.equal(n.rows[0]?.n, '1');
  });
});

describe('the key check inside the writing statement (encryptForStatement)', () => {
  const field = (rowId: string) => ({ table: 'org_contacts', column: 'name_enc', rowId });
  /**
   * Encrypts with the check left to the statement and writes the contact in that statement, in
   * an org transaction (which retries BVK01, as every use case's does); counts the attempts.
   */
  const write = async (org: string, c = cipher) => {
    let attempts = 0;
    const out = await inOrg(t.db, org, async (tx) => {
      attempts++;
      const id = newId('contact');
      const { ciphertext, guard } = await c.encryptForStatement(tx, { orgId: org }, field(id), 'guarded');
      await sql`WITH g AS (SELECT ${guard ?? sql`true`} AS ok)
        INSERT INTO org_contacts (org_id, id, kind, name_enc)
        SELECT ${org}, ${id}, 'billing', ${ciphertext} FROM g WHERE g.ok`
        .execute(tx)
        .catch((e: unknown) => {
          c.guardFailed(e);
          throw e;
        });
      return { id, ciphertext, guarded: guard !== undefined };
    });
    return { ...out, attempts, keyId: parseCiphertext(out.ciphertext)?.keyId };
  };
  const readBack = (c: typeof cipher, org: string, w: { id: string; ciphertext: string }) =>
    inOrg(t.db, org, (tx) => c.decrypt(tx, { orgId: org }, field(w.id), w.ciphertext));
  const contacts = async (org: string) =>
    Number(
      (
        await sql<{ n: string }>`SELECT count(*)::text AS n FROM org_contacts WHERE org_id = ${org}`.execute(
          t.db,
        )
      ).rows[0]?.n,
    );

  it('leaves the check to the statement once the key is cached, and the value decrypts', async () => {
    const org = (await createOrg(t.db, { name: 'Guarded', baseCurrency: 'EUR' })).id;
    const c = testCipher({}, kp);
    const first = await write(org, c);
    assert.equal(first.guarded, false, 'a key not yet cached is checked (or made) by the cipher itself');
    const second = await write(org, c);
    assert.equal(second.guarded, true);
    assert.equal(second.keyId, first.keyId);
    assert.equal(await readBack(c, org, second), 'guarded');
  });

  it('the guard refuses a retired key (BVK01) and writes nothing', async () => {
    const org = (await createOrg(t.db, { name: 'Refused', baseCurrency: 'EUR' })).id;
    const c = testCipher({}, kp);
    const { keyId } = await write(org, c);
    await inOrg(t.db, org, (tx) => retireDataKeys(tx, org, { ids: [keyId!] }));
    await assert.rejects(
      t.db.transaction().execute(async (tx) => {
        await sql`SELECT set_config('role', 'billvault_app', true), set_config('app.org_id', ${org}, true)`.execute(
          tx,
        );
        await sql`WITH g AS (SELECT billvault_data_key_guard(${org}, ${keyId!}) AS ok)
          INSERT INTO org_contacts (org_id, id, kind, name_enc) SELECT ${org}, 'ct_x', 'billing', 'x' FROM g`.execute(
          tx,
        );
      }),
      (e: { code?: string; message?: string }) =>
        e.code === 'BVK01' && /no longer active/.test(e.message ?? ''),
    );
    assert.equal(await contacts(org), 1, 'the refused statement wrote nothing');
  });

  it('a key retired after it was cached: the statement fails, the transaction is retried once under a fresh key', async () => {
    const org = (await createOrg(t.db, { name: 'Retired under', baseCurrency: 'EUR' })).id;
    const c = testCipher({}, kp);
    const old = (await write(org, c)).keyId;
    await inOrg(t.db, org, (tx) => retireDataKeys(tx, org, { ids: [old!] }));
    const next = await write(org, c);
    assert.equal(next.attempts, 2);
    assert.notEqual(next.keyId, old);
    assert.equal(await contacts(org), 2, 'one row per write: the failed attempt wrote nothing');
    assert.equal(await readBack(c, org, next), 'guarded');
  });

  it('a retirement in progress makes the statement wait, then retry under a fresh key; a statement that locked first holds the retirement off', async () => {
    const org = (await createOrg(t.db, { name: 'Race', baseCurrency: 'EUR' })).id;
    const c = testCipher({}, kp);
    const old = (await write(org, c)).keyId;
    // The retirement holds the key FOR UPDATE (uncommitted) while the writer's statement runs.
    const held = deferred();
    const locked = deferred();
    const retire = inOrg(t.db, org, async (tx) => {
      await retireDataKeys(tx, org, { purpose: 'data' });
      locked.resolve();
      await held.promise;
    });
    await locked.promise;
    let settled = false;
    const writer = write(org, c).finally(() => {
      settled = true;
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(settled, false, 'the guard waits for the retirement');
    held.resolve();
    await retire;
    const w = await writer;
    assert.equal(w.attempts, 2);
    assert.notEqual(w.keyId, old);
    // The other way round: the writer's statement has run (key share-locked), not yet committed.
    const writerHeld = deferred();
    const wrote = deferred();
    const second = inOrg(t.db, org, async (tx) => {
      const id = newId('contact');
      const { ciphertext, guard } = await c.encryptForStatement(tx, { orgId: org }, field(id), 'first');
      assert.ok(guard);
      await sql`WITH g AS (SELECT ${guard} AS ok)
        INSERT INTO org_contacts (org_id, id, kind, name_enc) SELECT ${org}, ${id}, 'billing', ${ciphertext} FROM g`.execute(
        tx,
      );
      wrote.resolve();
      await writerHeld.promise;
    });
    await wrote.promise;
    await assertRetirementWaits(
      org,
      second,
      writerHeld.resolve,
      'retirement waits for the statement that share-locked the key',
    );
  });
});

describe('automatic data key retirement (AES-GCM usage limit)', () => {
  it('retires a data key once its usage limit is reached; everything still decrypts', async () => {
    const org = (await createOrg(t.db, { name: 'Busy', baseCurrency: 'EUR' })).id;
    const c = testCipher({ usageLimit: 10, reserveBlock: 4 }, kp);
    const written: { ct: string; plain: string; rowId: string }[] = [];
    for (let i = 0; i < 30; i++) {
      const rowId = `row${i}`;
      const plain = `value ${i}`;
      const ct = await inOrg(t.db, org, (tx) =>
        c.encrypt(tx, { orgId: org }, { table: 'org_contacts', column: 'name_enc', rowId }, plain),
      );
      written.push({ ct, plain, rowId });
    }
    const keys = await sql<{ status: string; usage_count: bigint }>`
      SELECT status, usage_count FROM org_data_keys WHERE org_id = ${org} AND purpose = 'data' ORDER BY created_at`.execute(
      t.db,
    );
    assert.ok(keys.rows.length >= 3, `expected several keys, got ${keys.rows.length}`);
    assert.equal(keys.rows.filter((k) => k.status === 'active').length, 1);
    for (const k of keys.rows) assert.ok(k.usage_count <= 14n, `usage ${k.usage_count} beyond limit + block`);
    const perKey = new Map<string, number>();
    for (const w of written) {
      const id = parseCiphertext(w.ct)!.keyId;
      perKey.set(id, (perKey.get(id) ?? 0) + 1);
    }
    for (const n of perKey.values()) assert.ok(n <= 10, `a key encrypted ${n} values, over the limit`);
    const fresh = testCipher({}, kp);
    for (const w of written) {
      const plain = await inOrg(t.db, org, (tx) =>
        fresh.decrypt(
          tx,
          { orgId: org },
          { table: 'org_contacts', column: 'name_enc', rowId: w.rowId },
          w.ct,
        ),
      );
      assert.equal(plain, w.plain);
    }
  });
});

describe('blind indexes', () => {
  it('find a contact by email, whatever the case and spacing', async () => {
    const id = await addContact(orgA, 'Grace', 'grace.hopper@navy.example');
    const found = await inOrg(t.db, orgA, async (tx) => {
      const idx = await orgContactsCrypto.index(cipher, tx, orgA, 'email', '  GRACE.Hopper@navy.EXAMPLE ');
      return tx.selectFrom('org_contacts').select('id').where('email_bidx', '=', idx).execute();
    });
    assert.deepEqual(found, [{ id }]);
  });

  it('are keyed per org and per purpose, and truncated to 128 bits', async () => {
    const [a1, a2, aTax] = await inOrg(t.db, orgA, async (tx) => [
      await cipher.blindIndex(tx, orgA, 'email', 'x@example.org'),
      await cipher.blindIndex(tx, orgA, 'email', 'X@example.org'),
      await cipher.blindIndex(tx, orgA, 'tax_id', 'x@example.org'),
    ]);
    const b1 = await inOrg(t.db, orgB, (tx) => cipher.blindIndex(tx, orgB, 'email', 'x@example.org'));
    assert.equal(a1, a2);
    assert.notEqual(a1, b1);
    assert.notEqual(a1, aTax);
    assert.match(a1!, /^[0-9a-f]{32}$/);
    // Stable across processes: a fresh cipher on the same master key computes the same index.
    const again = await inOrg(t.db, orgA, (tx) =>
      testCipher({}, kp).blindIndex(tx, orgA, 'email', 'x@example.org'),
    );
    assert.equal(again, a1);
  });

  it('normalise per purpose', () => {
    assert.equal(normaliseForIndex('tax_id', ' de 123-456.789 '), 'de123456789');
    assert.equal(normaliseForIndex('email', 'A@B.C'), 'a@b.c');
    assert.equal(normaliseForIndex('name', 'Ａda   Lovelace'), 'ada lovelace');
  });
});
