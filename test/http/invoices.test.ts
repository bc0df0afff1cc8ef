import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
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
let orgA: string;
let orgB: string;
const users: Record<string, string> = {};
let vat20: string;
let vat7: string;
let customerA: string;
let repCustomer: string;
let otherRepCustomer: string;
const year = new Date().toISOString().slice(0, 4);

const as = (role: Role, org = orgA) => actorHeader(org, role, users[`${org}:${role}`] ?? 'usr_none');

async function taxRate(
  org: string,
  name: string,
  percentage: string,
  category = 'S',
  extra: Record<string, unknown> = {},
) {
  const id = newId('tax_rate');
  await inOrg(t.db, org, (tx) =>
    tx
      .insertInto('tax_rates')
      .values({ ...standardRateRow(org, id, name, percentage), category, ...extra })
      .execute(),
  );
  return id;
}

async function post(url: string, role: Role, payload?: unknown, org = orgA) {
  return app.inject({
    method: 'POST',
    url,
    headers: as(role, org),
    ...(payload === undefined ? {} : { payload: payload as object }),
  });
}

async function draft(customer = customerA, role: Role = 'owner', extra: Record<string, unknown> = {}) {
  const r = await post('/v1/invoices', role, {
    customer,
    lines: [{ description: 'Consulting', quantity: '2', unit_amount: 1999, tax_rates: [vat20] }],
    ...extra,
  });
  assert.equal(r.statusCode, 200, r.body);
  return r.json();
}

before(async () => {
  t = await createTestDatabase();
  orgA = (await createOrg(t.db, { name: 'Seller A', baseCurrency: 'EUR' })).id;
  orgB = (await createOrg(t.db, { name: 'Seller B', baseCurrency: 'EUR' })).id;
  for (const role of ['owner', 'finance_manager', 'accountant', 'viewer', 'auditor', 'sales_rep'] as const) {
    users[`${orgA}:${role}`] = await addMember(t, orgA, role, role);
  }
  users.rep2 = await addMember(t, orgA, 'sales_rep', 'rep2');
  users[`${orgB}:owner`] = await addMember(t, orgB, 'owner', 'bowner');
  app = await buildBillingApp(t);
  vat20 = await taxRate(orgA, 'VAT 20%', '20');
  vat7 = await taxRate(orgA, 'VAT 7%', '7');
  const mk = async (body: Record<string, unknown>, role: Role = 'owner', user?: string) => {
    const r = await app.inject({
      method: 'POST',
      url: '/v1/customers',
      headers: user ? actorHeader(orgA, role, user) : as(role),
      payload: body,
    });
    assert.equal(r.statusCode, 200, r.body);
    return r.json().id as string;
  };
  customerA = await mk({
    name: 'Buyer GmbH',
    email: 'ap@buyer.example',
    address: { line1: 'Main 1', city: 'Vienna', country: 'AT' },
    tax_id: 'ATU12345678',
    payment_terms_days: 30,
  });
  repCustomer = await mk({ name: 'Rep Client' }, 'sales_rep');
  otherRepCustomer = await mk({ name: 'Other Rep Client' }, 'sales_rep', users.rep2);
});
after(async () => {
  await app.close();
  await t.drop();
});

