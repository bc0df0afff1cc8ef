import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { sql } from 'kysely';
import { inOrg } from '../../src/adapters/db/index.js';
import { createOrg } from '../../src/app/orgs.js';
import { newId } from '../../src/domain/ids.js';
import type { Role } from '../../src/domain/permissions.js';
import type { BuiltApp } from '../../src/http/app.js';
import { actorHeader, addMember, buildBillingApp, standardRateRow } from '../helpers/billing.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let t: TestDatabase;
let app: BuiltApp;
let org: string;
let orgB: string;
const users: Record<string, string> = {};
let vat20: string;
let vat10: string;
let customer: string;
const year = new Date().toISOString().slice(0, 4);

const as = (role: Role, o = org) => actorHeader(o, role, users[`${o}:${role}`] ?? 'usr_none');
const post = (url: string, role: Role, payload?: object, o = org) =>
  app.inject({ method: 'POST', url, headers: as(role, o), ...(payload ? { payload } : {}) });

async function rate(percentage: string) {
  const id = newId('tax_rate');
  await inOrg(t.db, org, (tx) =>
    tx
      .insertInto('tax_rates')
      .values(standardRateRow(org, id, `VAT ${percentage}`, percentage))
      .execute(),
  );
  return id;
}

async function openInvoice(lines: { quantity: string; unit_amount: number; tax_rates: string[] }[]) {
  const d = await post('/v1/invoices', 'owner', {
    customer,
    lines: lines.map((l, i) => ({ description: `L${i}`, ...l })),
  });
  assert.equal(d.statusCode, 200, d.body);
  const f = await post(`/v1/invoices/${d.json().id}/finalize`, 'owner');
  assert.equal(f.statusCode, 200, f.body);
  return f.json();
}

async function ledgerOk() {
  const r = await app.inject({ method: 'GET', url: '/v1/ledger/verify', headers: as('owner') });
  assert.equal(r.json().ok, true, JSON.stringify(r.json().problems));
}

before(async () => {
  t = await createTestDatabase();
  org = (await createOrg(t.db, { name: 'CN Org', baseCurrency: 'EUR' })).id;
  orgB = (await createOrg(t.db, { name: 'Other', baseCurrency: 'EUR' })).id;
  for (const role of ['owner', 'accountant', 'finance_manager', 'sales_rep', 'viewer'] as const) {
    users[`${org}:${role}`] = await addMember(t, org, role, role);
  }
  users[`${orgB}:owner`] = await addMember(t, orgB, 'owner', 'b');
  app = await buildBillingApp(t);
  vat20 = await rate('20');
  vat10 = await rate('10');
  customer = (await post('/v1/customers', 'owner', { name: 'Credit Customer' })).json().id;
});
after(async () => {
  await app.close();
  await t.drop();
});

