import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createOrg } from '../../src/app/orgs.js';
import type { Role } from '../../src/domain/permissions.js';
import type { BuiltApp } from '../../src/http/app.js';
import { actorHeader, addMember, buildBillingApp } from '../helpers/billing.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let t: TestDatabase;
let app: BuiltApp;

const ROLES: Role[] = ['owner', 'admin', 'finance_manager', 'accountant', 'sales_rep', 'viewer', 'auditor'];

/** A fresh org (so totals are exactly what each test creates) with one member per role. */
async function freshOrg(base = 'EUR') {
  const org = (await createOrg(t.db, { name: `Reports ${base}`, baseCurrency: base })).id;
  const users = {} as Record<Role, string>;
  for (const role of ROLES) users[role] = await addMember(t, org, role, role);
  const as = (role: Role) => actorHeader(org, role, users[role]);
  const post = async (url: string, payload?: object, role: Role = 'owner') => {
    const r = await app.inject({ method: 'POST', url, headers: as(role), ...(payload ? { payload } : {}) });
    assert.ok(r.statusCode < 300, `${url}: ${r.statusCode} ${r.body}`);
    return r.json();
  };
  const get = (url: string, role: Role = 'owner', headers: Record<string, string> = {}) =>
    app.inject({ method: 'GET', url, headers: { ...as(role), ...headers } });
  const customer = async (name: string, extra: object = {}) =>
    (await post('/v1/customers', { name, ...extra })).id as string;
  /** A finalised one-line invoice issued on `issue` and due on `due`. */
  const invoice = async (
    cust: string,
    unit: number,
    due: string,
    opts: { currency?: string; fx_rate?: string; issue?: string; po_number?: string } = {},
  ) => {
    const d = await post('/v1/invoices', {
      customer: cust,
      currency: opts.currency ?? base,
      lines: [{ description: 'Work', quantity: '1', unit_amount: unit }],
      due_date: due,
      ...(opts.po_number ? { po_number: opts.po_number } : {}),
    });
    const f = await post(`/v1/invoices/${d.id}/finalize`, {
      issue_date: opts.issue ?? '2026-01-01',
      ...(opts.fx_rate ? { fx_rate: opts.fx_rate } : {}),
    });
    return f as { id: string; total: number; number: string };
  };
  const pay = (cust: string, amt: number, received_on: string, inv?: string, currency = base) =>
    post('/v1/payments', {
      customer: cust,
      amount: amt,
      currency,
      method: 'bank_transfer',
      received_on,
      ...(inv ? { allocations: [{ invoice: inv, amount: amt }] } : {}),
    });
  return { org, users, as, post, get, customer, invoice, pay };
}

before(async () => {
  t = await createTestDatabase();
  app = await buildBillingApp(t);
});
after(async () => {
  await app.close();
  await t.drop();
});

const AS_OF = '2026-06-30';

