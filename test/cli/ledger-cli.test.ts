import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { systemCtx } from '../../src/app/context.js';
import { createCustomer } from '../../src/app/customers.js';
import { createInvoice, finalizeInvoice } from '../../src/app/invoices.js';
import { createOrg } from '../../src/app/orgs.js';
import { systemClock } from '../../src/app/ports.js';
import { testCipher } from '../helpers/crypto.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let t: TestDatabase;
let org: string;
let invoiceId: string;

function billvault(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/billvault.js', ...args], {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        DATABASE_URL: t.url,
        BILLVAULT_MASTER_KEY: randomBytes(32).toString('base64'),
        BILLVAULT_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

before(async () => {
  t = await createTestDatabase();
  org = (await createOrg(t.db, { name: 'Ledger Org', baseCurrency: 'EUR' })).id;
  const deps = { db: t.db, cipher: testCipher(), clock: systemClock };
  const ctx = systemCtx(org);
  const c = await createCustomer(deps, ctx, { name: 'Someone' });
  const inv = await createInvoice(deps, ctx, {
    customer: c.id,
    lines: [{ description: 'x', quantity: '3', unit_amount: 1234 }],
  });
  invoiceId = (await finalizeInvoice(deps, ctx, inv.id)).id;
});
after(() => t.drop());

describe('billvault ledger verify', () => {
  it('passes on a sound ledger', async () => {
    const r = await billvault(['--json', 'ledger', 'verify']);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.ok, true);
    assert.equal(report.orgs[0].org, org);
    assert.equal(report.orgs[0].entries, 1);
  });

  it('prints the difference and exits non-zero when AR and the invoices disagree', async () => {
    // An operator with superuser rights bypasses the immutability trigger and edits a remainder.
    await sql`ALTER TABLE invoices DISABLE TRIGGER invoices_immutable`.execute(t.db);
    await sql`UPDATE invoices SET amount_remaining = amount_remaining - 1 WHERE id = ${invoiceId}`.execute(
      t.db,
    );
    await sql`ALTER TABLE invoices ENABLE TRIGGER invoices_immutable`.execute(t.db);
    const r = await billvault(['ledger', 'verify', '--org', org]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /receivable_per_(customer|invoice)/);
    const unknown = await billvault(['ledger', 'verify', '--org', 'org_nope']);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /no org org_nope/);
  });
});