describe('credit notes', () => {
  it('credits an invoice in full: its remainder goes to zero and it is settled', async () => {
    const inv = await openInvoice([{ quantity: '2', unit_amount: 5000, tax_rates: [vat20] }]);
    const r = await post('/v1/credit_notes', 'accountant', { invoice: inv.id, reason: 'duplicate' });
    assert.equal(r.statusCode, 200, r.body);
    const cn = r.json();
    assert.match(cn.number, new RegExp(`^CN-${year}-\\d{6}$`));
    assert.deepEqual([cn.subtotal, cn.tax, cn.total], [10000, 2000, 12000]);
    assert.equal(cn.applied_to_invoice, 12000);
    assert.equal(cn.customer_credit, 0);
    const after = (
      await app.inject({ method: 'GET', url: `/v1/invoices/${inv.id}`, headers: as('owner') })
    ).json();
    assert.equal(after.amount_remaining, 0);
    assert.equal(after.amount_credited, 12000);
    assert.equal(after.status, 'paid');
    await ledgerOk();
  });

  it('credits by amount across the tax groups, and never beyond what is left', async () => {
    const inv = await openInvoice([
      { quantity: '1', unit_amount: 10000, tax_rates: [vat20] },
      { quantity: '1', unit_amount: 10000, tax_rates: [vat10] },
    ]);
    assert.equal(inv.total, 23000);
    const a = await post('/v1/credit_notes', 'finance_manager', {
      invoice: inv.id,
      amount: 11500,
      reason: 'pricing_error',
    });
    assert.equal(a.statusCode, 200, a.body);
    assert.equal(a.json().total, 11500);
    const groups = a
      .json()
      .tax_breakdown.map((g: { percentage: string; tax_amount: number }) => [g.percentage, g.tax_amount]);
    assert.equal(groups.length, 2);
    assert.equal(a.json().subtotal + a.json().tax, 11500);
    const over = await post('/v1/credit_notes', 'owner', { invoice: inv.id, amount: 11501, reason: 'other' });
    assert.equal(over.statusCode, 422);
    assert.equal(over.json().error.code, 'credit_exceeds_remaining');
    const rest = await post('/v1/credit_notes', 'owner', { invoice: inv.id, amount: 11500, reason: 'other' });
    assert.equal(rest.statusCode, 200, rest.body);
    const none = await post('/v1/credit_notes', 'owner', { invoice: inv.id, amount: 1, reason: 'other' });
    assert.equal(none.statusCode, 422);
    await ledgerOk();
  });

  it('credits part of a line by quantity', async () => {
    const inv = await openInvoice([
      { quantity: '4', unit_amount: 2500, tax_rates: [vat20] },
      { quantity: '1', unit_amount: 999, tax_rates: [vat10] },
    ]);
    const r = await post('/v1/credit_notes', 'owner', {
      invoice: inv.id,
      lines: [{ line: 0, quantity: '1' }],
      reason: 'product_unsatisfactory',
    });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual([r.json().subtotal, r.json().tax, r.json().total], [2500, 500, 3000]);
    assert.deepEqual(r.json().lines, [{ line: 0, quantity: '1', amount: 3000 }]);
    const tooMany = await post('/v1/credit_notes', 'owner', {
      invoice: inv.id,
      lines: [{ line: 0, quantity: '4' }],
      reason: 'other',
    });
    assert.equal(tooMany.statusCode, 422);
    const list = await app.inject({
      method: 'GET',
      url: `/v1/credit_notes?invoice=${inv.id}`,
      headers: as('viewer'),
    });
    assert.equal(list.json().data.length, 1);
    await ledgerOk();
  });

  it('refuses drafts and void invoices', async () => {
    const d = await post('/v1/invoices', 'owner', {
      customer,
      lines: [{ description: 'x', quantity: '1', unit_amount: 100 }],
    });
    const r = await post('/v1/credit_notes', 'owner', { invoice: d.json().id, reason: 'other' });
    assert.equal(r.statusCode, 409);
    assert.equal(r.json().error.code, 'invoice_not_open');
    const inv = await openInvoice([{ quantity: '1', unit_amount: 100, tax_rates: [] }]);
    await post(`/v1/invoices/${inv.id}/void`, 'owner');
    const v = await post('/v1/credit_notes', 'owner', { invoice: inv.id, reason: 'other' });
    assert.equal(v.statusCode, 409);
  });

  it('is not for sales reps or viewers, and other orgs get 404', async () => {
    const inv = await openInvoice([{ quantity: '1', unit_amount: 100, tax_rates: [] }]);
    assert.equal(
      (await post('/v1/credit_notes', 'sales_rep', { invoice: inv.id, reason: 'other' })).statusCode,
      403,
    );
    assert.equal(
      (await post('/v1/credit_notes', 'viewer', { invoice: inv.id, reason: 'other' })).statusCode,
      403,
    );
    assert.equal(
      (await post('/v1/credit_notes', 'owner', { invoice: inv.id, reason: 'other' }, orgB)).statusCode,
      404,
    );
    const bad = await post('/v1/credit_notes', 'owner', { invoice: inv.id, reason: 'because' });
    assert.equal(bad.statusCode, 422);
    const both = await post('/v1/credit_notes', 'owner', {
      invoice: inv.id,
      reason: 'other',
      amount: 1,
      lines: [{ line: 0 }],
    });
    assert.equal(both.statusCode, 422);
  });

  it('property: after any sequence of invoices, credits, voids and write-offs the ledger verifies and nothing goes negative', async () => {
    const invoiceOp = fc.record({
      kind: fc.constant('invoice' as const),
      lines: fc.array(
        fc.record({
          q: fc.integer({ min: 1, max: 5 }),
          p: fc.integer({ min: 1, max: 50_000 }),
          r: fc.integer({ min: 0, max: 2 }),
        }),
        { minLength: 1, maxLength: 3 },
      ),
    });
    const op = fc.oneof(
      invoiceOp,
      fc.record({
        kind: fc.constant('credit' as const),
        pick: fc.nat(),
        amount: fc.integer({ min: 1, max: 60_000 }),
      }),
      fc.record({ kind: fc.constant('void' as const), pick: fc.nat() }),
      fc.record({ kind: fc.constant('writeoff' as const), pick: fc.nat() }),
    );
    await fc.assert(
      fc.asyncProperty(invoiceOp, fc.array(op, { minLength: 2, maxLength: 8 }), async (first, rest) => {
        const ops = [first, ...rest];
        const invoices: string[] = [];
        for (const o of ops) {
          if (o.kind === 'invoice') {
            const rates = [[], [vat20], [vat10]];
            const inv = await openInvoice(
              o.lines.map((l) => ({ quantity: String(l.q), unit_amount: l.p, tax_rates: rates[l.r] ?? [] })),
            );
            invoices.push(inv.id);
            continue;
          }
          const id = invoices[o.pick % Math.max(1, invoices.length)];
          if (!id) continue;
          const r =
            o.kind === 'credit'
              ? await post('/v1/credit_notes', 'owner', { invoice: id, amount: o.amount, reason: 'other' })
              : await post(
                  `/v1/invoices/${id}/${o.kind === 'void' ? 'void' : 'mark_uncollectible'}`,
                  'owner',
                );
          assert.ok([200, 409, 422].includes(r.statusCode), r.body); // refusals are expected, errors are not
        }
        await ledgerOk();
        const bad = await inOrg(t.db, org, (tx) =>
          sql<{ n: number }>`
            SELECT count(*)::int AS n FROM invoices i
            WHERE i.amount_remaining < 0
               OR (SELECT coalesce(sum(total), 0) FROM credit_notes c WHERE c.invoice_id = i.id) > i.total`.execute(
            tx,
          ),
        );
        assert.equal(bad.rows[0]?.n, 0);
      }),
      { numRuns: 15 },
    );
  });
});