describe('AR aging', () => {
  it('buckets by days past due across every boundary (0/1/30/31/60/61/90/91), per customer and in total', async () => {
    const o = await freshOrg();
    const a = await o.customer('Alice Archer');
    const b = await o.customer('Bob Baker');
    // days past due on 2026-06-30 → bucket; amounts are powers of two so every sum is unambiguous
    await o.invoice(a, 1, '2026-07-15'); // -15 → current
    await o.invoice(a, 2, '2026-06-30'); // 0 → current
    await o.invoice(a, 4, '2026-06-29'); // 1 → d1_30
    await o.invoice(a, 8, '2026-05-31'); // 30 → d1_30
    await o.invoice(b, 16, '2026-05-30'); // 31 → d31_60
    await o.invoice(b, 32, '2026-05-01'); // 60 → d31_60
    await o.invoice(b, 64, '2026-04-30'); // 61 → d61_90
    await o.invoice(b, 128, '2026-04-01'); // 90 → d61_90
    await o.invoice(b, 256, '2026-03-31'); // 91 → over_90
    await o.invoice(b, 512, '2026-12-31', { issue: '2026-07-01' }); // issued after as_of: not yet a receivable
    const r = await o.get(`/v1/reports/aging?as_of=${AS_OF}`, 'finance_manager');
    assert.equal(r.statusCode, 200, r.body);
    const v = r.json();
    assert.equal(v.as_of, AS_OF);
    assert.equal(v.currency, 'EUR');
    assert.deepEqual(v.buckets, { current: 3, d1_30: 12, d31_60: 48, d61_90: 192, over_90: 256 });
    assert.equal(v.total, 511);
    assert.equal(v.customer_count, 2);
    const byId = Object.fromEntries(v.customers.map((c: { customer: string }) => [c.customer, c]));
    assert.deepEqual(byId[a].buckets, { current: 3, d1_30: 12, d31_60: 0, d61_90: 0, over_90: 0 });
    assert.equal(byId[a].total, 15);
    assert.equal(byId[a].name, 'Alice Archer');
    assert.deepEqual(byId[b].buckets, { current: 0, d1_30: 0, d31_60: 48, d61_90: 192, over_90: 256 });
    assert.equal(v.unconverted.count, 0);
    // filtered to one customer
    const one = (await o.get(`/v1/reports/aging?as_of=${AS_OF}&customer=${a}`)).json();
    assert.equal(one.total, 15);
    assert.equal(one.customers.length, 1);
  });

  it('as of a past date: later payments and credit are excluded, earlier ones count; voids and write-offs only from their date', async () => {
    const o = await freshOrg();
    const c = await o.customer('Carol Cole');
    const i1 = await o.invoice(c, 10_000, '2026-05-31'); // 30 days past due on AS_OF
    const i2 = await o.invoice(c, 5_000, '2026-06-30');
    await o.pay(c, 3_000, '2026-06-15', i1.id); // before as_of: counts
    await o.pay(c, 2_000, '2026-07-10', i1.id); // after as_of: excluded
    await o.pay(c, 5_000, '2026-08-01', i2.id); // pays i2 in full later: i2 still open on AS_OF
    const i3 = await o.invoice(c, 700, '2026-06-01');
    await o.post(`/v1/invoices/${i3.id}/void`); // voided today (after AS_OF): still open on AS_OF
    const past = (await o.get(`/v1/reports/aging?as_of=${AS_OF}`)).json();
    assert.deepEqual(past.buckets, { current: 5_000, d1_30: 7_000 + 700, d31_60: 0, d61_90: 0, over_90: 0 });
    assert.equal(past.total, 12_700);
    // on 2026-07-20: i1 has 5,000 left (50 days past due), i3 700 (49 days), i2 5,000 (20 days)
    const later = (await o.get('/v1/reports/aging?as_of=2026-07-20')).json();
    assert.deepEqual(later.buckets, { current: 0, d1_30: 5_000, d31_60: 5_000 + 700, d61_90: 0, over_90: 0 });
    // today: i2 paid, i3 void; only i1's 5,000 is left
    const today = (await o.get('/v1/reports/aging')).json();
    assert.equal(today.total, 5_000);
    // the ledger agrees with today's aging
    const ledger = (await o.get('/v1/ledger/verify')).json();
    const ar = ledger.trial_balance.find((x: { account: string }) => x.account === 'accounts_receivable');
    assert.equal(Number(ar.balance), today.total);
  });

  it('converts other currencies with each invoice’s finalisation rate, one rounding per invoice, and names invoices without a rate', async () => {
    const o = await freshOrg();
    const c = await o.customer('Dana Diaz');
    await o.invoice(c, 10_000, '2026-06-30', { currency: 'USD', fx_rate: '0.915' }); // 9,150.00 exactly
    await o.invoice(c, 333, '2026-06-30', { currency: 'USD', fx_rate: '0.9155' }); // 304.8615 → 305
    await o.invoice(c, 333, '2026-06-30', { currency: 'USD', fx_rate: '0.9155' }); // rounded per invoice: 305 again
    await o.invoice(c, 1_000, '2026-06-30', { currency: 'JPY', fx_rate: '0.0062' }); // ¥1,000 → €6.20 = 620
    await o.invoice(c, 500, '2026-06-30', { currency: 'BHD', fx_rate: '2.4' }); // 0.500 BHD → €1.20 = 120
    const missing = await o.invoice(c, 777, '2026-06-30', { currency: 'GBP' }); // no rate recorded
    const v = (await o.get(`/v1/reports/aging?as_of=${AS_OF}`)).json();
    assert.equal(v.buckets.current, 10_000 * 0 + 9_150 + 305 + 305 + 620 + 120);
    assert.equal(v.total, 10_500);
    assert.deepEqual(v.unconverted, {
      count: 1,
      invoices: [missing.id],
      by_currency: [{ currency: 'GBP', amount: 777 }],
    });
  });

  it('rounds each converted invoice once in its own rounding mode (half-even org: 2.5 → 2, 3.5 → 4; half-up: 3 and 4)', async () => {
    for (const [mode, want] of [
      ['half_even', 2 + 4],
      ['half_up', 3 + 4],
    ] as const) {
      const o = await freshOrg();
      await sql`INSERT INTO org_settings (org_id, key, value) VALUES (${o.org}, 'invoice.rounding', ${JSON.stringify(mode)}::jsonb)`.execute(
        t.db,
      );
      const c = await o.customer('Rounding Rita');
      await o.invoice(c, 5, '2026-06-30', { currency: 'USD', fx_rate: '0.5' }); // 2.5 cents
      await o.invoice(c, 7, '2026-06-30', { currency: 'USD', fx_rate: '0.5' }); // 3.5 cents
      const v = (await o.get(`/v1/reports/aging?as_of=${AS_OF}`)).json();
      assert.equal(v.total, want, mode);
    }
  });

  it('pages the customers with limit and starting_after; totals cover every customer', async () => {
    const o = await freshOrg();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const c = await o.customer(`Customer ${i}`);
      ids.push(c);
      await o.invoice(c, 100 * (i + 1), '2026-06-01');
    }
    ids.sort();
    const p1 = (await o.get(`/v1/reports/aging?as_of=${AS_OF}&limit=2`)).json();
    assert.equal(p1.total, 1_500);
    assert.deepEqual(
      p1.customers.map((c: { customer: string }) => c.customer),
      ids.slice(0, 2),
    );
    assert.equal(p1.has_more, true);
    const p3 = (await o.get(`/v1/reports/aging?as_of=${AS_OF}&limit=2&starting_after=${ids[3]}`)).json();
    assert.deepEqual(
      p3.customers.map((c: { customer: string }) => c.customer),
      ids.slice(4),
    );
    assert.equal(p3.has_more, false);
  });

  it('refuses bad input with 422: impossible dates, bad ids, limits out of range', async () => {
    const o = await freshOrg();
    for (const q of [
      'as_of=2026-02-30',
      'as_of=30-06-2026',
      'as_of=2026-06-30%27%3B--',
      'limit=0',
      'limit=101',
      'customer=1',
      'starting_after=x',
    ]) {
      const r = await o.get(`/v1/reports/aging?${q}`);
      assert.equal(r.statusCode, 422, `${q}: ${r.body}`);
      assert.ok(r.json().error.code);
    }
  });

  it('is denied to a sales rep (403, audited) and masks customer names for viewers and auditors', async () => {
    const o = await freshOrg();
    const c = await o.customer('Erin Evans');
    await o.invoice(c, 100, '2026-06-01');
    const denied = await o.get('/v1/reports/aging', 'sales_rep');
    assert.equal(denied.statusCode, 403);
    for (const role of ['viewer', 'auditor'] as Role[]) {
      const r = await o.get(`/v1/reports/aging?as_of=${AS_OF}`, role);
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.json().customers[0].name, 'E*** E***');
      assert.ok(!r.body.includes('Erin'));
    }
    const audit = await sql<{ action: string; outcome: string }>`
      SELECT action, outcome FROM audit_events WHERE org_id = ${o.org} ORDER BY occurred_at`.execute(t.db);
    const actions = audit.rows.map((x) => `${x.action}:${x.outcome}`);
    assert.ok(actions.includes('authz.denied:denied'));
    assert.ok(actions.includes('report.viewed:success'));
    // the unmasked read by an owner is itself recorded
    await o.get(`/v1/reports/aging?as_of=${AS_OF}`, 'owner');
    const pii = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM audit_events WHERE org_id = ${o.org} AND action = 'customer.pii_listed'`.execute(
      t.db,
    );
    assert.equal(pii.rows[0]?.n, 1);
  });

  it('never shows another org’s receivables', async () => {
    const o = await freshOrg();
    const other = await freshOrg();
    const c = await other.customer('Hidden Harry');
    await other.invoice(c, 999, '2026-06-01');
    const v = (await o.get(`/v1/reports/aging?as_of=${AS_OF}`)).json();
    assert.equal(v.total, 0);
    const filtered = (await o.get(`/v1/reports/aging?as_of=${AS_OF}&customer=${c}`)).json();
    assert.equal(filtered.total, 0);
    assert.deepEqual(filtered.customers, []);
  });

  it('as CSV: formula-looking names are escaped, amounts stay plain integers', async () => {
    const o = await freshOrg();
    const c = await o.customer('=HYPERLINK("http://evil.example","x")');
    await o.invoice(c, 1_234, '2026-06-01');
    for (const r of [
      await o.get(`/v1/reports/aging?as_of=${AS_OF}&format=csv`),
      await o.get(`/v1/reports/aging?as_of=${AS_OF}`, 'owner', { accept: 'text/csv' }),
    ]) {
      assert.equal(r.statusCode, 200, r.body);
      assert.match(String(r.headers['content-type']), /^text\/csv/);
      const lines = r.body.split('\r\n');
      assert.equal(lines[0], 'customer,name,current,d1_30,d31_60,d61_90,over_90,total');
      assert.equal(lines[1], 'TOTAL,EUR,0,1234,0,0,0,1234');
      assert.equal(lines[2], `${c},"'=HYPERLINK(""http://evil.example"",""x"")",0,1234,0,0,0,1234`);
    }
  });
});

describe('customer statement', () => {
  it('opening balance, chronological lines with running balance, closing balance; JSON and CSV agree', async () => {
    const o = await freshOrg();
    const c = await o.customer('Frank Fisher', { owner_user: undefined });
    const i0 = await o.invoice(c, 1_000, '2026-01-31', { issue: '2026-01-01' }); // before the period
    await o.pay(c, 400, '2026-01-20', i0.id); // before the period
    const i1 = await o.invoice(c, 2_000, '2026-03-31', { issue: '2026-03-01' });
    await o.post('/v1/payments', {
      customer: c,
      amount: 2_500,
      currency: 'EUR',
      method: 'bank_transfer',
      received_on: '2026-03-15',
      allocations: [{ invoice: i1.id, amount: 2_500 }],
      excess: 'credit', // 2,000 settles i1, 500 stays as customer credit
    });
    const cn = await o.post('/v1/credit_notes', { invoice: i0.id, amount: 100, reason: 'pricing_error' }); // today
    const r = await o.get(`/v1/customers/${c}/statement?from=2026-02-01&to=2026-12-31`, 'accountant');
    assert.equal(r.statusCode, 200, r.body);
    const s = r.json();
    assert.equal(s.currency, 'EUR');
    assert.equal(s.opening_balance, 600);
    assert.equal(s.name, 'Frank Fisher');
    const lines = s.lines.map((l: { type: string; debit: number; credit: number; balance: number }) => [
      l.type,
      l.debit,
      l.credit,
      l.balance,
    ]);
    assert.deepEqual(lines, [
      ['invoice', 2_000, 0, 2_600],
      ['payment', 0, 2_500, 100],
      ['credit_note', 0, 100, 0],
    ]);
    assert.equal(s.closing_balance, 0);
    assert.equal(s.lines[2].id, cn.id);
    // CSV: same lines between an opening and a closing line
    const csv = await o.get(
      `/v1/customers/${c}/statement?from=2026-02-01&to=2026-12-31&format=csv`,
      'accountant',
    );
    assert.equal(csv.statusCode, 200, csv.body);
    const rows = csv.body.trimEnd().split('\r\n');
    assert.equal(rows[0], 'date,type,id,number,invoice,debit,credit,applied,balance');
    assert.equal(rows[1], `2026-02-01,opening_balance,${c},,,,,,600`);
    assert.equal(rows.length, 6);
    assert.match(rows[2] ?? '', /^2026-03-01,invoice,inv_\w+,INV-[^,]+,,2000,0,0,2600$/);
    assert.equal(rows[5], `2026-12-31,closing_balance,${c},,,,,,0`);
  });

  it('a negative balance (customer credit) stays a readable negative number in CSV', async () => {
    const o = await freshOrg();
    const c = await o.customer('Gina Gray');
    await o.pay(c, 750, '2026-02-10');
    const csv = await o.get(`/v1/customers/${c}/statement?from=2026-01-01&to=2026-12-31`, 'owner', {
      accept: 'text/csv',
    });
    const rows = csv.body.trimEnd().split('\r\n');
    assert.match(rows[2] ?? '', /,payment,pay_\w+,,,0,750,0,-750$/);
    assert.equal(rows.at(-1), `2026-12-31,closing_balance,${c},,,,,,-750`);
  });

  it('sales reps see statements of their assigned customers only; other orgs are 404; bad periods are 422', async () => {
    const o = await freshOrg();
    const mine = await o.customer('Assigned Anna', { owner_user: o.users.sales_rep });
    const notMine = await o.customer('Unassigned Uma');
    const q = 'from=2026-01-01&to=2026-12-31';
    assert.equal((await o.get(`/v1/customers/${mine}/statement?${q}`, 'sales_rep')).statusCode, 200);
    assert.equal((await o.get(`/v1/customers/${notMine}/statement?${q}`, 'sales_rep')).statusCode, 404);
    assert.equal(
      (await o.get(`/v1/customers/${notMine}/statement?${q}&format=csv`, 'sales_rep')).statusCode,
      404,
    );
    const other = await freshOrg();
    const theirs = await other.customer('Other Otto');
    assert.equal((await o.get(`/v1/customers/${theirs}/statement?${q}`)).statusCode, 404);
    assert.equal((await o.get(`/v1/customers/${theirs}/statement?${q}&format=csv`)).statusCode, 404);
    const viewer = (await o.get(`/v1/customers/${mine}/statement?${q}`, 'viewer')).json();
    assert.equal(viewer.name, 'A*** A***');
    for (const bad of ['from=2026-12-31&to=2026-01-01', 'from=2026-13-01&to=2026-12-31', 'from=2026-01-01']) {
      const r = await o.get(`/v1/customers/${mine}/statement?${bad}`);
      assert.equal(r.statusCode, 422, `${bad}: ${r.body}`);
    }
  });
});

describe('customer statement: audit of the PII it shows', () => {
  it('an unmasked JSON statement is a PII read of that customer; a masked one or the CSV (no name) is not', async () => {
    const o = await freshOrg();
    const c = await o.customer('Paula Pryce');
    await o.pay(c, 300, '2026-02-10');
    const q = 'from=2026-01-01&to=2026-12-31';
    const reads = async (rid: string) =>
      (
        await sql<{ action: string; target_id: string | null; d: string }>`
          SELECT action, target_id, details::text AS d FROM audit_events
           WHERE org_id = ${o.org} AND request_id = ${rid} AND action = 'customer.pii_read'`.execute(t.db)
      ).rows;
    const owner = await o.get(`/v1/customers/${c}/statement?${q}`, 'owner');
    assert.equal(owner.statusCode, 200, owner.body);
    assert.equal(owner.json().name, 'Paula Pryce');
    const ev = await reads(String(owner.headers['x-request-id']));
    assert.equal(ev.length, 1);
    assert.equal(ev[0]?.target_id, c);
    assert.ok(!ev[0]?.d.includes('Paula'), 'the name is not in the event');
    const viewer = await o.get(`/v1/customers/${c}/statement?${q}`, 'viewer');
    assert.equal(viewer.json().name, 'P*** P***');
    assert.deepEqual(await reads(String(viewer.headers['x-request-id'])), []);
    const csv = await o.get(`/v1/customers/${c}/statement?${q}&format=csv`, 'owner');
    assert.equal(csv.statusCode, 200, csv.body);
    assert.ok(!csv.body.includes('Paula'));
    assert.deepEqual(await reads(String(csv.headers['x-request-id'])), []);
  });
});

describe('period reports', () => {
  it('revenue per month and currency, tax by category and rate net of credit notes, DSO, outstanding and top customers', async () => {
    const o = await freshOrg();
    const rate = await o.post('/v1/tax_rates', {
      name: 'VAT 20',
      percentage: '20',
      inclusive: false,
      category: 'S',
    });
    const zero = await o.post('/v1/tax_rates', {
      name: 'Exempt',
      percentage: '0',
      inclusive: false,
      category: 'E',
      exemption_reason: 'Medical services',
    });
    const a = await o.customer('Ivy Ingram');
    const b = await o.customer('Jack Jones');
    const mk = async (cust: string, unit: number, tax: string, issue: string, due: string) => {
      const d = await o.post('/v1/invoices', {
        customer: cust,
        currency: 'EUR',
        lines: [{ description: 'Work', quantity: '1', unit_amount: unit, tax_rates: [tax] }],
        due_date: due,
      });
      return o.post(`/v1/invoices/${d.id}/finalize`, { issue_date: issue });
    };
    const j1 = await mk(a, 10_000, rate.id, '2026-01-10', '2026-02-09'); // 12,000
    await mk(b, 5_000, zero.id, '2026-01-20', '2026-02-19'); // 5,000
    await mk(a, 1_000, rate.id, '2026-02-05', '2026-03-07'); // 1,200
    await o.pay(a, 12_000, '2026-02-01', j1.id);
    const cn = await o.post('/v1/credit_notes', { invoice: j1.id, amount: 1_200, reason: 'pricing_error' });
    assert.equal(cn.total, 1_200);
    const today = new Date().toISOString().slice(0, 10);

    const rev = (
      await o.get(`/v1/reports/revenue?from=2026-01-01&to=2026-02-28&group=month`, 'auditor')
    ).json();
    assert.deepEqual(rev.rows, [
      { period: '2026-01-01', currency: 'EUR', invoiced: 17_000, credited: 0, collected: 0, refunded: 0 },
      { period: '2026-02-01', currency: 'EUR', invoiced: 1_200, credited: 0, collected: 12_000, refunded: 0 },
    ]);
    const revYear = (await o.get(`/v1/reports/revenue?from=2026-01-01&to=${today}&group=year`)).json();
    assert.deepEqual(revYear.totals, [
      {
        period: '2026-01-01',
        invoiced: 18_200,
        credited: 1_200,
        net_invoiced: 17_000,
        collected: 12_000,
        refunded: 0,
      },
    ]);

    const tax = (await o.get(`/v1/reports/tax?from=2026-01-01&to=${today}`)).json();
    const rows = tax.rows.map((x: Record<string, unknown>) => [
      x.category,
      x.percentage,
      x.net,
      x.tax,
      x.credited_tax,
    ]);
    assert.deepEqual(rows, [
      ['E', '0', 5_000, 0, 0],
      ['S', '20', 10_000, 2_000, 200],
    ]);

    // DSO over January: receivables at 2026-01-31 = 17,000; credit sales 17,000; 31 days → 31.00
    const dso = (await o.get('/v1/reports/dso?from=2026-01-01&to=2026-01-31')).json();
    assert.equal(dso.receivables, 17_000);
    assert.equal(dso.credit_sales, 17_000);
    assert.equal(dso.dso, '31.00');

    const out = (await o.get('/v1/reports/outstanding')).json();
    // j1 paid (credit note went to customer credit), 5,000 + 1,200 left, both overdue today
    assert.equal(out.outstanding, 6_200);
    assert.equal(out.overdue, 6_200);
    assert.equal(out.invoices, 2);

    const top = (
      await o.get(`/v1/reports/top_customers?from=2026-01-01&to=${today}&limit=1`, 'viewer')
    ).json();
    assert.equal(top.customers.length, 1);
    assert.equal(top.customers[0].customer, a);
    assert.equal(top.customers[0].invoiced, 13_200);
    assert.equal(top.customers[0].name, 'I*** I***');

    const csv = await o.get(`/v1/reports/tax?from=2026-01-01&to=${today}&format=csv`);
    assert.equal(
      csv.body.split('\r\n')[0],
      'currency,category,percentage,invoiced_net,invoiced_tax,credited_net,credited_tax,net,tax,net_EUR,tax_EUR',
    );
  });

  it('refuses from after to, bad groups and impossible dates with 422; sales reps with 403', async () => {
    const o = await freshOrg();
    for (const url of [
      '/v1/reports/revenue?from=2026-02-01&to=2026-01-01',
      '/v1/reports/revenue?from=2026-01-01&to=2026-02-01&group=week',
      '/v1/reports/tax?from=2026-01-01&to=2026-02-30',
      '/v1/reports/dso?from=2026-03-01&to=2026-01-01',
      '/v1/reports/top_customers?from=2026-01-01&to=2026-02-01&limit=1000',
      '/v1/reports/dso?from=2026-01-01',
    ]) {
      const r = await o.get(url);
      assert.equal(r.statusCode, 422, `${url}: ${r.body}`);
    }
    for (const url of [
      '/v1/reports/revenue?from=2026-01-01&to=2026-02-01',
      '/v1/reports/tax?from=2026-01-01&to=2026-02-01',
      '/v1/reports/dso?from=2026-01-01&to=2026-02-01',
      '/v1/reports/outstanding',
      '/v1/reports/top_customers?from=2026-01-01&to=2026-02-01',
    ]) {
      assert.equal((await o.get(url, 'sales_rep')).statusCode, 403, url);
    }
  });
});

describe('invoice export', () => {
  it('streams every finalised invoice as CSV with escaped text cells, needs exports:create, and is audited', async () => {
    const o = await freshOrg();
    const c = await o.customer('Kim Kelly');
    const inv = await o.invoice(c, 4_200, '2026-06-01', { po_number: '@SUM(A1:A9)' });
    await o.invoice(c, 100, '2026-06-01', { po_number: '-2+3' });
    const r = await o.get('/v1/exports/invoices.csv', 'finance_manager');
    assert.equal(r.statusCode, 200, r.body);
    assert.match(String(r.headers['content-disposition']), /attachment; filename="invoices.csv"/);
    const lines = r.body.trimEnd().split('\r\n');
    assert.equal(lines.length, 3);
    const row = lines.find((l) => l.startsWith(inv.id)) ?? '';
    assert.ok(row.includes(",'@SUM(A1:A9),"), row);
    assert.ok(row.includes(',4200,0,4200,0,0,4200,'), row);
    assert.ok(lines.some((l) => l.includes(",'-2+3,")));
    assert.ok(!r.body.includes('Kim'));
    for (const role of ['accountant', 'viewer', 'auditor', 'sales_rep'] as Role[])
      assert.equal((await o.get('/v1/exports/invoices.csv', role)).statusCode, 403, role);
    const ev = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM audit_events WHERE org_id = ${o.org} AND action = 'export.created'`.execute(
      t.db,
    );
    assert.equal(ev.rows[0]?.n, 1);
  });
});
