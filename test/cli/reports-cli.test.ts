import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { systemCtx } from '../../src/app/context.js';
import { createCustomer } from '../../src/app/customers.js';
import { createInvoice, finalizeInvoice } from '../../src/app/invoices.js';
import { createOrg } from '../../src/app/orgs.js';
import { recordPayment } from '../../src/app/payments.js';
import { systemClock } from '../../src/app/ports.js';
import { testCipher } from '../helpers/crypto.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let t: TestDatabase;
let customer: string;

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
  const org = (await createOrg(t.db, { name: 'Report Org', baseCurrency: 'EUR' })).id;
  const deps = { db: t.db, cipher: testCipher(), clock: systemClock };
  const ctx = systemCtx(org);
  customer = (await createCustomer(deps, ctx, { name: 'Someone' })).id;
  const inv = await createInvoice(deps, ctx, {
    customer,
    due_date: '2026-03-01',
    lines: [{ description: 'x', quantity: '1', unit_amount: 5_000 }],
  });
  await finalizeInvoice(deps, ctx, inv.id, { issue_date: '2026-02-01' });
  await recordPayment(deps, ctx, {
    customer,
    amount: 2_000,
    currency: 'EUR',
    method: 'cash',
    received_on: '2026-04-15',
  });
});
after(() => t.drop());

describe('billvault report and statement', () => {
  it('report aging --as-of: JSON and CSV', async () => {
    const j = await billvault(['--json', 'report', 'aging', '--as-of', '2026-04-01']);
    assert.equal(j.code, 0, j.stderr);
    const v = JSON.parse(j.stdout);
    // due 2026-03-01: 31 days past due on 2026-04-01
    assert.deepEqual(v.buckets, { current: 0, d1_30: 0, d31_60: 5_000, d61_90: 0, over_90: 0 });
    const later = JSON.parse(
      (await billvault(['report', 'aging', '--as-of', '2026-05-01', '--format', 'json'])).stdout,
    );
    // 61 days past due, less the 2,000 received on 2026-04-15
    assert.deepEqual(later.buckets, { current: 0, d1_30: 0, d31_60: 0, d61_90: 3_000, over_90: 0 });
    const c = await billvault(['report', 'aging', '--as-of', '2026-04-01', '--format', 'csv']);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.stdout.split('\r\n')[1], 'TOTAL,EUR,0,0,5000,0,0,5000');
  });

  it('report revenue and tax --from --to as CSV', async () => {
    const r = await billvault([
      'report',
      'revenue',
      '--from',
      '2026-01-01',
      '--to',
      '2026-12-31',
      '--group',
      'year',
      '--format',
      'csv',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.split('\r\n')[1], '2026-01-01,EUR,5000,0,2000,0');
    const tax = await billvault(['--json', 'report', 'tax', '--from', '2026-01-01', '--to', '2026-12-31']);
    assert.equal(tax.code, 0, tax.stderr);
    assert.equal(JSON.parse(tax.stdout).object, 'tax_report');
  });

  it('statement --customer --from --to', async () => {
    const r = await billvault([
      '--json',
      'statement',
      '--customer',
      customer,
      '--from',
      '2026-03-01',
      '--to',
      '2026-12-31',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout);
    assert.equal(s.opening_balance, 5_000);
    assert.equal(s.closing_balance, 3_000);
    const csv = await billvault([
      'statement',
      '--customer',
      customer,
      '--from',
      '2026-03-01',
      '--to',
      '2026-12-31',
      '--format',
      'csv',
    ]);
    assert.equal(csv.code, 0, csv.stderr);
    assert.equal(
      csv.stdout.trimEnd().split('\r\n').at(-1),
      `2026-12-31,closing_balance,${customer},,,,,,3000`,
    );
  });

  it('bad input: one line on stderr, non-zero exit', async () => {
    for (const args of [
      ['report', 'aging', '--as-of', '2026-02-30'],
      ['report', 'revenue', '--from', '2026-02-01', '--to', '2026-01-01'],
      ['report', 'revenue', '--from', '2026-01-01'],
      ['report', 'weather'],
      [
        'statement',
        '--customer',
        'cus_00000000000000000000000000000000',
        '--from',
        '2026-01-01',
        '--to',
        '2026-02-01',
      ],
    ]) {
      const r = await billvault(args);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /^billvault: error: /);
    }
  });
});
