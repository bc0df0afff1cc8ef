// POST /v1/invoices with `finalize: true`: creates and finalises in one request and one
// transaction. It must leave exactly what the two-request flow leaves (same totals, snapshots,
// ledger entry and audit events), need both permissions, and never burn or skip a number.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { inOrg } from '../../src/adapters/db/index.js';
import { createOrg } from '../../src/app/orgs.js';
import { newId } from '../../src/domain/ids.js';
import type { Role } from '../../src/domain/permissions.js';
import type { BuiltApp } from '../../src/http/app.js';
import { actorHeader, addMember, buildBillingApp, standardRateRow } from '../helpers/billing.js';
import { testCipher } from '../helpers/crypto.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let t: TestDatabase;
let app: BuiltApp;
// the app's field cipher, to read what it stored
const cipher = testCipher();
let orgA: string;
let orgB: string;
const users: Record<string, string> = {};
let vat20: string;
let customerA: string;
let repCustomer: string;
let customerB: string;
const year = new Date().toISOString().slice(0, 4);

const as = (role: Role, org = orgA) => actorHeader(org, role, users[`${org}:${role}`] ?? 'usr_none');

async function post(url: string, role: Role, payload?: unknown, org = orgA) {
  return app.inject({
    method: 'POST',
    url,
    headers: as(role, org),
    ...(payload === undefined ? {} : { payload: payload as object }),
  });
}

const lines = () => [
  { description: 'Consulting', quantity: '2', unit_amount: 1999, tax_rates: [vat20] },
  {
    description: 'Travel',
    quantity: '1.5',
    unit_amount: 1001,
    tax_rates: [vat20],
    discount_percentage: '10',
  },
];

async function countInvoices(org: string, customer?: string): Promise<number> {
  const r = await sql<{ n: string }>`SELECT count(*)::text AS n FROM invoices
    WHERE org_id = ${org} AND (${customer ?? null}::text IS NULL OR customer_id = ${customer ?? null})`.execute(
    t.db,
  );
  return Number(r.rows[0]?.n);
}

async function auditOf(invoice: string) {
  const r = await sql<{
    action: string;
    outcome: string;
    actor_id: string;
    details: Record<string, unknown>;
  }>`
    SELECT action, outcome, actor_id, details FROM audit_events WHERE target_id = ${invoice}
    ORDER BY occurred_at, action`.execute(t.db);
  return r.rows;
}

async function journalOf(invoice: string) {
  const r = await sql<{ kind: string; account: string; debit: string; credit: string; customer_id: string }>`
    SELECT e.kind, l.account, l.debit::text, l.credit::text, l.customer_id
    FROM journal_entries e JOIN journal_lines l ON l.org_id = e.org_id AND l.entry_id = e.id
    WHERE e.reference = ${invoice} ORDER BY l.line_no`.execute(t.db);
  return r.rows;
}

before(async () => {
  t = await createTestDatabase();
  orgA = (await createOrg(t.db, { name: 'Seller A', baseCurrency: 'EUR' })).id;
  orgB = (await createOrg(t.db, { name: 'Seller B', baseCurrency: 'EUR' })).id;
  for (const role of ['owner', 'accountant', 'viewer', 'sales_rep'] as const)
    users[`${orgA}:${role}`] = await addMember(t, orgA, role, role);
  users[`${orgB}:owner`] = await addMember(t, orgB, 'owner', 'bowner');
  app = await buildBillingApp(t, cipher);
  vat20 = newId('tax_rate');
  await inOrg(t.db, orgA, (tx) =>
    tx
      .insertInto('tax_rates')
      .values(standardRateRow(orgA, vat20, 'VAT 20%', '20'))
      .execute(),
  );
  const customer = async (org: string, role: Role, body: Record<string, unknown>) => {
    const r = await post('/v1/customers', role, body, org);
    assert.equal(r.statusCode, 200, r.body);
    return r.json().id as string;
  };
  customerA = await customer(orgA, 'owner', {
    name: 'Buyer GmbH',
    email: 'ap@buyer.example',
    address: { line1: 'Main 1', city: 'Vienna', country: 'AT' },
    tax_id: 'ATU12345678',
    payment_terms_days: 30,
  });
  repCustomer = await customer(orgA, 'sales_rep', { name: 'Rep Client' });
  customerB = await customer(orgB, 'owner', { name: 'Other Org Client' });
});
after(async () => {
  await app.close();
  await t.drop();
});

