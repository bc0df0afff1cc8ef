import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createOrg } from '../../src/app/orgs.js';
import { newId } from '../../src/domain/ids.js';
import type { Role } from '../../src/domain/permissions.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let t: TestDatabase;
let home: string;
let org: string;
const masterKey = randomBytes(32).toString('base64');
const emails: Partial<Record<Role, string>> = {};
const ids: Partial<Record<Role, string>> = {};

function billvault(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/billvault.js', ...args], {
      env: {
        PATH: process.env.PATH,
        HOME: home,
        BILLVAULT_LOG_LEVEL: 'warn',
        DATABASE_URL: t.url,
        BILLVAULT_MASTER_KEY: masterKey,
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

async function json(args: string[]) {
  const r = await billvault(['--json', ...args]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

function oneLineError(r: Run, pattern: RegExp) {
  assert.notEqual(r.code, 0);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one line, got:\n${r.stderr}`);
  assert.match(lines[0] ?? '', /^billvault: error: /);
  assert.match(lines[0] ?? '', pattern);
  assert.equal(r.stdout, '');
}

async function member(role: Role) {
  const id = newId('user');
  const email = `${role}-${randomBytes(3).toString('hex')}@cli.example`;
  const now = new Date();
  await sql`INSERT INTO users (id, email, webauthn_user_handle, created_at, updated_at)
            VALUES (${id}, ${email}, ${randomBytes(16)}, ${now}, ${now})`.execute(t.db);
  await sql`INSERT INTO memberships (org_id, id, user_id, role, created_at, updated_at)
            VALUES (${org}, ${newId('membership')}, ${id}, ${role}, ${now}, ${now})`.execute(t.db);
  emails[role] = email;
  ids[role] = id;
}

before(async () => {
  t = await createTestDatabase();
  home = mkdtempSync(path.join(tmpdir(), 'bv-home-'));
  org = (await createOrg(t.db, { name: 'CLI Billing', baseCurrency: 'EUR' })).id;
  for (const role of ['accountant', 'viewer'] as const) await member(role);
});
after(() => t.drop());

describe('billvault invoice / credit-note / payment / refund', () => {
  let customer = '';
  let inv = '';

  it('invoice create, finalize, show and list', async () => {
    customer = (await json(['customer', 'create', '--name', 'CLI Buyer', '--currency', 'EUR'])).id;
    const draft = await json([
      'invoice',
      'create',
      '--customer',
      customer,
      '--line',
      '2:1500:Consulting: day rate',
      '--line',
      '1:500:Travel',
    ]);
    assert.equal(draft.status, 'draft');
    assert.equal(draft.total, 3_500);
    assert.equal(draft.lines[0].description, 'Consulting: day rate');
    inv = draft.id;
    const open = await json(['invoice', 'finalize', inv, '--as', emails.accountant ?? '']);
    assert.equal(open.status, 'open');
    assert.match(open.number, /^INV-/);
    // the finalisation is the accountant's, not the system's
    const ev = await sql<{ actor_id: string }>`
      SELECT actor_id FROM audit_events WHERE action = 'invoice.finalized' AND target_id = ${inv}`.execute(
      t.db,
    );
    assert.deepEqual(
      ev.rows.map((r) => r.actor_id),
      [ids.accountant],
    );
    const shown = await billvault(['invoice', 'show', inv]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /Consulting: day rate/);
    assert.match(shown.stdout, /35\.00 EUR/);
    const list = await json(['invoice', 'list', '--status', 'open']);
    assert.deepEqual(
      list.data.map((i: { id: string }) => i.id),
      [inv],
    );
  });

  it('payment record (explicit allocation) and list; credit-note create; refund create', async () => {
    const p = await json([
      'payment',
      'record',
      '--customer',
      customer,
      '--amount',
      '1000',
      '--currency',
      'EUR',
      '--method',
      'bank_transfer',
      '--allocate',
      `${inv}=1000`,
      '--as',
      emails.accountant ?? '',
    ]);
    assert.equal(p.amount_applied, 1_000);
    const cn = await json([
      'credit-note',
      'create',
      '--invoice',
      inv,
      '--reason',
      'order_change',
      '--amount',
      '500',
    ]);
    assert.match(cn.number, /^CN-/);
    const after = await json(['invoice', 'show', inv]);
    assert.equal(after.amount_remaining, 2_000);
    const extra = await json([
      'payment',
      'record',
      '--customer',
      customer,
      '--amount',
      '2500',
      '--currency',
      'EUR',
      '--method',
      'cash',
    ]);
    // allocated automatically: 2,000 to the invoice, 500 left as credit
    assert.equal(extra.amount_applied, 2_000);
    assert.equal(extra.amount_unapplied, 500);
    assert.equal((await json(['invoice', 'show', inv])).status, 'paid');
    const list = await json(['payment', 'list', '--customer', customer]);
    assert.equal(list.data.length, 2);
    const r = await json([
      'refund',
      'create',
      '--payment',
      extra.id,
      '--amount',
      '300',
      '--reason',
      'goodwill',
    ]);
    assert.equal(r.status, 'posted');
    assert.equal(r.amount, 300);
    const ledger = await billvault(['ledger', 'verify']);
    assert.equal(ledger.code, 0, ledger.stdout + ledger.stderr);
  });

  it('invoice void', async () => {
    const d = await json(['invoice', 'create', '--customer', customer, '--line', '1:700:Setup']);
    await json(['invoice', 'finalize', d.id]);
    const v = await json(['invoice', 'void', d.id]);
    assert.equal(v.status, 'void');
  });

  it('errors are one line: permissions of --as, unknown members, bad input, wrong state', async () => {
    oneLineError(
      await billvault([
        'payment',
        'record',
        '--customer',
        customer,
        '--amount',
        '100',
        '--currency',
        'EUR',
        '--method',
        'cash',
        '--as',
        emails.viewer ?? '',
      ]),
      /payments:write/,
    );
    oneLineError(await billvault(['invoice', 'list', '--as', 'nobody@cli.example']), /No active member/);
    oneLineError(
      await billvault(['invoice', 'create', '--customer', customer, '--line', 'two:1:x']),
      /--line/,
    );
    oneLineError(
      await billvault([
        'payment',
        'record',
        '--customer',
        customer,
        '--amount',
        '1.5',
        '--currency',
        'EUR',
        '--method',
        'cash',
      ]),
      /--amount/,
    );
    oneLineError(await billvault(['invoice', 'finalize', inv]), /draft|finali/i);
    oneLineError(await billvault(['invoice', 'show', `inv_${'0'.repeat(32)}`]), /No such/);
    oneLineError(
      await billvault(['refund', 'create', '--customer', customer, '--amount', '999999', '--reason', 'x']),
      /credit/,
    );
  });
});
