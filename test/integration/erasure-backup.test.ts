import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createBackup, restoreBackup } from '../../src/adapters/backup/dump.js';
import { customersCrypto } from '../../src/adapters/crypto/encrypted-tables.js';
import { createFieldCipher } from '../../src/adapters/crypto/field-cipher.js';
import { LocalKeyProvider } from '../../src/adapters/crypto/key-provider.js';
import { migrate } from '../../src/adapters/db/index.js';
import { fileErasureLog } from '../../src/adapters/privacy/erasure-log.js';
import { systemCtx } from '../../src/app/context.js';
import { createCustomer } from '../../src/app/customers.js';
import { createInvoice, finalizeInvoice } from '../../src/app/invoices.js';
import { createOrg } from '../../src/app/orgs.js';
import { systemClock } from '../../src/app/ports.js';
import { eraseCustomer, exportAsCsv, exportCustomer, reapplyErasures } from '../../src/app/privacy.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { inOrg } from '../helpers/dbexports.js';

/**
 * Erasure must hold for backups taken before it. A backup carries the customer's data key
 * wrapped under the org key (and the master key still exists), so restoring it alone WOULD
 * bring the data back: this file shows that, then shows the erasure log (kept outside the
 * database) applying the erasure again at restore — through the use cases and through the
 * real CLI (`backup create` → `customer erase` → `backup restore` → `customer export`).
 */

const masterKey = randomBytes(32);
const kp = new LocalKeyProvider([masterKey], 'test');
const PASS = { kind: 'passphrase' as const, passphrase: 'correct horse battery staple' };
const PII = ['Backup Bettina Erasewell', 'bettina@restore.example', 'DE123456789', '7 Restore Road'];

let src: TestDatabase;
let dir: string;
let org: string;

const depsOn = (db: TestDatabase['db']) => ({ db, cipher: createFieldCipher(kp), clock: systemClock });

async function seedCustomer(db: TestDatabase['db']): Promise<{ customer: string; invoice: string }> {
  const deps = depsOn(db);
  const ctx = systemCtx(org);
  const c = await createCustomer(deps, ctx, {
    name: PII[0] as string,
    email: PII[1] as string,
    tax_id: PII[2] as string,
    address: { line1: PII[3] as string, city: 'Berlin', country: 'DE' },
    currency: 'EUR',
  });
  const inv = await createInvoice(deps, ctx, {
    customer: c.id,
    currency: 'EUR',
    lines: [{ description: 'Work', quantity: '1', unit_amount: 10_000 }],
  } as Parameters<typeof createInvoice>[2]);
  await finalizeInvoice(deps, ctx, inv.id, { issue_date: '2026-02-01' } as Parameters<
    typeof finalizeInvoice
  >[3]);
  return { customer: c.id, invoice: inv.id };
}

/** The customer's profile, decrypted with a fresh cipher (no cached keys); null fields once erased. */
async function readProfile(db: TestDatabase['db'], id: string) {
  const cipher = createFieldCipher(kp);
  return inOrg(db, org, async (tx) => {
    const row = await tx.selectFrom('customers').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    return customersCrypto.open(cipher, tx, { orgId: org, subject: { type: 'customer', id } }, id, row);
  });
}

async function emptyDatabase(): Promise<TestDatabase> {
  return createTestDatabase({ migrate: false });
}

function assertNoPii(label: string, text: string) {
  for (const v of PII) assert.ok(!text.includes(v), `${label} still shows "${v}"`);
}

