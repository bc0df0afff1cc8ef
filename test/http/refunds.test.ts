import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { inOrg } from '../../src/adapters/db/index.js';
import { createOrg } from '../../src/app/orgs.js';
import type { Role } from '../../src/domain/permissions.js';
import type { BuiltApp } from '../../src/http/app.js';
import { actorHeader, addMember, buildBillingApp } from '../helpers/billing.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let t: TestDatabase;
let app: BuiltApp;
let org: string;
let orgB: string;
const users: Record<string, string> = {};

const header = (o: string, role: Role, key: string) => actorHeader(o, role, users[key] ?? 'usr_none');
const as = (role: Role, o = org) => header(o, role, `${o}:${role}`);
const post = (url: string, role: Role, payload?: object, o = org) =>
  app.inject({ method: 'POST', url, headers: as(role, o), ...(payload ? { payload } : {}) });
const postAs = (url: string, who: string, role: Role, payload?: object) =>
  app.inject({ method: 'POST', url, headers: actorHeader(org, role, who), ...(payload ? { payload } : {}) });
const get = (url: string, role: Role = 'owner', o = org) =>
  app.inject({ method: 'GET', url, headers: as(role, o) });

async function newCustomer(): Promise<string> {
  const r = await post('/v1/customers', 'owner', { name: 'Refundee', currency: 'EUR' });
  assert.equal(r.statusCode, 200, r.body);
  return r.json().id;
}

async function payment(customer: string, amount: number) {
  const r = await post('/v1/payments', 'owner', {
    customer,
    amount,
    currency: 'EUR',
    method: 'bank_transfer',
  });
  assert.equal(r.statusCode, 200, r.body);
  return r.json() as { id: string; amount_unapplied: number };
}

const creditBalance = async (customer: string) =>
  (await get(`/v1/customers/${customer}`)).json().credit_balance;

async function ledgerOk() {
  const r = await get('/v1/ledger/verify');
  assert.equal(r.json().ok, true, JSON.stringify(r.json().problems));
}

async function setThreshold(value: unknown) {
  await inOrg(t.db, org, (tx) =>
    tx
      .insertInto('org_settings')
      .values({ org_id: org, key: 'refunds.approval_threshold', value: JSON.stringify(value) })
      .onConflict((oc) => oc.columns(['org_id', 'key']).doUpdateSet({ value: JSON.stringify(value) }))
      .execute(),
  );
}

before(async () => {
  t = await createTestDatabase();
  org = (await createOrg(t.db, { name: 'Refund Org', baseCurrency: 'EUR' })).id;
  orgB = (await createOrg(t.db, { name: 'Other', baseCurrency: 'EUR' })).id;
  for (const role of ['owner', 'accountant', 'finance_manager', 'sales_rep', 'viewer'] as const) {
    users[`${org}:${role}`] = await addMember(t, org, role, role);
  }
  users.fm2 = await addMember(t, org, 'finance_manager', 'fm2');
  users[`${orgB}:owner`] = await addMember(t, orgB, 'owner', 'b');
  app = await buildBillingApp(t);
});
after(async () => {
  await app.close();
  await t.drop();
});