describe('invoices', () => {
  it('creates a draft with exact totals (EN 16931: tax per group, rounded once)', async () => {
    const r = await post('/v1/invoices', 'owner', {
      customer: customerA,
      lines: [
        { description: 'Widget', quantity: '3', unit_amount: 333, tax_rates: [vat20] }, // 999
        { description: 'Gadget', quantity: '1.5', unit_amount: 1001, tax_rates: [vat20] }, // 1501.5 → 1502
        {
          description: 'Book',
          quantity: '1',
          unit_amount: 1999,
          tax_rates: [vat7],
          discount_percentage: '10',
        }, // 1999 − 199.9→200 = 1799
      ],
      discounts: [{ amount: 100, reason: 'loyalty' }],
    });
    assert.equal(r.statusCode, 200, r.body);
    const inv = r.json();
    assert.equal(inv.status, 'draft');
    assert.equal(inv.number, null);
    assert.equal(inv.currency, 'EUR');
    assert.deepEqual(
      inv.lines.map((l: { amount: number }) => l.amount),
      [999, 1502, 1799],
    );
    assert.equal(inv.subtotal, 4300);
    // The 100 discount is split over the two groups in proportion 2501 : 1799 → 58 : 42.
    // 20% of (2501 − 58) = 488.6 → 489; 7% of (1799 − 42) = 122.99 → 123.
    assert.equal(inv.discount_total, 100);
    assert.equal(inv.tax, 612);
    assert.equal(inv.total, 4300 - 100 + 612);
    assert.equal(inv.amount_due, inv.total);
    assert.equal(inv.amount_remaining, inv.total);
    const groups = inv.tax_breakdown.map(
      (g: { percentage: string; taxable_amount: number; tax_amount: number }) => [
        g.percentage,
        g.taxable_amount,
        g.tax_amount,
      ],
    );
    assert.deepEqual(groups.sort(), [
      ['20', 2443, 489],
      ['7', 1757, 123],
    ]);
  });

  it('finalizes: number assigned, seller/buyer frozen, ledger posted and balanced', async () => {
    const d = await draft();
    const r = await post(`/v1/invoices/${d.id}/finalize`, 'accountant', { issue_date: `${year}-03-01` });
    assert.equal(r.statusCode, 200, r.body);
    const inv = r.json();
    assert.equal(inv.status, 'open');
    assert.match(inv.number, new RegExp(`^INV-${year}-\\d{6}$`));
    assert.equal(inv.issue_date, `${year}-03-01`);
    assert.equal(inv.due_date, `${year}-03-31`); // 30 days of payment terms
    const row = await sql<{ buyer_snapshot_enc: string; seller_snapshot: { name: string } }>`
      SELECT buyer_snapshot_enc, seller_snapshot FROM invoices WHERE id = ${d.id}`.execute(t.db);
    assert.match(row.rows[0]?.buyer_snapshot_enc ?? '', /^bv1:/);
    assert.doesNotMatch(row.rows[0]?.buyer_snapshot_enc ?? '', /Buyer|Vienna/);
    assert.equal(row.rows[0]?.seller_snapshot.name, 'Seller A');
    const ledger = await app.inject({ method: 'GET', url: '/v1/ledger/verify', headers: as('auditor') });
    assert.equal(ledger.statusCode, 200);
    assert.equal(ledger.json().ok, true, JSON.stringify(ledger.json().problems));
    assert.ok(ledger.json().entries >= 1);
  });

  it('refuses to change a finalized invoice through the API', async () => {
    const d = await draft();
    await post(`/v1/invoices/${d.id}/finalize`, 'owner');
    const patch = await app.inject({
      method: 'PATCH',
      url: `/v1/invoices/${d.id}`,
      headers: as('owner'),
      payload: { po_number: 'X' },
    });
    assert.equal(patch.statusCode, 409);
    assert.equal(patch.json().error.code, 'invoice_not_draft');
    const del = await app.inject({ method: 'DELETE', url: `/v1/invoices/${d.id}`, headers: as('owner') });
    assert.equal(del.statusCode, 409);
    const again = await post(`/v1/invoices/${d.id}/finalize`, 'owner');
    assert.equal(again.statusCode, 409);
  });

  it('refuses a plain SQL UPDATE of a finalized invoice, even as the application role', async () => {
    const d = await draft();
    await post(`/v1/invoices/${d.id}/finalize`, 'owner');
    await assert.rejects(
      inOrg(t.db, orgA, (tx) => sql`UPDATE invoices SET total = 1 WHERE id = ${d.id}`.execute(tx)),
      /finalized and cannot be changed/,
    );
    // Its lines are in its row: a changed line, an added line, no lines at all are all refused.
    const setLines = (id: string, lines: string) =>
      inOrg(t.db, orgA, (tx) =>
        sql`UPDATE invoices SET lines = ${sql.raw(lines)} WHERE id = ${id}`.execute(tx),
      );
    await assert.rejects(
      setLines(d.id, `jsonb_set(lines::jsonb, '{0,unit_amount}', '"1"')::json`),
      /finalized and cannot be changed/,
    );
    await assert.rejects(
      setLines(d.id, `(lines::jsonb || jsonb_build_array(lines -> 0))::json`),
      /finalized and cannot be changed/,
    );
    await assert.rejects(setLines(d.id, `'[]'::json`), /finalized and cannot be changed/);
    // the same lines written back with other spacing are a change too: the stored text is the record
    await assert.rejects(setLines(d.id, `(lines::text || ' ')::json`), /finalized and cannot be changed/);
    // in one statement with a draft's lines: the whole statement is refused, the draft's unchanged
    const other = await draft();
    const before = await sql<{
      lines: unknown;
    }>`SELECT lines::text FROM invoices WHERE id = ${other.id}`.execute(t.db);
    await assert.rejects(
      inOrg(t.db, orgA, (tx) =>
        sql`UPDATE invoices SET lines = (lines::jsonb || jsonb_build_array(lines -> 0))::json
          WHERE id IN (${other.id}, ${d.id})`.execute(tx),
      ),
      /finalized and cannot be changed/,
    );
    const after = await sql<{
      lines: unknown;
    }>`SELECT lines::text FROM invoices WHERE id = ${other.id}`.execute(t.db);
    assert.deepEqual(after.rows, before.rows);
    await setLines(other.id, `(lines::jsonb || jsonb_build_array(lines -> 0))::json`); // a draft's may change
    await assert.rejects(setLines(other.id, `'{}'::json`), /invoices_lines_array/);
    await assert.rejects(
      inOrg(t.db, orgA, (tx) => sql`DELETE FROM invoices WHERE id = ${d.id}`.execute(tx)),
      /cannot be deleted/,
    );
    await assert.rejects(sql`UPDATE invoices SET number = 'X' WHERE id = ${d.id}`.execute(t.db), /finalized/);
    await assert.rejects(
      inOrg(t.db, orgA, (tx) => sql`DELETE FROM journal_lines`.execute(tx)),
      /permission denied/,
    );
  });

  it('refuses an unbalanced journal entry at commit, even as the application role', async () => {
    // an org of its own: the entries here are not an invoice's, and would fail the others' ledger verify
    const org = (await createOrg(t.db, { name: 'Ledger test', baseCurrency: 'EUR' })).id;
    // lines: [debit, credit] pairs, one statement for the entry and its lines
    const entry = (id: string, lines: [number, number][]) =>
      sql`WITH e AS (
            INSERT INTO journal_entries (org_id, id, kind, currency, reference)
            SELECT ${org}, ${id}, 'test', 'EUR', 'test' WHERE NOT EXISTS
              (SELECT 1 FROM journal_entries WHERE org_id = ${org} AND id = ${id}))
          INSERT INTO journal_lines (org_id, entry_id, line_no, account, debit, credit)
          SELECT ${org}, ${id}, (SELECT count(*) FROM journal_lines WHERE org_id = ${org} AND entry_id = ${id}) + n,
            CASE WHEN d > 0 THEN 'accounts_receivable' ELSE 'revenue' END, d, c
          FROM unnest(${lines.map((l) => l[0])}::bigint[], ${lines.map((l) => l[1])}::bigint[])
            WITH ORDINALITY AS u(d, c, n)`;
    const count = async (id: string) =>
      (
        await inOrg(t.db, org, (tx) =>
          sql<{ n: number }>`SELECT count(*)::int AS n FROM journal_lines WHERE entry_id = ${id}`.execute(tx),
        )
      ).rows[0]?.n;
    const unbalanced = newId('journal_entry');
    await assert.rejects(
      inOrg(t.db, org, (tx) =>
        entry(unbalanced, [
          [100, 0],
          [0, 90],
        ]).execute(tx),
      ),
      /does not balance \(debits 100, credits 90\)/,
    );
    assert.equal(await count(unbalanced), 0, 'nothing of the refused entry is left');

    const balanced = newId('journal_entry');
    await inOrg(t.db, org, (tx) =>
      entry(balanced, [
        [100, 0],
        [0, 80],
        [0, 20],
      ]).execute(tx),
    );
    assert.equal(await count(balanced), 3);
    // a line appended later is summed with the entry's earlier lines
    await assert.rejects(
      inOrg(t.db, org, (tx) => entry(balanced, [[5, 0]]).execute(tx)),
      /does not balance \(debits 105, credits 100\)/,
    );
    // an unbalanced entry beside a balanced one: the whole transaction is refused; an entry balanced
    // by a later statement of its transaction is accepted (the check is deferred to commit)
    const a = newId('journal_entry');
    const b = newId('journal_entry');
    await assert.rejects(
      inOrg(t.db, org, async (tx) => {
        await entry(a, [
          [10, 0],
          [0, 10],
        ]).execute(tx);
        await entry(b, [[10, 0]]).execute(tx);
      }),
      /does not balance \(debits 10, credits 0\)/,
    );
    await inOrg(t.db, org, async (tx) => {
      await entry(b, [[10, 0]]).execute(tx);
      await entry(b, [[0, 10]]).execute(tx);
    });
    assert.equal(await count(b), 2);
    assert.equal(await count(a), 0, 'the transaction rolled back whole');
    assert.equal(await count(balanced), 3);
  });

  it('edits and deletes drafts', async () => {
    const d = await draft();
    const r = await app.inject({
      method: 'PATCH',
      url: `/v1/invoices/${d.id}`,
      headers: as('owner'),
      payload: {
        lines: [
          { description: 'Hours', quantity: '10', unit_amount: 10000, unit_code: 'HUR', tax_rates: [vat20] },
        ],
        po_number: 'PO-7',
      },
    });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().total, 120000);
    assert.equal(r.json().po_number, 'PO-7');
    const del = await app.inject({ method: 'DELETE', url: `/v1/invoices/${d.id}`, headers: as('owner') });
    assert.equal(del.statusCode, 200);
    const gone = await app.inject({ method: 'GET', url: `/v1/invoices/${d.id}`, headers: as('owner') });
    assert.equal(gone.statusCode, 404);
  });

  it('50 parallel finalizations in one series take numbers 1..50 with no gap and no duplicate', async () => {
    const org = (await createOrg(t.db, { name: 'Race', baseCurrency: 'EUR' })).id;
    const owner = await addMember(t, org, 'owner', 'race');
    const h = actorHeader(org, 'owner', owner);
    const rate = await taxRate(org, 'VAT', '20');
    const c = await app.inject({ method: 'POST', url: '/v1/customers', headers: h, payload: { name: 'R' } });
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) {
      const r = await app.inject({
        method: 'POST',
        url: '/v1/invoices',
        headers: h,
        payload: {
          customer: c.json().id,
          lines: [{ description: 'x', quantity: '1', unit_amount: 100 + i, tax_rates: [rate] }],
        },
      });
      ids.push(r.json().id);
    }
    // One finalization that fails validation mid-way must not burn a number.
    const failing = await app.inject({
      method: 'POST',
      url: `/v1/invoices/${ids[0]}/finalize`,
      headers: h,
      payload: { fx_rate: '1.1' },
    });
    assert.equal(failing.statusCode, 422);
    const replies = await Promise.all(
      ids.map((id) =>
        app.inject({
          method: 'POST',
          url: `/v1/invoices/${id}/finalize`,
          headers: h,
          payload: { issue_date: `${year}-06-30` },
        }),
      ),
    );
    for (const r of replies) assert.equal(r.statusCode, 200, r.body);
    const numbers = replies.map((r) => Number(r.json().number.slice(-6))).sort((a, b) => a - b);
    assert.deepEqual(
      numbers,
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
  });

  it('voids and writes off with reversing entries; the ledger still verifies; the number stays used', async () => {
    const a = await draft();
    const fa = (await post(`/v1/invoices/${a.id}/finalize`, 'owner')).json();
    const v = await post(`/v1/invoices/${a.id}/void`, 'finance_manager');
    assert.equal(v.statusCode, 200, v.body);
    assert.equal(v.json().status, 'void');
    assert.equal(v.json().number, fa.number);
    assert.equal(v.json().amount_remaining, 0);
    const again = await post(`/v1/invoices/${a.id}/void`, 'finance_manager');
    assert.equal(again.json().error.code, 'invoice_not_open');

    const b = await draft();
    await post(`/v1/invoices/${b.id}/finalize`, 'owner');
    const u = await post(`/v1/invoices/${b.id}/mark_uncollectible`, 'owner');
    assert.equal(u.json().status, 'uncollectible');
    const vb = await post(`/v1/invoices/${b.id}/void`, 'owner');
    assert.equal(vb.json().status, 'void');

    const next = await draft();
    const fn = (await post(`/v1/invoices/${next.id}/finalize`, 'owner')).json();
    assert.ok(fn.number > fa.number, 'voided numbers are never reused');

    const ledger = await app.inject({ method: 'GET', url: '/v1/ledger/verify', headers: as('owner') });
    assert.equal(ledger.json().ok, true, JSON.stringify(ledger.json().problems));
    const ar = ledger.json().trial_balance.find((a: { account: string }) => a.account === 'bad_debt');
    assert.ok(ar, 'the write-off posted to bad debt');
  });

  it('handles zero-decimal and three-decimal currencies exactly', async () => {
    const jpy = await post('/v1/invoices', 'owner', {
      customer: customerA,
      currency: 'JPY',
      lines: [{ description: 'Tea', quantity: '3', unit_amount: 333, tax_rates: [vat7] }], // 999 ¥, 7% = 69.93 → 70
    });
    assert.equal(jpy.statusCode, 200, jpy.body);
    assert.deepEqual([jpy.json().subtotal, jpy.json().tax, jpy.json().total], [999, 70, 1069]);
    const bhd = await post('/v1/invoices', 'owner', {
      customer: customerA,
      currency: 'BHD',
      lines: [{ description: 'Service', quantity: '1', unit_amount_decimal: '1234.5', tax_rates: [vat20] }], // 1.2345 BHD → 1.235 (1235 fils)
    });
    assert.equal(bhd.statusCode, 200, bhd.body);
    assert.deepEqual([bhd.json().subtotal, bhd.json().tax, bhd.json().total], [1235, 247, 1482]);
    const fx = await post(`/v1/invoices/${bhd.json().id}/finalize`, 'owner', { fx_rate: '2.43' });
    assert.equal(fx.statusCode, 200, fx.body);
    assert.equal(fx.json().total_base, 360); // 1.482 BHD × 2.43 = 3.60126 EUR → 360 cents
    assert.equal(fx.json().fx_rate, '2.43');
  });

  it('tax rates read along with the customer: another org’s or an inactive rate is refused, a fine percentage kept exact', async () => {
    const theirs = await taxRate(orgB, 'B VAT', '20');
    const inactive = await taxRate(orgA, 'Old VAT', '16', 'S', { active: false });
    const fine = await taxRate(orgA, 'Odd VAT', '7.6543');
    const line = (rates: string[]) => ({
      description: 'x',
      quantity: '1',
      unit_amount: 10000,
      tax_rates: rates,
    });
    for (const [rates, param] of [
      [[theirs], 'lines.0.tax_rates.0'],
      [[inactive], 'lines.0.tax_rates.0'],
      [[fine, theirs], 'lines.0.tax_rates.1'],
    ] as const) {
      const r = await post('/v1/invoices', 'owner', { customer: customerA, lines: [line([...rates])] });
      assert.equal(r.statusCode, 422, r.body);
      assert.equal(r.json().error.code, 'validation_failed');
      assert.equal(r.json().error.param, param);
    }
    // two lines naming the same rate, one request finalised: 7.6543 % of 100.00 twice
    const ok = await post('/v1/invoices', 'owner', {
      customer: customerA,
      lines: [line([fine]), line([fine])],
      finalize: true,
    });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.deepEqual(
      ok
        .json()
        .tax_breakdown.map((g: { percentage: string; tax_amount: number }) => [g.percentage, g.tax_amount]),
      [['7.6543', 1531]],
    );
  });

  it('validates input with the offending parameter', async () => {
    const cases: [Record<string, unknown>, string, string?][] = [
      [{ customer: customerA, lines: [] }, 'validation_failed', 'lines'],
      [
        { customer: customerA, lines: [{ description: 'x', quantity: 'abc', unit_amount: 1 }] },
        'validation_failed',
        'lines.0.quantity',
      ],
      [
        {
          customer: customerA,
          lines: [{ description: 'x', quantity: '1', unit_amount: 1, tax_rates: [newId('tax_rate')] }],
        },
        'validation_failed',
        'lines.0.tax_rates.0',
      ],
      [
        { customer: customerA, lines: [{ description: 'x', quantity: '1' }] },
        'validation_failed',
        'lines.0.unit_amount',
      ],
      [
        { customer: customerA, lines: [{ description: 'x', quantity: '1', unit_amount: 1.5 }] },
        'validation_failed',
        'lines.0.unit_amount',
      ],
      [
        {
          customer: customerA,
          currency: 'ZZZ',
          lines: [{ description: 'x', quantity: '1', unit_amount: 1 }],
        },
        'currency_unknown',
        'currency',
      ],
      [
        { customer: newId('customer'), lines: [{ description: 'x', quantity: '1', unit_amount: 1 }] },
        'not_found',
        'customer',
      ],
    ];
    for (const [body, code, param] of cases) {
      const r = await post('/v1/invoices', 'owner', body);
      assert.equal(r.json().error?.code, code, `${JSON.stringify(body)} → ${r.body}`);
      if (param) assert.equal(r.json().error.param, param, r.body);
    }
  });

  it('limits a sales rep to drafts for their own customers', async () => {
    const mine = await draft(repCustomer, 'sales_rep');
    const theirs = await draft(otherRepCustomer, 'owner');
    const list = await app.inject({ method: 'GET', url: '/v1/invoices', headers: as('sales_rep') });
    assert.deepEqual(
      list.json().data.map((i: { id: string }) => i.id),
      [mine.id],
    );
    assert.equal(
      (await app.inject({ method: 'GET', url: `/v1/invoices/${theirs.id}`, headers: as('sales_rep') }))
        .statusCode,
      404,
    );
    const forOther = await post('/v1/invoices', 'sales_rep', {
      customer: otherRepCustomer,
      lines: [{ description: 'x', quantity: '1', unit_amount: 1 }],
    });
    assert.equal(forOther.statusCode, 404);
    const fin = await post(`/v1/invoices/${mine.id}/finalize`, 'sales_rep');
    assert.equal(fin.statusCode, 403, 'sales reps do not finalize');
  });

  it('shows masked customer details to a viewer through expand, and hides other orgs (404)', async () => {
    const d = await draft();
    const v = await app.inject({
      method: 'GET',
      url: `/v1/invoices/${d.id}?expand=customer`,
      headers: as('viewer'),
    });
    assert.equal(v.statusCode, 200);
    assert.equal(v.json().customer.pii_masked, true);
    assert.equal(v.json().customer.name, 'B*** G***');
    const other = await app.inject({
      method: 'GET',
      url: `/v1/invoices/${d.id}`,
      headers: as('owner', orgB),
    });
    assert.equal(other.statusCode, 404);
    const fin = await post(`/v1/invoices/${d.id}/finalize`, 'owner', undefined, orgB);
    assert.equal(fin.statusCode, 404);
    const write = await post('/v1/invoices', 'viewer', {
      customer: customerA,
      lines: [{ description: 'x', quantity: '1', unit_amount: 1 }],
    });
    assert.equal(write.statusCode, 403);
  });

  it('filters and paginates lists', async () => {
    const open = await app.inject({
      method: 'GET',
      url: '/v1/invoices?status=open&limit=2',
      headers: as('owner'),
    });
    assert.equal(open.statusCode, 200);
    assert.equal(open.json().data.length, 2);
    assert.equal(open.json().has_more, true);
    for (const i of open.json().data) assert.equal(i.status, 'open');
    const byCustomer = await app.inject({
      method: 'GET',
      url: `/v1/invoices?customer=${repCustomer}`,
      headers: as('owner'),
    });
    for (const i of byCustomer.json().data) assert.equal(i.customer, repCustomer);
    const dated = await app.inject({
      method: 'GET',
      url: `/v1/invoices?issued_from=${year}-03-01&issued_to=${year}-03-01`,
      headers: as('owner'),
    });
    assert.ok(dated.json().data.length >= 1);
    for (const i of dated.json().data) assert.equal(i.issue_date, `${year}-03-01`);
  });

  it('is idempotent under a retried POST', async () => {
    const body = { customer: customerA, lines: [{ description: 'Once', quantity: '1', unit_amount: 5 }] };
    const h = { ...as('owner'), 'idempotency-key': 'inv-create-1' };
    const a = await app.inject({ method: 'POST', url: '/v1/invoices', headers: h, payload: body });
    const b = await app.inject({ method: 'POST', url: '/v1/invoices', headers: h, payload: body });
    assert.equal(a.json().id, b.json().id);
  });
});