before(async () => {
  src = await createTestDatabase();
  dir = mkdtempSync(path.join(tmpdir(), 'bv-erasure-backup-'));
  org = (await createOrg(src.db, { name: 'Backup Org', baseCurrency: 'EUR' })).id;
});
after(async () => {
  await src.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe('erasure and backups taken before it', () => {
  it('a restored pre-erasure backup shows no PII once the erasure log is re-applied', async () => {
    const s = await seedCustomer(src.db);
    const archive = path.join(dir, 'before-erasure.bvbak');
    await createBackup(src.db, archive, PASS, { kind: 'external' });
    const log = fileErasureLog(path.join(dir, 'erasures.jsonl'));
    await eraseCustomer(
      { ...depsOn(src.db), erasureLog: log },
      systemCtx(org),
      s.customer,
      'data_subject_request',
    );
    assert.equal((await readProfile(src.db, s.customer)).name, null);

    const restored = await emptyDatabase();
    try {
      await restoreBackup(restored.db, restored.pool, archive, PASS);
      await migrate(restored.pool);
      // The limit, stated honestly: the backup holds the wrapped customer key, so on its own
      // the restore brings the profile back...
      assert.equal((await readProfile(restored.db, s.customer)).name, PII[0]);
      // ...which is why the erasure log lives outside the database and is applied again.
      const again = await reapplyErasures(depsOn(restored.db), log);
      assert.deepEqual(again, [s.customer]);
      const p = await readProfile(restored.db, s.customer);
      assert.equal(p.name, null);
      assert.equal(p.email, null);
      const keys = await sql<{ status: string }>`SELECT status FROM org_data_keys
        WHERE subject_type = 'customer' AND subject_id = ${s.customer}`.execute(restored.db);
      assert.ok(keys.rows.length > 0);
      for (const k of keys.rows) assert.equal(k.status, 'destroyed');
      const e = await exportCustomer(depsOn(restored.db), systemCtx(org), s.customer);
      assert.equal(e.customer.erased, true);
      assertNoPii('export of the restored database', JSON.stringify(e));
      assertNoPii('CSV export of the restored database', JSON.stringify(exportAsCsv(e)));
      // the buyer details of the issued invoice are kept, restricted, under the retention key
      const kept = await sql<{ n: string }>`SELECT count(*)::text AS n FROM retained_buyer_details
        WHERE invoice_id = ${s.invoice} AND details_enc IS NOT NULL`.execute(restored.db);
      assert.equal(kept.rows[0]?.n, '1');
      // re-applying is idempotent
      assert.deepEqual(await reapplyErasures(depsOn(restored.db), log), []);
      const events = await sql<{ n: string }>`SELECT count(*)::text AS n FROM audit_events
        WHERE action = 'customer.erasure_reapplied' AND target_id = ${s.customer}`.execute(restored.db);
      assert.equal(events.rows[0]?.n, '1');
    } finally {
      await restored.drop();
    }
  });

  it('end to end through the CLI: backup, erase, restore the old backup, export: the PII stays gone', async () => {
    const s = await seedCustomer(src.db);
    const home = mkdtempSync(path.join(dir, 'home-'));
    const erasureLog = path.join(dir, 'cli-erasures.jsonl');
    const restored = await emptyDatabase();
    const run = (args: string[], databaseUrl: string) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, ['bin/billvault.js', ...args], {
          env: {
            PATH: process.env.PATH,
            HOME: home,
            BILLVAULT_LOG_LEVEL: 'warn',
            DATABASE_URL: databaseUrl,
            BILLVAULT_MASTER_KEY: masterKey.toString('base64'),
            BILLVAULT_BACKUP_PASSPHRASE: PASS.passphrase,
            BILLVAULT_ERASURE_LOG: erasureLog,
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
      });
    try {
      const archive = path.join(dir, 'cli.bvbak');
      const b = await run(['backup', 'create', archive], src.url);
      assert.equal(b.code, 0, b.stderr);
      const exportBefore = path.join(dir, 'export-before');
      const x0 = await run(
        ['--json', 'customer', 'export', '--id', s.customer, '--org', org, '--out', exportBefore],
        src.url,
      );
      assert.equal(x0.code, 0, x0.stderr);
      assert.ok(readFileSync(path.join(exportBefore, 'export.json'), 'utf8').includes(PII[1] as string));
      assert.equal(statSync(path.join(exportBefore, 'export.json')).mode & 0o077, 0);
      const e = await run(
        ['--json', 'customer', 'erase', '--id', s.customer, '--org', org, '--reason', 'data_subject_request'],
        src.url,
      );
      assert.equal(e.code, 0, e.stderr);
      assert.equal(JSON.parse(e.stdout).invoices_retained, 1);
      const r = await run(['--json', 'backup', 'restore', archive], restored.url);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(JSON.parse(r.stdout).erasures_reapplied.includes(s.customer));
      const out = path.join(dir, 'export-after');
      const x = await run(
        ['--json', 'customer', 'export', '--id', s.customer, '--org', org, '--out', out],
        restored.url,
      );
      assert.equal(x.code, 0, x.stderr);
      assert.ok(existsSync(path.join(out, 'export.json')));
      assert.ok(readdirSync(out).includes('customer.csv'));
      for (const f of readdirSync(out))
        assertNoPii(`restored export ${f}`, readFileSync(path.join(out, f), 'utf8'));
      assert.equal(JSON.parse(readFileSync(path.join(out, 'export.json'), 'utf8')).customer.erased, true);
      assertNoPii(
        'CLI output',
        b.stdout + e.stdout + r.stdout + x.stdout + b.stderr + e.stderr + r.stderr + x.stderr,
      );
      // the erased customer cannot be erased twice: one line, non-zero
      const twice = await run(
        ['customer', 'erase', '--id', s.customer, '--org', org, '--reason', 'other'],
        src.url,
      );
      assert.notEqual(twice.code, 0);
      assert.match(twice.stderr.trim(), /^billvault: error: customer_erased/);
      assert.equal(twice.stderr.trim().split('\n').length, 1);
    } finally {
      await restored.drop();
    }
  });
});
