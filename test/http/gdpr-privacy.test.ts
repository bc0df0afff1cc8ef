import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createLogger } from '../../src/adapters/log/logger.js';
import { fileErasureLog } from '../../src/adapters/privacy/erasure-log.js';
import { createOrg } from '../../src/app/orgs.js';
import { systemClock } from '../../src/app/ports.js';
import type { Role } from '../../src/domain/permissions.js';
import type { BuiltApp } from '../../src/http/app.js';
import { buildTestApp } from '../helpers/app.js';
import { actorHeader, addMember, headerActor } from '../helpers/billing.js';
import { testCipher } from '../helpers/crypto.js';
import { parseCsv } from '../helpers/csv.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/**
 * Privacy over HTTP: export (JSON and CSV), legal hold, erasure by crypto-shredding, the
 * restricted buyer details that survive it, and who may do what. The seeded PII values are
 * grepped through every output after the erasure.
 */

let t: TestDatabase;
let app: BuiltApp;
let org: string;
let orgB: string;
let dir: string;
let logFile: string;
const users: Record<string, string> = {};

const SEED = {
  name: 'Zelda Quux-Erasable',
  legal_name: '@Quux Holdings Zelda',
  email: 'zelda.quux@seeded.example',
  phone: '+44 20 7946 0958',
  tax_id: 'GB999888777',
  line1: '12 Formula Lane',
  notes: '=HYPERLINK("http://evil.example","click")',
  invoiceNote: 'Invoice note for Zelda Quux',
  reference: 'Transfer from Zelda Quux',
  refundReason: 'Zelda Quux asked for money back',
  memo: 'Quote memo for Zelda Quux',
};
const PII = [
  SEED.name,
  SEED.legal_name,
  SEED.email,
  SEED.phone,
  SEED.tax_id,
  SEED.line1,
  'HYPERLINK',
  SEED.invoiceNote,
  SEED.reference,
  SEED.refundReason,
  SEED.memo,
  'Zelda',
];

const as = (role: Role, o = org) => actorHeader(o, role, users[`${o}:${role}`] ?? 'usr_none');
const req = (
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  url: string,
  role: Role,
  payload?: object,
  o = org,
) => app.inject({ method, url, headers: as(role, o), ...(payload ? { payload } : {}) });
const ok = async (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, role: Role, payload?: object) => {
  const r = await req(method, url, role, payload);
  assert.ok(r.statusCode < 300, `${method} ${url}: ${r.statusCode} ${r.body}`);
  return r.json();
};

interface Seeded {
  customer: string;
  invoice: string;
  draft: string;
  quote: string;
  payment: string;
  refund: string;
  creditNote: string;
}

/** A customer with every kind of record: finalised invoice, draft, quote, payment, refund, credit note. */
async function seedCustomer(owner: string | null = users[`${org}:sales_rep`] ?? null): Promise<Seeded> {
  const c = await app.inject({
    method: 'POST',
    url: '/v1/customers',
    headers: { ...as('owner'), 'idempotency-key': `seed-${Math.random()}` },
    payload: {
      name: SEED.name,
      legal_name: SEED.legal_name,
      email: SEED.email,
      phone: SEED.phone,
      tax_id: SEED.tax_id,
      currency: 'EUR',
      address: { line1: SEED.line1, city: 'London', country: 'GB' },
      notes: SEED.notes,
      owner_user: owner,
    },
  });
  assert.equal(c.statusCode, 200, c.body);
  const customer = c.json().id as string;
  const inv = await ok('POST', '/v1/invoices', 'owner', {
    customer,
    currency: 'EUR',
    notes: SEED.invoiceNote,
    lines: [{ description: '-1+1 consulting', quantity: '2', unit_amount: 5_000 }],
  });
  await ok('POST', `/v1/invoices/${inv.id}/finalize`, 'owner', { issue_date: '2026-03-01' });
  const draft = await ok('POST', '/v1/invoices', 'owner', {
    customer,
    currency: 'EUR',
    lines: [{ description: 'Later work', quantity: '1', unit_amount: 700 }],
  });
  const quote = await ok('POST', '/v1/quotes', 'owner', {
    customer,
    currency: 'EUR',
    memo: SEED.memo,
    lines: [{ description: 'Offer', quantity: '1', unit_amount: 900 }],
  });
  const pay = await ok('POST', '/v1/payments', 'owner', {
    customer,
    amount: 12_000,
    currency: 'EUR',
    method: 'bank_transfer',
    reference: SEED.reference,
  });
  const refund = await ok('POST', '/v1/refunds', 'finance_manager', {
    payment: pay.id,
    amount: 500,
    reason: SEED.refundReason,
  });
  const cn = await ok('POST', '/v1/credit_notes', 'owner', { invoice: inv.id, amount: 100, reason: 'other' });
  return {
    customer,
    invoice: inv.id,
    draft: draft.id,
    quote: quote.id,
    payment: pay.id,
    refund: refund.id,
    creditNote: cn.id,
  };
}

