import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import { createBackup, restoreBackup } from '../../src/adapters/backup/dump.js';
import { registeredTables } from '../../src/adapters/crypto/encrypted-columns.js';
import '../../src/adapters/crypto/encrypted-tables.js';
import { createFieldCipher } from '../../src/adapters/crypto/field-cipher.js';
import { LocalKeyProvider } from '../../src/adapters/crypto/key-provider.js';
import { connect, type Db } from '../../src/adapters/db/index.js';
import {
  AuditSealer,
  authenticateSigningKeys,
  exportCheckpoints,
  listChainsAsOperator,
  verifyChain,
} from '../../src/app/audit-chain.js';
import { systemCtx } from '../../src/app/context.js';
import { type KeyAdminDeps, reencrypt, rotateMaster } from '../../src/app/keys.js';
import { verifyOrgLedger } from '../../src/app/ledger.js';
import { createOrg } from '../../src/app/orgs.js';
import { systemClock } from '../../src/app/ports.js';
import { inPlatform } from '../../src/app/sessions.js';
import type { BuiltApp } from '../../src/http/app.js';
import { buildTestApp } from '../helpers/app.js';
import { actorHeader, addMember, headerActor } from '../helpers/billing.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/**
 * Issue 7 (audit) and the issue 4 follow-up (re-encryption coverage), on one database seeded
 * through the real API: every `*_enc` column is registered for `keys reencrypt`, which moves
 * every value; master-key rotation re-wraps the audit signing seeds; a backup restored into an
 * empty database passes `audit verify` and `ledger verify`.
 */

let t: TestDatabase;
let app: BuiltApp;
let org: string;
let owner: string;
let fm: string;
const kp = new LocalKeyProvider([randomBytes(32)], 'test (in-memory master key)');
const cipher = createFieldCipher(kp);
let deps: KeyAdminDeps & { keyProvider: LocalKeyProvider };
const TOTP_SECRET = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP';
const seeded: Record<string, string> = {};

const as = (who: string, role: 'owner' | 'finance_manager' = 'owner') => actorHeader(org, role, who);
async function post(url: string, payload: object, headers: Record<string, string> = as(owner)) {
  const r = await app.inject({ method: 'POST', url, headers, payload });
  assert.equal(r.statusCode, 200, `${url}: ${r.body}`);
  return r;
}
const get = (url: string) => app.inject({ method: 'GET', url, headers: as(owner) });

/** Every `*_enc` column of the public schema, from the catalogue. */
async function encColumns(db: Db): Promise<string[]> {
  const r = await sql<{ c: string }>`SELECT c.table_name || '.' || c.column_name AS c
    FROM information_schema.columns c JOIN information_schema.tables tb
      ON tb.table_schema = c.table_schema AND tb.table_name = c.table_name
    WHERE c.table_schema = 'public' AND tb.table_type = 'BASE TABLE' AND c.column_name LIKE '%\\_enc'
    ORDER BY 1`.execute(db);
  return r.rows.map((x) => x.c);
}

/** Key id of every stored ciphertext of every `*_enc` column, read as the owner with row security off. */
async function storedKeyIds(db: Db): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  await db.transaction().execute(async (tx) => {
    await sql`SET LOCAL row_security = off`.execute(tx);
    for (const tc of await encColumns(db)) {
      const [table, column] = tc.split('.') as [string, string];
      const r = await sql<{ k: string }>`SELECT split_part(${sql.ref(column)}, ':', 2) AS k
        FROM ${sql.table(table)} WHERE ${sql.ref(column)} IS NOT NULL`.execute(tx);
      out.set(
        tc,
        r.rows.map((x) => x.k),
      );
    }
  });
  return out;
}

const totpScope = (userId: string) => ({
  scope: { orgId: null, subject: { type: 'user' as const, id: userId } },
  field: { table: 'users', column: 'totp_secret_enc', rowId: userId },
});

async function readTotp(db: Db, userId: string) {
  return inPlatform(db, async (tx) => {
    const u = await tx
      .selectFrom('users')
      .select('totp_secret_enc')
      .where('id', '=', userId)
      .executeTakeFirstOrThrow();
    const { scope, field } = totpScope(userId);
    return cipher.decrypt(tx, scope, field, u.totp_secret_enc!);
  });
}