describe('refunds', () => {
  it('refunds part of a payment’s unapplied money at once when below the threshold', async () => {
    const customer = await newCustomer();
    const pay = await payment(customer, 8_000);
    const r = await post('/v1/refunds', 'finance_manager', {
      payment: pay.id,
      amount: 3_000,
      reason: 'Overpaid',
    });
    assert.equal(r.statusCode, 200, r.body);
    const refund = r.json();
    assert.match(refund.id, /^ref_[0-9a-z]{32}$/);
    assert.equal(refund.status, 'posted');
    assert.equal(refund.reason, 'Overpaid');
    assert.ok(refund.posted_at);
    const p = (await get(`/v1/payments/${pay.id}`)).json();
    assert.equal(p.amount_unapplied, 5_000);
    assert.equal(p.amount_refunded, 3_000);
    assert.equal(await creditBalance(customer), 5_000);
    const more = await post('/v1/refunds', 'owner', { payment: pay.id, amount: 5_001, reason: 'x' });
    assert.equal(more.statusCode, 422);
    assert.equal(more.json().error.code, 'amount_exceeds_refundable');
    assert.equal(more.json().error.param, 'amount');
    assert.equal((await get(`/v1/refunds/${refund.id}`, 'viewer')).json().amount, 3_000);
    await ledgerOk();
  });

  it('money allocated to an invoice is refunded only after it is unapplied', async () => {
    const customer = await newCustomer();
    const d = await post('/v1/invoices', 'owner', {
      customer,
      lines: [{ description: 'x', quantity: '1', unit_amount: 4_000 }],
    });
    const inv = (await post(`/v1/invoices/${d.json().id}/finalize`, 'owner')).json();
    const pay = await payment(customer, 4_000);
    assert.equal(pay.amount_unapplied, 0);
    const r = await post('/v1/refunds', 'owner', { payment: pay.id, amount: 4_000, reason: 'x' });
    assert.equal(r.statusCode, 422);
    assert.equal(
      (await post(`/v1/payments/${pay.id}/unapply`, 'owner', { invoice: inv.id })).statusCode,
      200,
    );
    const ok = await post('/v1/refunds', 'owner', { payment: pay.id, amount: 4_000, reason: 'x' });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal((await get(`/v1/invoices/${inv.id}`)).json().amount_remaining, 4_000);
    await ledgerOk();
  });

  it('refunds customer credit from a credit note', async () => {
    const customer = await newCustomer();
    const d = await post('/v1/invoices', 'owner', {
      customer,
      lines: [{ description: 'x', quantity: '1', unit_amount: 2_000 }],
    });
    const inv = (await post(`/v1/invoices/${d.json().id}/finalize`, 'owner')).json();
    await payment(customer, 2_000);
    const cn = await post('/v1/credit_notes', 'owner', { invoice: inv.id, amount: 1_500, reason: 'other' });
    assert.equal(cn.json().customer_credit, 1_500);
    assert.equal(await creditBalance(customer), 1_500);
    const tooMuch = await post('/v1/refunds', 'owner', { customer, amount: 1_501, reason: 'credit' });
    assert.equal(tooMuch.statusCode, 422);
    assert.equal(tooMuch.json().error.code, 'credit_insufficient');
    const r = await post('/v1/refunds', 'owner', { customer, amount: 1_500, reason: 'credit' });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().payment, null);
    assert.equal(await creditBalance(customer), 0);
    const both = await post('/v1/refunds', 'owner', {
      customer,
      payment: 'pay_00000000000000000000000000000000',
      amount: 1,
      reason: 'x',
    });
    assert.equal(both.statusCode, 422);
    await ledgerOk();
  });

  it('four eyes: above the threshold a refund waits; its requester cannot approve it, someone else can', async () => {
    await setThreshold(5_000);
    try {
      const customer = await newCustomer();
      const pay = await payment(customer, 20_000);
      const small = await post('/v1/refunds', 'finance_manager', {
        payment: pay.id,
        amount: 5_000,
        reason: 'at threshold',
      });
      assert.equal(small.json().status, 'posted');
      const big = await post('/v1/refunds', 'finance_manager', {
        payment: pay.id,
        amount: 6_000,
        reason: 'above',
      });
      assert.equal(big.statusCode, 200, big.body);
      const refund = big.json();
      assert.equal(refund.status, 'pending_approval');
      assert.equal(refund.requested_by, users[`${org}:finance_manager`]);
      // nothing posted yet: the money is still the customer's credit
      assert.equal(await creditBalance(customer), 15_000);
      // the pending amount is reserved: no second refund can promise it again
      const again = await post('/v1/refunds', 'owner', { payment: pay.id, amount: 9_001, reason: 'x' });
      assert.equal(again.statusCode, 422);
      const self = await post(`/v1/refunds/${refund.id}/approve`, 'finance_manager');
      assert.equal(self.statusCode, 403);
      assert.equal(self.json().error.code, 'refund_self_approval');
      const accountant = await post(`/v1/refunds/${refund.id}/approve`, 'accountant');
      assert.equal(accountant.statusCode, 403);
      const approved = await postAs(
        `/v1/refunds/${refund.id}/approve`,
        users.fm2 as string,
        'finance_manager',
      );
      assert.equal(approved.statusCode, 200, approved.body);
      assert.equal(approved.json().status, 'posted');
      assert.equal(approved.json().approved_by, users.fm2);
      assert.equal(await creditBalance(customer), 9_000);
      const twice = await postAs(`/v1/refunds/${refund.id}/approve`, users.fm2 as string, 'finance_manager');
      assert.equal(twice.statusCode, 409);
      assert.equal(twice.json().error.code, 'refund_not_pending');
      // a rejected refund posts nothing
      const other = (
        await post('/v1/refunds', 'owner', { payment: pay.id, amount: 7_000, reason: 'maybe' })
      ).json();
      assert.equal(other.status, 'pending_approval');
      // the database refuses a self-approval too, whatever the application does
      await assert.rejects(
        inOrg(t.db, org, (tx) =>
          tx
            .updateTable('refunds')
            .set({ approved_by: users[`${org}:owner`] as string })
            .where('id', '=', other.id)
            .execute(),
        ),
      );
      const rejected = await post(`/v1/refunds/${other.id}/reject`, 'finance_manager');
      assert.equal(rejected.statusCode, 200, rejected.body);
      assert.equal(rejected.json().status, 'rejected');
      assert.equal(await creditBalance(customer), 9_000);
      const pending = await get('/v1/refunds?status=pending_approval');
      assert.equal(pending.json().data.length, 0);
      await ledgerOk();
    } finally {
      await setThreshold(1_000_000);
    }
  });

  it('is for owners and finance managers only; other orgs get 404', async () => {
    const customer = await newCustomer();
    const pay = await payment(customer, 1_000);
    const body = { payment: pay.id, amount: 100, reason: 'x' };
    for (const role of ['accountant', 'sales_rep', 'viewer'] as const) {
      assert.equal((await post('/v1/refunds', role, body)).statusCode, 403, role);
    }
    assert.equal((await post('/v1/refunds', 'owner', body, orgB)).statusCode, 404);
    const r = (await post('/v1/refunds', 'owner', body)).json();
    assert.equal((await get(`/v1/refunds/${r.id}`, 'owner', orgB)).statusCode, 404);
    assert.equal((await post(`/v1/refunds/${r.id}/approve`, 'owner', undefined, orgB)).statusCode, 404);
    const bad = await post('/v1/refunds', 'owner', { payment: pay.id, amount: -5, reason: 'x' });
    assert.equal(bad.statusCode, 422);
    assert.equal(bad.json().error.param, 'amount');
  });
});
