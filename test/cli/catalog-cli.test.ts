import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createOrg } from '../../src/app/orgs.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let t: TestDatabase;
let home: string;
let orgA: string;
const masterKey = randomBytes(32).toString('base64');

/** Runs `billvault …` exactly as a user would, against this file's database and a random master key. */
function billvault(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/billvault.js', ...args], {
      env: {
        PATH: process.env.PATH,
        HOME: home,
        BILLVAULT_LOG_LEVEL: 'warn',
        DATABASE_URL: t.url,
        BILLVAULT_MASTER_KEY: masterKey,
        ...env,
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

async function ok(args: string[]) {
  const r = await billvault(args);
  assert.equal(r.code, 0, r.stderr);
  return r;
}

async function json(args: string[]) {
  return JSON.parse((await ok(['--json', ...args])).stdout);
}

function oneLineError(r: Run, pattern: RegExp) {
  assert.notEqual(r.code, 0);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one line, got:\n${r.stderr}`);
  assert.match(lines[0] ?? '', /^billvault: error: /);
  assert.match(lines[0] ?? '', pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  assert.equal(r.stdout, '');
}

before(async () => {
  t = await createTestDatabase();
  home = mkdtempSync(path.join(tmpdir(), 'bv-home-'));
  orgA = (await createOrg(t.db, { name: 'Acme', baseCurrency: 'EUR' })).id;
});
after(() => t.drop());

describe('billvault tax-rate / product / customer', () => {
  let vat = '';

  it('tax-rate create --json prints the rate, normalised and audited as the system actor', async () => {
    const r = await json([
      'tax-rate',
      'create',
      '--name',
      'VAT 20%',
      '--percentage',
      '20.0',
      '--category',
      'S',
    ]);
    vat = r.id;
    assert.match(r.id, /^txr_[0-9a-z]{32}$/);
    assert.equal(r.object, 'tax_rate');
    assert.equal(r.percentage, '20');
    assert.equal(r.inclusive, false);
    const ev = await sql<{ actor_type: string; org_id: string }>`
      SELECT actor_type, org_id FROM audit_events WHERE action = 'tax_rate.created' AND target_id = ${vat}`.execute(
      t.db,
    );
    assert.deepEqual(ev.rows, [{ actor_type: 'system', org_id: orgA }]);
    const exempt = await json([
      'tax-rate',
      'create',
      '--name',
      'Reverse charge',
      '--percentage',
      '0',
      '--category',
      'AE',
      '--exemption-reason-code',
      'VATEX-EU-AE',
      '--inclusive',
    ]);
    assert.equal(exempt.category, 'AE');
    assert.equal(exempt.inclusive, true);
  });

  it('tax-rate create refuses bad terms in one line, by the same rules as the API', async () => {
    oneLineError(
      await billvault(['tax-rate', 'create', '--name', 'x', '--percentage', '7.1234567', '--category', 'S']),
      /6 decimal/,
    );
    oneLineError(
      await billvault(['tax-rate', 'create', '--name', 'x', '--percentage', '0', '--category', 'E']),
      /exemption reason/,
    );
    oneLineError(
      await billvault(['tax-rate', 'create', '--name', 'x', '--percentage', '5', '--category', 'XX']),
      /--category/,
    );
  });

  it('tax-rate list prints the rates (JSON list envelope, or one line each)', async () => {
    const list = await json(['tax-rate', 'list']);
    assert.equal(list.object, 'list');
    assert.ok(list.data.some((r: { id: string }) => r.id === vat));
    assert.deepEqual((await json(['tax-rate', 'list', '--active', 'false'])).data, []);
    const text = await ok(['tax-rate', 'list']);
    assert.match(text.stdout, new RegExp(`${vat}\\s+20% S exclusive\\s+VAT 20%`));
    const page = await billvault(['tax-rate', 'list', '--limit', '1']);
    assert.match(page.stderr, /more: --starting-after txr_/);
    oneLineError(await billvault(['tax-rate', 'list', '--limit', '0']), /--limit/);
  });

  it('product create takes whole and sub-minor prices, more currencies and tax rates', async () => {
    const p = await json([
      'product',
      'create',
      '--name',
      'Consulting hour',
      '--currency',
      'EUR',
      '--unit-amount',
      '15000',
      '--price',
      'USD=17000',
      '--price',
      'GBP=0.125',
      '--tax-rate',
      vat,
      '--unit-code',
      'HUR',
    ]);
    assert.match(p.id, /^prd_[0-9a-z]{32}$/);
    assert.equal(p.unit_amount, 15000);
    assert.equal(p.currency, 'EUR');
    assert.deepEqual(p.prices, [
      { currency: 'EUR', unit_amount: 15000, unit_amount_decimal: null },
      { currency: 'GBP', unit_amount: null, unit_amount_decimal: '0.125' },
      { currency: 'USD', unit_amount: 17000, unit_amount_decimal: null },
    ]);
    assert.deepEqual(p.tax_rates, [vat]);
    const text = await ok([
      'product',
      'create',
      '--name',
      'API call',
      '--currency',
      'USD',
      '--unit-amount-decimal',
      '0.5',
    ]);
    assert.match(text.stdout, /^created product prd_\w+ {2}0\.5 USD minor units {2}API call\n$/);
    const list = await json(['product', 'list']);
    assert.equal(list.data.length, 2);
    const lines = (await ok(['product', 'list'])).stdout;
    assert.match(lines, /150\.00 EUR, 0\.125 GBP minor units, 170\.00 USD {2}Consulting hour/);
  });

  it('product create refuses bad amounts and unknown tax rates in one line', async () => {
    const base = ['product', 'create', '--name', 'Bad', '--currency', 'EUR'];
    oneLineError(await billvault([...base, '--unit-amount', '1.5']), /--unit-amount must be a whole number/);
    oneLineError(await billvault([...base, '--unit-amount', '9007199254740993']), /2\^53-1/);
    oneLineError(await billvault([...base, '--unit-amount', '1', '--price', 'USD:5']), /--price "USD:5"/);
    oneLineError(
      await billvault([...base, '--unit-amount', '1', '--price', 'EUR=5']),
      /one price per currency/,
    );
    oneLineError(await billvault(base), /exactly one of unit_amount/);
    oneLineError(
      await billvault([...base, '--unit-amount', '1', '--tax-rate', `txr_${'0'.repeat(32)}`]),
      /No tax rate txr_0+ in this org/,
    );
    oneLineError(await billvault([...base, '--unit-amount', '1', '--currency', 'ZZZ']), /Unknown currency/);
    const n = await sql<{ n: number }>`SELECT count(*)::int AS n FROM products WHERE name = 'Bad'`.execute(
      t.db,
    );
    assert.equal(n.rows[0]?.n, 0);
  });

  it('customer create encrypts PII with the field cipher; customer list finds it by exact email', async () => {
    const c = await json([
      'customer',
      'create',
      '--name',
      'Jane Q. Customer',
      '--email',
      'Jane@Example.org',
      '--tax-id',
      'DE123456789',
      '--currency',
      'eur',
      '--payment-terms-days',
      '14',
    ]);
    assert.match(c.id, /^cus_[0-9a-z]{32}$/);
    assert.equal(c.email, 'jane@example.org');
    assert.equal(c.payment_terms_days, 14);
    assert.equal(c.currency, 'EUR');
    const raw = await sql<Record<string, unknown>>`SELECT * FROM customers WHERE id = ${c.id}`.execute(t.db);
    assert.doesNotMatch(JSON.stringify(raw.rows), /jane|example\.org|123456789/i);
    assert.match(String(raw.rows[0]?.name_enc), /^bv1:/);
    const found = await json(['customer', 'list', '--email', 'JANE@example.org']);
    assert.deepEqual(
      found.data.map((x: { id: string }) => x.id),
      [c.id],
    );
    assert.equal(found.data[0].name, 'Jane Q. Customer');
    assert.deepEqual((await json(['customer', 'list', '--email', 'nobody@example.org'])).data, []);
    const text = await ok(['customer', 'list']);
    assert.match(text.stdout, new RegExp(`${c.id} {2}Jane Q\\. Customer <jane@example\\.org>`));
    oneLineError(
      await billvault(['customer', 'create', '--name', 'X', '--email', 'not-an-email']),
      /--email/,
    );
    oneLineError(
      await billvault(['customer', 'create', '--name', 'X', '--payment-terms-days', 'soon']),
      /--payment-terms-days must be a whole number/,
    );
  });

  it('a different master key cannot read the customers (the cipher really is the master key’s)', async () => {
    const r = await billvault(['customer', 'list'], {
      BILLVAULT_MASTER_KEY: randomBytes(32).toString('base64'),
    });
    assert.notEqual(r.code, 0);
    assert.doesNotMatch(r.stdout + r.stderr, /jane|example\.org/i);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });

  it('with several orgs, --org chooses one and each sees only its own catalog', async () => {
    const orgB = (await createOrg(t.db, { name: 'Beta', baseCurrency: 'USD' })).id;
    oneLineError(await billvault(['tax-rate', 'list']), /2 orgs exist: choose one with --org/);
    oneLineError(await billvault(['tax-rate', 'list', '--org', `org_${'0'.repeat(32)}`]), /no org org_0+/);
    assert.deepEqual((await json(['tax-rate', 'list', '--org', orgB])).data, []);
    assert.deepEqual((await json(['product', 'list', '--org', orgB])).data, []);
    assert.deepEqual((await json(['customer', 'list', '--org', orgB])).data, []);
    oneLineError(
      await billvault([
        'product',
        'create',
        '--org',
        orgB,
        '--name',
        'X',
        '--currency',
        'USD',
        '--unit-amount',
        '1',
        '--tax-rate',
        vat,
      ]),
      /No tax rate .* in this org/,
    );
    const p = await json([
      'product',
      'create',
      '--org',
      orgB,
      '--name',
      'B thing',
      '--currency',
      'USD',
      '--unit-amount',
      '1',
    ]);
    assert.equal(
      (await json(['product', 'list', '--org', orgA])).data.some((x: { id: string }) => x.id === p.id),
      false,
    );
  });
});