async function emptyDatabase() {
  const server = process.env.TEST_DATABASE_URL!;
  const name = `bv_restore_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)}`);
  await admin.end();
  const u = new URL(server);
  u.pathname = `/${name}`;
  const { db, pool } = connect(u.toString(), 4);
  return {
    db,
    pool,
    async drop() {
      await db.destroy();
      const a = new pg.Client({ connectionString: server });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${a.escapeIdentifier(name)} WITH (FORCE)`);
      await a.end();
    },
  };
}

async function verifyAll(db: Db, opts: Parameters<typeof verifyChain>[2] = {}) {
  const chains = await listChainsAsOperator(db);
  assert.ok(chains.length >= 2, `chains: ${chains}`);
  for (const c of chains) {
    const r = await verifyChain(db, c, opts);
    assert.equal(r.ok, true, `${c ?? 'platform'}: ${JSON.stringify(r.problems)}`);
    assert.ok(r.sealed > 0);
  }
  return chains;
}

before(async () => {
  t = await createTestDatabase();
  deps = { db: t.db, keyProvider: kp, cipher, tables: registeredTables() };
  org = (await createOrg(t.db, { name: 'Keys Org', baseCurrency: 'EUR' })).id;
  owner = await addMember(t, org, 'owner', 'owner');
  fm = await addMember(t, org, 'finance_manager', 'fm');
  app = await buildTestApp(t, {
    authenticate: async (req) => headerActor(req.headers['x-test-actor'] as string | undefined),
    billing: { db: t.db, cipher, clock: systemClock },
  });
  const customer = (
    await post('/v1/customers', {
      name: 'Ada Lovelace-Byron',
      email: 'ada.keys@example.org',
      tax_id: 'GB123456789',
      currency: 'EUR',
    })
  ).json().id as string;
  const inv = (
    await post('/v1/invoices', {
      customer,
      currency: 'EUR',
      notes: 'Deliver to the back door, ask for Ada',
      lines: [{ description: 'Consulting', quantity: '2', unit_amount: 5_000 }],
    })
  ).json().id as string;
  await post(`/v1/invoices/${inv}/finalize`, {});
  const pay = await post(
    '/v1/payments',
    {
      customer,
      amount: 20_000,
      currency: 'EUR',
      method: 'card',
      reference: 'Remittance ADA-77',
      card: {
        gateway_token: 'tok_visa_keys_4242',
        brand: 'visa',
        last4: '4242',
        exp_month: 12,
        exp_year: 2030,
      },
    },
    { ...as(owner), 'idempotency-key': 'keys-test-payment-1' },
  );
  seeded.payment = pay.json().id;
  seeded.paymentBody = pay.body;
  const refund = await post(
    '/v1/refunds',
    { payment: seeded.payment, amount: 1_000, reason: 'Ada asked for part of it back' },
    as(fm, 'finance_manager'),
  );
  seeded.refund = refund.json().id;
  seeded.invoice = inv;
  await inPlatform(t.db, async (tx) => {
    const { scope, field } = totpScope(owner);
    const enc = await cipher.encrypt(tx, scope, field, TOTP_SECRET);
    await tx.updateTable('users').set({ totp_secret_enc: enc }).where('id', '=', owner).execute();
  });
});
after(async () => {
  await app?.close();
  await t?.drop();
});

describe('re-encryption registry', () => {
  it('every *_enc column in the schema is registered for keys reencrypt (none can escape)', async () => {
    const registered = new Set(
      registeredTables().flatMap((tb) => tb.columns.map((c) => `${tb.spec.table}.${c.column}`)),
    );
    const inSchema = await encColumns(t.db);
    assert.ok(inSchema.length >= 17, `found ${inSchema.join(', ')}`);
    const missing = inSchema.filter((c) => !registered.has(c));
    assert.deepEqual(missing, [], 'add these to src/adapters/crypto/encrypted-tables.ts');
    const stale = [...registered].filter((c) => !inSchema.includes(c));
    assert.deepEqual(stale, [], 'registered columns that the schema does not have');
  });

  it('keys reencrypt moves every stored value off the retired keys; everything still reads back', async () => {
    const before = await storedKeyIds(t.db);
    for (const c of [
      'invoices.notes_enc',
      'invoices.buyer_snapshot_enc',
      'payments.reference_enc',
      'payments.card_token_enc',
      'refunds.reason_enc',
      'idempotency_keys.response_enc',
      'users.totp_secret_enc',
      'customers.name_enc',
    ])
      assert.ok((before.get(c) ?? []).length > 0, `nothing seeded in ${c}`);
    const invoiceBefore = (await get(`/v1/invoices/${seeded.invoice}`)).json();

    const res = await reencrypt(deps);
    assert.equal(res.interrupted, false);
    assert.deepEqual(res.keptKeys, [], 'a retired key is still referenced somewhere');
    assert.ok(res.destroyedKeys > 0 && res.reencrypted > 0);
    const oldKeys = new Set([...before.values()].flat());
    const after = await storedKeyIds(t.db);
    for (const [c, ids] of after) {
      assert.equal(ids.length, before.get(c)?.length, c);
      for (const k of ids) assert.ok(!oldKeys.has(k), `${c} still under a retired key ${k}`);
    }
    // The values read back unchanged through the real use cases.
    const invoiceAfter = (await get(`/v1/invoices/${seeded.invoice}`)).json();
    assert.deepEqual(invoiceAfter, invoiceBefore);
    assert.equal(invoiceAfter.notes, 'Deliver to the back door, ask for Ada');
    const payment = (await get(`/v1/payments/${seeded.payment}`)).json();
    assert.equal(payment.reference, 'Remittance ADA-77');
    const refund = (await get(`/v1/refunds/${seeded.refund}`)).json();
    assert.equal(refund.reason, 'Ada asked for part of it back');
    const replay = await app.inject({
      method: 'POST',
      url: '/v1/payments',
      headers: { ...as(owner), 'idempotency-key': 'keys-test-payment-1' },
      payload: {
        customer: payment.customer,
        amount: 20_000,
        currency: 'EUR',
        method: 'card',
        reference: 'Remittance ADA-77',
        card: {
          gateway_token: 'tok_visa_keys_4242',
          brand: 'visa',
          last4: '4242',
          exp_month: 12,
          exp_year: 2030,
        },
      },
    });
    assert.equal(replay.headers['idempotent-replayed'], 'true');
    assert.equal(replay.body, seeded.paymentBody);
    assert.equal(await readTotp(t.db, owner), TOTP_SECRET);
  });

  it('a finalised invoice and a posted refund stay immutable: only a re-keyed ciphertext may replace theirs', async () => {
    const same = await sql<{ notes_enc: string; reason_enc: string }>`
      SELECT i.notes_enc, r.reason_enc FROM invoices i, refunds r
      WHERE i.id = ${seeded.invoice} AND r.id = ${seeded.refund}`.execute(t.db);
    const row = same.rows[0]!;
    // Same key id, other bytes: a content change, refused even for the owner connection.
    const forged = (v: string) => `${v.split(':').slice(0, 2).join(':')}:AAAA`;
    await assert.rejects(
      sql`UPDATE invoices SET notes_enc = ${forged(row.notes_enc)} WHERE id = ${seeded.invoice}`.execute(
        t.db,
      ),
      /finalized and cannot be changed/,
    );
    await assert.rejects(
      sql`UPDATE invoices SET notes_enc = NULL WHERE id = ${seeded.invoice}`.execute(t.db),
      /finalized and cannot be changed/,
    );
    await assert.rejects(
      sql`UPDATE refunds SET reason_enc = ${forged(row.reason_enc)} WHERE id = ${seeded.refund}`.execute(
        t.db,
      ),
      /cannot change/,
    );
    await assert.rejects(
      sql`UPDATE refunds SET reason_enc = ${`bv1:dk_other:${'A'.repeat(8)}`}, amount = 1 WHERE id = ${seeded.refund}`.execute(
        t.db,
      ),
      /cannot change/,
    );
  });
});

describe('audit signing keys and master-key rotation', () => {
  it('rotating the master key re-wraps the signing seed: old checkpoints verify, new ones are signed', async () => {
    const sealer = new AuditSealer(t.db, { keyProvider: kp, checkpointEvery: 1_000_000 });
    await sealer.sealAll();
    await sealer.checkpoint(org);
    await sealer.checkpoint(null);
    const oldMaster = kp.activeKeyId();
    const signingBefore = await sql<{ id: string; master_key_id: string; public_key: string }>`
      SELECT id, master_key_id, public_key FROM audit_signing_keys`.execute(t.db);
    assert.equal(signingBefore.rows.length, 1);
    assert.equal(signingBefore.rows[0]?.master_key_id, oldMaster);
    const exported = await exportCheckpoints(t.db, [org, null]);

    const res = await rotateMaster(deps, async () => {});
    assert.deepEqual(res.dropped, [oldMaster], 'the old master key is removed');
    assert.deepEqual(kp.keyIds(), [res.masterKeyId]);
    const signingAfter = await sql<{ id: string; master_key_id: string; public_key: string }>`
      SELECT id, master_key_id, public_key FROM audit_signing_keys`.execute(t.db);
    assert.deepEqual(
      signingAfter.rows,
      signingBefore.rows.map((r) => ({ ...r, master_key_id: res.masterKeyId })),
    );
    assert.deepEqual(
      await authenticateSigningKeys(t.db, kp),
      [],
      'the seed unwraps under the new master key',
    );
    const audited = await sql<{ details: { signing_keys_rewrapped?: number } }>`
      SELECT details FROM audit_events WHERE action = 'key.master_rotated' AND org_id IS NULL`.execute(t.db);
    assert.equal(audited.rows[0]?.details.signing_keys_rewrapped, 1);

    // New events, sealed and checkpointed by a fresh sealer holding only the new master key.
    await post('/v1/tax_rates', {
      name: 'After rotation',
      percentage: '7.0',
      inclusive: false,
      category: 'S',
    });
    const fresh = new AuditSealer(t.db, { keyProvider: kp, checkpointEvery: 1_000_000 });
    await fresh.sealAll();
    const cp = await fresh.checkpoint(org);
    assert.ok(cp, 'a checkpoint was signed after the rotation');
    assert.equal(cp.key_id, signingBefore.rows[0]?.id);
    await verifyAll(t.db, { checkpointFile: exported });
  });
});

describe('backup and restore', () => {
  it('a restored database passes audit verify (with the exported checkpoints) and ledger verify', async () => {
    const sealer = new AuditSealer(t.db, { keyProvider: kp, checkpointEvery: 1_000_000 });
    await sealer.sealAll();
    for (const c of await listChainsAsOperator(t.db)) await sealer.checkpoint(c);
    const exported = await exportCheckpoints(t.db, await listChainsAsOperator(t.db));
    const dir = mkdtempSync(path.join(tmpdir(), 'bv-audit-backup-'));
    const file = path.join(dir, 'audit.bvbak');
    const target = await emptyDatabase();
    try {
      const pass = { kind: 'passphrase' as const, passphrase: 'correct horse battery staple' };
      await createBackup(t.db, file, pass, { kind: 'test' });
      await restoreBackup(target.db, target.pool, file, pass);
      const chains = await verifyAll(target.db, { checkpointFile: exported });
      assert.deepEqual(chains.sort(), (await listChainsAsOperator(t.db)).sort());
      const ledger = await verifyOrgLedger({ db: target.db }, systemCtx(org));
      assert.equal(ledger.ok, true, JSON.stringify(ledger));
      assert.deepEqual(await authenticateSigningKeys(target.db, kp), []);
      // The restored chain keeps growing: a new event seals onto it and still verifies.
      const restoredSealer = new AuditSealer(target.db, { keyProvider: kp, checkpointEvery: 1_000_000 });
      const restoredApp = await buildTestApp(
        { ...t, db: target.db, pool: target.pool },
        {
          authenticate: async (req) => headerActor(req.headers['x-test-actor'] as string | undefined),
          billing: { db: target.db, cipher, clock: systemClock },
        },
      );
      try {
        const r = await restoredApp.inject({
          method: 'POST',
          url: '/v1/tax_rates',
          headers: as(owner),
          payload: { name: 'Restored', percentage: '5.0', inclusive: false, category: 'S' },
        });
        assert.equal(r.statusCode, 200, r.body);
      } finally {
        await restoredApp.close();
      }
      assert.ok((await restoredSealer.sealAll()) >= 1);
      assert.ok(await restoredSealer.checkpoint(org));
      await verifyAll(target.db, { checkpointFile: exported });
      // Tampering with the restored copy is still caught.
      await sql`ALTER TABLE audit_events DISABLE TRIGGER USER`.execute(target.db);
      await sql`UPDATE audit_events SET ip = '203.0.113.9' WHERE id = (
        SELECT event_id FROM audit_chain WHERE chain_id = ${org} AND seq = 2)`.execute(target.db);
      await sql`ALTER TABLE audit_events ENABLE TRIGGER USER`.execute(target.db);
      const bad = await verifyChain(target.db, org);
      assert.equal(bad.ok, false);
      assert.equal(bad.first_bad_seq, 2);
    } finally {
      await target.drop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