function assertNoPii(label: string, text: string) {
  for (const v of PII) assert.ok(!text.includes(v), `${label} still shows "${v}"`);
}

async function auditCount(action: string, target?: string): Promise<number> {
  const r = await sql<{ n: string }>`SELECT count(*)::text AS n FROM audit_events
    WHERE org_id = ${org} AND action = ${action} AND (${target ?? null}::text IS NULL OR target_id = ${target ?? null})`.execute(
    t.db,
  );
  return Number(r.rows[0]?.n);
}

before(async () => {
  t = await createTestDatabase();
  org = (await createOrg(t.db, { name: 'Privacy Org', baseCurrency: 'EUR' })).id;
  orgB = (await createOrg(t.db, { name: 'Other Org', baseCurrency: 'EUR' })).id;
  for (const role of [
    'owner',
    'admin',
    'finance_manager',
    'accountant',
    'sales_rep',
    'viewer',
    'auditor',
  ] as const)
    users[`${org}:${role}`] = await addMember(t, org, role, role);
  users[`${orgB}:owner`] = await addMember(t, orgB, 'owner', 'b');
  dir = mkdtempSync(path.join(tmpdir(), 'bv-gdpr-'));
  logFile = path.join(dir, 'erasures.jsonl');
  app = await buildTestApp(t, {
    authenticate: async (r) => headerActor(r.headers['x-test-actor'] as string | undefined),
    billing: { db: t.db, cipher: testCipher(), clock: systemClock },
    erasureLog: fileErasureLog(logFile),
    logger: createLogger('error', process.stderr),
  });
});
after(async () => {
  await app.close();
  await t.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe('customer export (Art. 15/20)', () => {
  it('holds the profile, every document, payments, refunds, credit and the audit events about them', async () => {
    const s = await seedCustomer();
    const before = await auditCount('customer.exported', s.customer);
    const e = await ok('GET', `/v1/customers/${s.customer}/export`, 'finance_manager');
    assert.equal(e.object, 'customer_export');
    assert.equal(e.customer.id, s.customer);
    assert.equal(e.customer.name, SEED.name);
    assert.equal(e.customer.email, SEED.email);
    assert.equal(e.customer.phone, SEED.phone);
    assert.equal(e.customer.tax_id, SEED.tax_id);
    assert.equal(e.customer.address.line1, SEED.line1);
    assert.equal(e.customer.notes, SEED.notes);
    assert.equal(e.customer.erased, false);
    assert.deepEqual(e.invoices.map((i: { id: string }) => i.id).sort(), [s.invoice, s.draft].sort());
    const issued = e.invoices.find((i: { id: string }) => i.id === s.invoice);
    assert.equal(issued.notes, SEED.invoiceNote);
    assert.equal(issued.buyer.name, SEED.legal_name);
    assert.equal(issued.buyer.tax_id, SEED.tax_id);
    assert.equal(issued.total, 10_000);
    assert.equal(issued.lines.length, 1);
    assert.equal(issued.lines[0].description, '-1+1 consulting');
    assert.deepEqual(
      e.credit_notes.map((c: { id: string }) => c.id),
      [s.creditNote],
    );
    assert.deepEqual(
      e.quotes.map((q: { id: string; memo: string }) => [q.id, q.memo]),
      [[s.quote, SEED.memo]],
    );
    assert.deepEqual(
      e.payments.map((p: { id: string; reference: string }) => [p.id, p.reference]),
      [[s.payment, SEED.reference]],
    );
    assert.deepEqual(
      e.refunds.map((r: { id: string; reason: string }) => [r.id, r.reason]),
      [[s.refund, SEED.refundReason]],
    );
    // 12,000 paid against a 10,000 invoice (100 credited back), 500 refunded from the rest
    const eur = e.credit_balance.find((b: { currency: string }) => b.currency === 'EUR');
    assert.equal(eur.amount, (await ok('GET', `/v1/customers/${s.customer}`, 'owner')).credit_balance);
    const targets = new Set(e.audit_events.map((a: { target_id: string }) => a.target_id));
    for (const id of [s.customer, s.invoice, s.payment, s.refund, s.quote]) assert.ok(targets.has(id), id);
    assert.ok(e.audit_events.some((a: { action: string }) => a.action === 'customer.created'));
    // the export is itself audited, with counts only
    assert.equal(await auditCount('customer.exported', s.customer), before + 1);
    const ev = await sql<{ details: unknown }>`SELECT details FROM audit_events
      WHERE action = 'customer.exported' AND target_id = ${s.customer} ORDER BY occurred_at DESC LIMIT 1`.execute(
      t.db,
    );
    assertNoPii('the export audit event', JSON.stringify(ev.rows[0]?.details));
  });

  it('as CSV files, every text cell that could start a formula is neutralised', async () => {
    const s = await seedCustomer();
    const r = await ok('GET', `/v1/customers/${s.customer}/export?format=csv`, 'owner');
    assert.equal(r.format, 'csv');
    assert.deepEqual(Object.keys(r.files).sort(), [
      'audit_events.csv',
      'credit_balance.csv',
      'credit_notes.csv',
      'customer.csv',
      'invoice_lines.csv',
      'invoices.csv',
      'payments.csv',
      'quotes.csv',
      'refunds.csv',
    ]);
    const customer = parseCsv(r.files['customer.csv']);
    const header = customer[0] ?? [];
    const row = customer[1] ?? [];
    assert.equal(row[header.indexOf('notes')], `'${SEED.notes}`);
    assert.equal(row[header.indexOf('legal_name')], `'${SEED.legal_name}`);
    assert.equal(row[header.indexOf('phone')], `'${SEED.phone}`);
    assert.equal(row[header.indexOf('email')], SEED.email);
    const lines = parseCsv(r.files['invoice_lines.csv']);
    assert.equal(lines[1]?.[(lines[0] ?? []).indexOf('description')], "'-1+1 consulting");
    for (const [name, text] of Object.entries(r.files as Record<string, string>)) {
      for (const cells of parseCsv(text))
        for (const c of cells) assert.ok(!/^[=+@\t\r]/.test(c), `${name}: cell ${c} could run as a formula`);
      // numbers stay numbers (an amount is never prefixed)
    }
    const pay = parseCsv(r.files['payments.csv']);
    assert.equal(pay[1]?.[(pay[0] ?? []).indexOf('amount')], '12000');
  });

  it('is refused to roles without gdpr:export, 404 across tenants, 422 on bad input', async () => {
    const s = await seedCustomer();
    for (const role of ['sales_rep', 'viewer', 'accountant', 'auditor', 'admin'] as const)
      assert.equal((await req('GET', `/v1/customers/${s.customer}/export`, role)).statusCode, 403, role);
    assert.equal(
      (await req('GET', `/v1/customers/${s.customer}/export`, 'owner', undefined, orgB)).statusCode,
      404,
    );
    assert.equal(
      (await req('GET', `/v1/customers/${s.customer}/export?format=xlsx`, 'owner')).statusCode,
      422,
    );
    assert.equal((await req('GET', `/v1/customers/cus_'%20OR%201=1/export`, 'owner')).statusCode, 422);
  });
});

describe('legal hold and erasure (Art. 17/18)', () => {
  it('a legal hold refuses erasure with 409 legal_hold until it is released', async () => {
    const s = await seedCustomer();
    const held = await ok('POST', `/v1/customers/${s.customer}/legal_hold`, 'admin', {
      reason: 'Litigation 2026-17',
    });
    assert.equal(held.legal_hold, true);
    assert.equal((await ok('GET', `/v1/customers/${s.customer}`, 'owner')).legal_hold, true);
    const refused = await req('POST', `/v1/customers/${s.customer}/erase`, 'owner', {
      reason: 'data_subject_request',
    });
    assert.equal(refused.statusCode, 409, refused.body);
    assert.equal(refused.json().error.code, 'legal_hold');
    // nothing was half-written
    const row = await t.db
      .selectFrom('customers')
      .select(['erased_at', 'name_enc'])
      .where('id', '=', s.customer)
      .executeTakeFirstOrThrow();
    assert.equal(row.erased_at, null);
    assert.ok(row.name_enc?.startsWith('bv1:'));
    assert.equal(
      Number(
        (
          await sql<{ n: string }>`SELECT count(*)::text AS n FROM org_data_keys
            WHERE subject_id = ${s.customer} AND status = 'destroyed'`.execute(t.db)
        ).rows[0]?.n,
      ),
      0,
    );
    assert.equal(
      (await req('POST', `/v1/customers/${s.customer}/legal_hold`, 'finance_manager', { reason: 'x' }))
        .statusCode,
      403,
    );
    assert.equal(
      (await req('POST', `/v1/customers/${s.customer}/legal_hold`, 'owner', { reason: '' })).statusCode,
      422,
    );
    const released = await ok('DELETE', `/v1/customers/${s.customer}/legal_hold`, 'owner');
    assert.equal(released.legal_hold, false);
    assert.equal(await auditCount('customer.legal_hold_placed', s.customer), 1);
    assert.equal(await auditCount('customer.legal_hold_released', s.customer), 1);
    const ev = await sql<{ details: unknown }>`SELECT details FROM audit_events
      WHERE target_id = ${s.customer} AND action LIKE 'customer.legal_hold%'`.execute(t.db);
    for (const e of ev.rows) assert.ok(!JSON.stringify(e.details).includes('Litigation'));
    const erased = await ok('POST', `/v1/customers/${s.customer}/erase`, 'owner', {
      reason: 'data_subject_request',
    });
    assert.equal(erased.customer, s.customer);
  });

  it('erasure shreds the keys, clears the profile and leaves no PII in any output; totals and the ledger stay', async () => {
    const s = await seedCustomer();
    const invBefore = await ok('GET', `/v1/invoices/${s.invoice}`, 'owner');
    const idemBefore = await t.db
      .selectFrom('idempotency_keys')
      .select('key')
      .where('org_id', '=', org)
      .execute();
    assert.ok(idemBefore.length > 0);
    const r = await ok('POST', `/v1/customers/${s.customer}/erase`, 'owner', {
      reason: 'data_subject_request',
    });
    assert.equal(r.invoices_retained, 1);
    assert.equal(r.drafts_deleted, 1);
    assert.equal(r.quotes_withdrawn, 1);
    assert.ok(r.keys_destroyed >= 1);
    assert.equal(r.retain_years, 10);

    // the database: no ciphertext, no blind index, every key of the customer destroyed
    const row = await t.db
      .selectFrom('customers')
      .selectAll()
      .where('id', '=', s.customer)
      .executeTakeFirstOrThrow();
    for (const col of [
      'name_enc',
      'legal_name_enc',
      'email_enc',
      'email_bidx',
      'phone_enc',
      'billing_address_enc',
      'tax_id_enc',
      'tax_id_bidx',
      'notes_enc',
    ] as const)
      assert.equal(row[col], null, col);
    assert.ok(row.erased_at);
    assert.equal(row.display_name, `Erased customer ${s.customer}`);
    const keys = await sql<{
      status: string;
      wrapped: boolean;
    }>`SELECT status, wrapped_key IS NOT NULL AS wrapped
      FROM org_data_keys WHERE subject_type = 'customer' AND subject_id = ${s.customer}`.execute(t.db);
    assert.ok(keys.rows.length >= 1);
    for (const k of keys.rows) assert.deepEqual(k, { status: 'destroyed', wrapped: false });
    const inv = await t.db
      .selectFrom('invoices')
      .select('buyer_snapshot_enc')
      .where('id', '=', s.invoice)
      .executeTakeFirstOrThrow();
    assert.equal(inv.buyer_snapshot_enc, null);
    // cached idempotent replies that repeated the customer's details are gone
    const idemAfter = await t.db
      .selectFrom('idempotency_keys')
      .select('key')
      .where('org_id', '=', org)
      .execute();
    assert.ok(idemAfter.length < idemBefore.length);

    // every way to read: no PII, no 500
    const outputs: [string, Awaited<ReturnType<typeof req>>][] = [
      ['customer', await req('GET', `/v1/customers/${s.customer}`, 'owner')],
      ['customer list', await req('GET', '/v1/customers?include_archived=true&limit=100', 'owner')],
      ['invoice', await req('GET', `/v1/invoices/${s.invoice}?expand=customer`, 'owner')],
      ['invoices', await req('GET', `/v1/invoices?customer=${s.customer}`, 'owner')],
      ['payment', await req('GET', `/v1/payments/${s.payment}`, 'owner')],
      ['refund', await req('GET', `/v1/refunds/${s.refund}`, 'owner')],
      ['quote', await req('GET', `/v1/quotes/${s.quote}`, 'owner')],
      ['credit note', await req('GET', `/v1/credit_notes/${s.creditNote}`, 'owner')],
      ['export', await req('GET', `/v1/customers/${s.customer}/export`, 'owner')],
      ['export csv', await req('GET', `/v1/customers/${s.customer}/export?format=csv`, 'owner')],
      ['buyer (sales rep)', await req('GET', `/v1/invoices/${s.invoice}/buyer`, 'sales_rep')],
      ['audit events', await req('GET', '/v1/audit_events?limit=100', 'owner')],
      ['search by email', await req('GET', `/v1/customers?email=${encodeURIComponent(SEED.email)}`, 'owner')],
    ];
    for (const [label, res] of outputs) {
      assert.equal(res.statusCode, 200, `${label}: ${res.statusCode} ${res.body}`);
      // other customers of this file carry the same seeded values: only the erased one counts
      const list = label === 'customer list' || label === 'search by email';
      const body = list
        ? JSON.stringify(res.json().data.filter((c: { id: string }) => c.id === s.customer))
        : res.body;
      if (label === 'customer list') assert.ok(body.includes(s.customer));
      assertNoPii(label, body);
    }
    const customer = outputs[0]?.[1].json();
    assert.equal(customer.erased, true);
    assert.equal(customer.name, 'Erased customer');
    assert.equal(customer.email, null);
    // the blind index is gone: the email no longer finds the erased customer
    assert.ok(!outputs[12]?.[1].body.includes(s.customer));
    // the invoice keeps its number and totals
    const invAfter = outputs[2]?.[1].json();
    for (const k of ['number', 'total', 'tax', 'subtotal', 'amount_remaining', 'amount_credited'])
      assert.deepEqual(invAfter[k], invBefore[k], k);
    assert.equal(invAfter.notes, null);
    assert.equal(outputs[4]?.[1].json().reference, null);
    // drafts are deleted, quotes withdrawn
    assert.equal((await req('GET', `/v1/invoices/${s.draft}`, 'owner')).statusCode, 404);
    assert.equal(outputs[6]?.[1].json().status, 'expired');
    // the erasure log outside the database names ids only
    const log = readFileSync(logFile, 'utf8');
    assert.ok(log.includes(s.customer));
    assertNoPii('the erasure log', log);
    // the erasure event: reason code and counts, no PII
    const ev = await sql<{ details: { reason: string } }>`SELECT details FROM audit_events
      WHERE action = 'customer.erased' AND target_id = ${s.customer}`.execute(t.db);
    assert.equal(ev.rows.length, 1);
    assert.equal(ev.rows[0]?.details.reason, 'data_subject_request');
    assertNoPii('the erasure event', JSON.stringify(ev.rows[0]?.details));
    // the ledger still verifies
    const ledger = await ok('GET', '/v1/ledger/verify', 'owner');
    assert.equal(ledger.ok, true, JSON.stringify(ledger));
    // no second erasure, no change, no new documents
    const again = await req('POST', `/v1/customers/${s.customer}/erase`, 'owner', { reason: 'other' });
    assert.equal(again.statusCode, 409);
    assert.equal(again.json().error.code, 'customer_erased');
    const patch = await req('PATCH', `/v1/customers/${s.customer}`, 'owner', { name: SEED.name });
    assert.equal(patch.statusCode, 409);
    assert.equal(patch.json().error.code, 'customer_erased');
    const newInv = await req('POST', '/v1/invoices', 'owner', {
      customer: s.customer,
      currency: 'EUR',
      lines: [{ description: 'x', quantity: '1', unit_amount: 1 }],
    });
    assert.ok(newInv.statusCode >= 400 && newInv.statusCode < 500, newInv.body);
  });

  it('retained buyer details: owner and auditor read them (each read audited), others see restricted: true', async () => {
    const s = await seedCustomer();
    // before erasure: an ordinary PII read for those allowed, masked for the rest
    const fm = await ok('GET', `/v1/invoices/${s.invoice}/buyer`, 'finance_manager');
    assert.equal(fm.restricted, false);
    assert.equal(fm.details.name, SEED.legal_name);
    const viewer = await ok('GET', `/v1/invoices/${s.invoice}/buyer`, 'viewer');
    assert.equal(viewer.masked, true);
    assert.notEqual(viewer.details.name, SEED.legal_name);
    await ok('POST', `/v1/customers/${s.customer}/erase`, 'owner', { reason: 'consent_withdrawn' });
    const reads = await auditCount('privacy.restricted_read', s.invoice);
    for (const role of ['auditor', 'owner', 'auditor'] as const) {
      const r = await ok('GET', `/v1/invoices/${s.invoice}/buyer`, role);
      assert.equal(r.restricted, true);
      assert.equal(r.retain_until, '2036-03-01');
      assert.equal(r.details.name, SEED.legal_name);
      assert.equal(r.details.tax_id, SEED.tax_id);
      assert.equal(r.details.address.line1, SEED.line1);
    }
    assert.equal(await auditCount('privacy.restricted_read', s.invoice), reads + 3);
    for (const role of ['sales_rep', 'finance_manager', 'accountant', 'viewer', 'admin'] as const) {
      const r = await req('GET', `/v1/invoices/${s.invoice}/buyer`, role);
      assert.equal(r.statusCode, 200, `${role}: ${r.body}`);
      assert.equal(r.json().restricted, true);
      assert.equal(r.json().details, null);
      assertNoPii(role, r.body);
    }
    assert.equal(await auditCount('privacy.restricted_read', s.invoice), reads + 3);
    assert.equal(
      (await req('GET', `/v1/invoices/${s.invoice}/buyer`, 'owner', undefined, orgB)).statusCode,
      404,
    );
    // the retained copy is under the org's retention key, not the (destroyed) customer key
    const kept = await t.db
      .selectFrom('retained_buyer_details')
      .selectAll()
      .where('invoice_id', '=', s.invoice)
      .executeTakeFirstOrThrow();
    const keyId = kept.details_enc?.split(':')[1];
    const key = await sql<{ subject_type: string; subject_id: string; status: string }>`
      SELECT subject_type, subject_id, status FROM org_data_keys WHERE id = ${keyId ?? ''}`.execute(t.db);
    assert.deepEqual(key.rows[0], { subject_type: 'retention', subject_id: 'y2036', status: 'active' });
  });

  it('two concurrent erasures of one customer: one erases, the other gets 409, never a 500', async () => {
    const s = await seedCustomer();
    const [a, b] = await Promise.all([
      req('POST', `/v1/customers/${s.customer}/erase`, 'owner', { reason: 'data_subject_request' }),
      req('POST', `/v1/customers/${s.customer}/erase`, 'owner', { reason: 'data_subject_request' }),
    ]);
    assert.deepEqual([a.statusCode, b.statusCode].sort(), [200, 409], `${a.body} ${b.body}`);
    assert.equal(await auditCount('customer.erased', s.customer), 1);
    const kept = await t.db
      .selectFrom('retained_buyer_details')
      .select('invoice_id')
      .where('customer_id', '=', s.customer)
      .execute();
    assert.equal(kept.length, 1);
  });

  it('only gdpr:erase may erase; other tenants get 404; a bad reason is 422 and changes nothing', async () => {
    const s = await seedCustomer();
    for (const role of [
      'admin',
      'finance_manager',
      'accountant',
      'sales_rep',
      'viewer',
      'auditor',
    ] as const) {
      const r = await req('POST', `/v1/customers/${s.customer}/erase`, role, {
        reason: 'data_subject_request',
      });
      assert.equal(r.statusCode, 403, `${role}: ${r.body}`);
    }
    assert.equal(
      (
        await req(
          'POST',
          `/v1/customers/${s.customer}/erase`,
          'owner',
          { reason: 'data_subject_request' },
          orgB,
        )
      ).statusCode,
      404,
    );
    for (const body of [
      {},
      { reason: 'because' },
      { reason: "'; DROP TABLE customers; --" },
      { reason: 'other', x: 1 },
    ]) {
      const r = await req('POST', `/v1/customers/${s.customer}/erase`, 'owner', body);
      assert.equal(r.statusCode, 422, JSON.stringify(body));
    }
    const row = await t.db
      .selectFrom('customers')
      .select('erased_at')
      .where('id', '=', s.customer)
      .executeTakeFirstOrThrow();
    assert.equal(row.erased_at, null);
    assert.equal((await ok('GET', `/v1/customers/${s.customer}`, 'owner')).name, SEED.name);
  });
});

describe('records of processing (Art. 30)', () => {
  it('lists every encrypted field grouped by category, for owner, admin and auditor only', async () => {
    for (const role of ['owner', 'admin', 'auditor'] as const) {
      const r = await ok('GET', '/v1/privacy/processing-records', role);
      assert.equal(r.object, 'processing_records');
      const identity = r.categories.find((c: { category: string }) => c.category === 'identity');
      assert.ok(
        identity.fields.some(
          (f: { table: string; column: string; legal_basis: string }) =>
            f.table === 'customers' && f.column === 'name_enc' && f.legal_basis === 'contract',
        ),
      );
      const tax = r.categories.find((c: { category: string }) => c.category === 'tax');
      assert.ok(
        tax.fields.some(
          (f: { column: string; blind_index: string }) =>
            f.column === 'tax_id_enc' && f.blind_index === 'tax_id_bidx',
        ),
      );
    }
    for (const role of ['finance_manager', 'accountant', 'sales_rep', 'viewer'] as const)
      assert.equal((await req('GET', '/v1/privacy/processing-records', role)).statusCode, 403, role);
  });

  it('every encrypted column of the schema is classified (a new one cannot escape)', async () => {
    const r = await ok('GET', '/v1/privacy/processing-records', 'owner');
    const listed = new Set<string>(
      r.categories.flatMap((c: { fields: { table: string; column: string }[] }) =>
        c.fields.map((f) => `${f.table}.${f.column}`),
      ),
    );
    const cols = await sql<{
      t: string;
    }>`SELECT table_name || '.' || column_name AS t FROM information_schema.columns
      WHERE table_schema = 'public' AND column_name LIKE '%\\_enc' ORDER BY 1`.execute(t.db);
    assert.ok(cols.rows.length >= 15);
    const missing = cols.rows.map((c) => c.t).filter((c) => !listed.has(c));
    assert.deepEqual(missing, [], `encrypted columns without a data category: ${missing.join(', ')}`);
    for (const g of r.categories)
      for (const f of g.fields)
        for (const k of ['purpose', 'legal_basis', 'retention', 'subjects'])
          assert.ok(f[k], `${f.table}.${f.column} ${k}`);
  });
});