describe('POST /v1/invoices with finalize: true', () => {
  it('creates the invoice open and numbered, exactly as create + finalize would', async () => {
    // The two-request flow first, then the one-request flow with the same input.
    const draft = await post('/v1/invoices', 'accountant', { customer: customerA, lines: lines() });
    assert.equal(draft.statusCode, 200, draft.body);
    const two = await post(`/v1/invoices/${draft.json().id}/finalize`, 'accountant');
    assert.equal(two.statusCode, 200, two.body);
    const one = await post('/v1/invoices', 'accountant', {
      customer: customerA,
      lines: lines(),
      finalize: true,
    });
    assert.equal(one.statusCode, 200, one.body);
    const a = two.json();
    const b = one.json();
    assert.equal(b.status, 'open');
    assert.match(b.number, new RegExp(`^INV-${year}-\\d{6}$`));
    assert.equal(Number(b.number.slice(-6)), Number(a.number.slice(-6)) + 1, 'the next number, no gap');
    const differ = new Set(['id', 'number', 'created_at', 'updated_at', 'finalized_at']);
    for (const k of Object.keys(a)) if (!differ.has(k)) assert.deepEqual(b[k], a[k], `field ${k}`);

    // Stored: the same frozen seller and totals; the buyer encrypted under the org key.
    const rows = await sql<{
      id: string;
      seller_snapshot: unknown;
      tax_breakdown: unknown;
      total: bigint;
      buyer_snapshot_enc: string;
      status: string;
    }>`SELECT id, seller_snapshot, tax_breakdown, total, buyer_snapshot_enc, status FROM invoices
       WHERE id IN (${a.id}, ${b.id})`.execute(t.db);
    const [ra, rb] = [a.id, b.id].map((id) => rows.rows.find((r) => r.id === id));
    assert.deepEqual(rb?.seller_snapshot, ra?.seller_snapshot);
    assert.deepEqual(rb?.tax_breakdown, ra?.tax_breakdown);
    assert.equal(rb?.total, ra?.total);
    assert.match(rb?.buyer_snapshot_enc ?? '', /^bv1:/);
    assert.doesNotMatch(rb?.buyer_snapshot_enc ?? '', /Buyer|Vienna|ATU/);

    // The same ledger entry (amounts and accounts) and the same two audit events.
    const [ja, jb] = [await journalOf(a.id), await journalOf(b.id)];
    assert.ok(jb.length >= 2);
    assert.deepEqual(jb, ja);
    const [ea, eb] = [await auditOf(a.id), await auditOf(b.id)];
    assert.deepEqual(
      eb.map((e) => e.action),
      ['invoice.created', 'invoice.finalized'],
    );
    assert.deepEqual(eb, ea);

    // The same stored lines; the one-request invoice was written open and numbered in one
    // statement, and its lines are as immutable as any finalised invoice's.
    const linesOf = async (id: string) =>
      (
        await sql<{ lines: Record<string, unknown>[] }>`SELECT lines FROM invoices WHERE id = ${id}`.execute(
          t.db,
        )
      ).rows[0]?.lines ?? [];
    const [la, lb] = [await linesOf(a.id), await linesOf(b.id)];
    assert.equal(lb.length, lines().length);
    assert.deepEqual(lb, la);
    await assert.rejects(
      inOrg(t.db, orgA, (tx) =>
        sql`UPDATE invoices SET lines = jsonb_set(lines::jsonb, '{0,unit_amount}', '"1"')::json WHERE id = ${b.id}`.execute(
          tx,
        ),
      ),
      /finalized and cannot be changed/,
    );
    await assert.rejects(
      inOrg(t.db, orgA, (tx) =>
        sql`UPDATE invoices SET lines = (lines::jsonb || jsonb_build_array(lines -> 0))::json WHERE id = ${b.id}`.execute(
          tx,
        ),
      ),
      /finalized and cannot be changed/,
    );
    await assert.rejects(
      inOrg(t.db, orgA, (tx) => sql`UPDATE invoices SET total = 1 WHERE id = ${b.id}`.execute(tx)),
      /finalized and cannot be changed/,
    );

    const ledger = await app.inject({ method: 'GET', url: '/v1/ledger/verify', headers: as('owner') });
    assert.equal(ledger.json().ok, true, JSON.stringify(ledger.json().problems));
  });

  it('finalize: false or left out creates a draft as before', async () => {
    const r = await post('/v1/invoices', 'owner', { customer: customerA, lines: lines(), finalize: false });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().status, 'draft');
    assert.equal(r.json().number, null);
    assert.deepEqual(
      (await auditOf(r.json().id)).map((e) => e.action),
      ['invoice.created'],
    );
  });

  it('needs invoices:finalize as well: a sales rep gets 403, an audited denial, and nothing is written', async () => {
    const before = await countInvoices(orgA, repCustomer);
    const r = await post('/v1/invoices', 'sales_rep', {
      customer: repCustomer,
      lines: lines(),
      finalize: true,
    });
    assert.equal(r.statusCode, 403, r.body);
    assert.equal(r.json().error.code, 'forbidden');
    assert.equal(await countInvoices(orgA, repCustomer), before);
    const denied = await sql<{ details: { permission: string } }>`SELECT details FROM audit_events
      WHERE org_id = ${orgA} AND actor_id = ${users[`${orgA}:sales_rep`]} AND action = 'authz.denied'`.execute(
      t.db,
    );
    assert.ok(denied.rows.some((d) => d.details.permission === 'invoices:finalize'));
    // The same sales rep may still create the draft.
    const draft = await post('/v1/invoices', 'sales_rep', { customer: repCustomer, lines: lines() });
    assert.equal(draft.statusCode, 200, draft.body);
    // A viewer cannot write at all.
    const viewer = await post('/v1/invoices', 'viewer', {
      customer: customerA,
      lines: lines(),
      finalize: true,
    });
    assert.equal(viewer.statusCode, 403);
  });

  it("refuses another org's customer (404) and hostile input (422) without writing or burning a number", async () => {
    const before = await countInvoices(orgA);
    const other = await post('/v1/invoices', 'owner', {
      customer: customerB,
      lines: lines(),
      finalize: true,
    });
    assert.equal(other.statusCode, 404, other.body);
    for (const body of [
      { customer: customerA, lines: lines(), finalize: 'yes' },
      { customer: customerA, lines: lines(), finalize: 1 },
      { customer: customerA, lines: [], finalize: true },
      {
        customer: customerA,
        lines: [{ description: "x'); DROP TABLE invoices;--", quantity: '-1' }],
        finalize: true,
      },
      { customer: customerA, lines: [{ description: 'x', quantity: '1', unit_amount: -5 }], finalize: true },
      { customer: customerA, lines: [{ description: 'x', quantity: '1' }], finalize: true },
    ]) {
      const r = await post('/v1/invoices', 'owner', body);
      assert.equal(r.statusCode, 422, `${JSON.stringify(body)} → ${r.body}`);
    }
    assert.equal(await countInvoices(orgA), before);
    // The org B owner's own finalised invoice starts its series at 1: nothing above took a number there.
    const b = await post(
      '/v1/invoices',
      'owner',
      { customer: customerB, lines: [{ description: 'x', quantity: '1', unit_amount: 100 }], finalize: true },
      orgB,
    );
    assert.equal(b.statusCode, 200, b.body);
    assert.equal(b.json().number, `INV-${year}-000001`);
  });

  it('mixed with the two-request flow, 40 parallel finalisations take numbers 1..40 with no gap', async () => {
    const org = (await createOrg(t.db, { name: 'Race', baseCurrency: 'EUR' })).id;
    const owner = await addMember(t, org, 'owner', 'race');
    const h = actorHeader(org, 'owner', owner);
    const c = await app.inject({ method: 'POST', url: '/v1/customers', headers: h, payload: { name: 'R' } });
    const body = (i: number) => ({
      customer: c.json().id,
      lines: [{ description: 'x', quantity: '1', unit_amount: 100 + i }],
    });
    const drafts: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await app.inject({ method: 'POST', url: '/v1/invoices', headers: h, payload: body(i) });
      drafts.push(r.json().id);
    }
    const replies = await Promise.all([
      ...drafts.map((id) =>
        app.inject({ method: 'POST', url: `/v1/invoices/${id}/finalize`, headers: h, payload: {} }),
      ),
      ...Array.from({ length: 20 }, (_, i) =>
        app.inject({
          method: 'POST',
          url: '/v1/invoices',
          headers: h,
          payload: { ...body(i), finalize: true },
        }),
      ),
    ]);
    for (const r of replies) assert.equal(r.statusCode, 200, r.body);
    const numbers = replies.map((r) => Number(r.json().number.slice(-6))).sort((x, y) => x - y);
    assert.deepEqual(
      numbers,
      Array.from({ length: 40 }, (_, i) => i + 1),
    );
  });

  it('the org key retired while the server caches it: the finalisation is retried under a fresh key, burns no number, and its buyer snapshot reads', async () => {
    const org = (await createOrg(t.db, { name: 'Rekeyed', baseCurrency: 'EUR' })).id;
    const owner = await addMember(t, org, 'owner', 'rekeyed');
    const h = actorHeader(org, 'owner', owner);
    const c = await app.inject({
      method: 'POST',
      url: '/v1/customers',
      headers: h,
      payload: { name: 'Buyer GmbH', email: 'buyer@example.com' },
    });
    const create = () =>
      app.inject({
        method: 'POST',
        url: '/v1/invoices',
        headers: h,
        payload: {
          customer: c.json().id,
          lines: [{ description: 'x', quantity: '1', unit_amount: 100 }],
          finalize: true,
        },
      });
    const keyOf = async (id: string) =>
      (
        await sql<{ k: string }>`SELECT split_part(buyer_snapshot_enc, ':', 2) AS k FROM invoices
          WHERE org_id = ${org} AND id = ${id}`.execute(t.db)
      ).rows[0]?.k;
    const first = await create();
    const second = await create(); // the key is cached now: its check rides on the statement
    assert.equal(second.statusCode, 200, second.body);
    const old = await keyOf(second.json().id);
    // retired behind the server's back (as `keys rotate` in another process would)
    await sql`UPDATE org_data_keys SET status = 'decrypt_only', retired_at = now()
      WHERE org_id = ${org} AND status = 'active' AND purpose = 'data' AND subject_type = 'org'`.execute(
      t.db,
    );
    const third = await create();
    assert.equal(third.statusCode, 200, third.body);
    assert.notEqual(await keyOf(third.json().id), old);
    assert.deepEqual(
      [first, second, third].map((r) => r.json().number),
      [1, 2, 3].map((n) => `INV-${year}-${String(n).padStart(6, '0')}`),
    );
    const id = third.json().id as string;
    const snapshot = await inOrg(t.db, org, async (tx) => {
      const row = await tx
        .selectFrom('invoices')
        .select('buyer_snapshot_enc')
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      return cipher.decrypt(
        tx,
        { orgId: org },
        { table: 'invoices', column: 'buyer_snapshot_enc', rowId: id },
        row.buyer_snapshot_enc as string,
      );
    });
    assert.equal(JSON.parse(snapshot).name, 'Buyer GmbH');
  });

  it('replays under a retried POST with the same Idempotency-Key: one invoice, one number', async () => {
    const h = { ...as('owner'), 'idempotency-key': 'inv-create-finalized-1' };
    const payload = { customer: customerA, lines: lines(), finalize: true };
    const a = await app.inject({ method: 'POST', url: '/v1/invoices', headers: h, payload });
    const b = await app.inject({ method: 'POST', url: '/v1/invoices', headers: h, payload });
    assert.equal(a.statusCode, 200, a.body);
    assert.equal(b.json().id, a.json().id);
    assert.equal(b.json().number, a.json().number);
    const n = await sql<{
      n: string;
    }>`SELECT count(*)::text AS n FROM invoices WHERE org_id = ${orgA} AND number = ${a.json().number}`.execute(
      t.db,
    );
    assert.equal(n.rows[0]?.n, '1');
  });
});
