import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
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
let vat: string;
let customer: string;
let repCustomer: string;
const year = new Date().toISOString().slice(0, 4);

const as = (role: Role, o = org) => actorHeader(o, role, users[`${o}:${role}`] ?? 'usr_none');
const call = (method: 'GET' | 'POST' | 'PATCH', url: string, role: Role, payload?: object, o = org) =>
  app.inject({ method, url, headers: as(role, o), ...(payload ? { payload } : {}) });
const lines = () => [
  { description: 'Design work', quantity: '12.5', unit_amount: 8000, unit_code: 'HUR', tax_rates: [vat] },
];

before(async () => {
  t = await createTestDatabase();
  org = (await createOrg(t.db, { name: 'Quotes', baseCurrency: 'EUR' })).id;
  orgB = (await createOrg(t.db, { name: 'Other', baseCurrency: 'EUR' })).id;
  for (const role of ['owner', 'sales_rep', 'viewer'] as const)
    users[`${org}:${role}`] = await addMember(t, org, role, role);
  users[`${orgB}:owner`] = await addMember(t, orgB, 'owner', 'b');
  app = await buildBillingApp(t);
  vat = newId('tax_rate');
  await inOrg(t.db, org, (tx) =>
    tx
      .insertInto('tax_rates')
      .values(standardRateRow(org, vat, 'VAT', '19'))
      .execute(),
  );
  customer = (await call('POST', '/v1/customers', 'owner', { name: 'Prospect AG' })).json().id;
  repCustomer = (await call('POST', '/v1/customers', 'sales_rep', { name: 'Rep Prospect' })).json().id;
});
after(async () => {
  await app.close();
  await t.drop();
});

describe('quotes', () => {
  it('drafts, edits, sends (numbered) and accepts into a draft invoice with the same totals', async () => {
    const q = await call('POST', '/v1/quotes', 'owner', {
      customer,
      lines: lines(),
      expires_on: `${Number(year) + 1}-01-31`,
    });
    assert.equal(q.statusCode, 200, q.body);
    assert.equal(q.json().status, 'draft');
    assert.deepEqual([q.json().subtotal, q.json().tax, q.json().total], [100000, 19000, 119000]);
    const e = await call('PATCH', `/v1/quotes/${q.json().id}`, 'owner', {
      memo: 'Valid for 30 days',
      discounts: [{ percentage: '10' }],
    });
    assert.equal(e.statusCode, 200, e.body);
    assert.deepEqual([e.json().subtotal, e.json().tax, e.json().total], [100000, 17100, 107100]);
    const s = await call('POST', `/v1/quotes/${q.json().id}/send`, 'owner');
    assert.equal(s.json().status, 'sent');
    assert.match(s.json().number, new RegExp(`^QUO-${year}-\\d{6}$`));
    const locked = await call('PATCH', `/v1/quotes/${q.json().id}`, 'owner', { memo: 'x' });
    assert.equal(locked.json().error.code, 'quote_not_draft');
    const a = await call('POST', `/v1/quotes/${q.json().id}/accept`, 'owner');
    assert.equal(a.statusCode, 200, a.body);
    assert.equal(a.json().status, 'accepted');
    const inv = a.json().invoice_draft;
    assert.equal(inv.status, 'draft');
    assert.equal(inv.total, 107100);
    assert.equal(a.json().invoice, inv.id);
    const again = await call('POST', `/v1/quotes/${q.json().id}/accept`, 'owner');
    assert.equal(again.statusCode, 409);
    assert.equal(again.json().error.code, 'quote_not_sent');
  });

  it('declines, and refuses to accept an expired quote', async () => {
    const q = (await call('POST', '/v1/quotes', 'owner', { customer, lines: lines() })).json();
    await call('POST', `/v1/quotes/${q.id}/send`, 'owner');
    const d = await call('POST', `/v1/quotes/${q.id}/decline`, 'owner');
    assert.equal(d.json().status, 'declined');
    const old = (
      await call('POST', '/v1/quotes', 'owner', { customer, lines: lines(), expires_on: '2020-01-01' })
    ).json();
    await call('POST', `/v1/quotes/${old.id}/send`, 'owner');
    const late = await call('POST', `/v1/quotes/${old.id}/accept`, 'owner');
    assert.equal(late.statusCode, 409);
    assert.equal(late.json().error.code, 'quote_expired');
    const unsent = (await call('POST', '/v1/quotes', 'owner', { customer, lines: lines() })).json();
    assert.equal(
      (await call('POST', `/v1/quotes/${unsent.id}/accept`, 'owner')).json().error.code,
      'quote_not_sent',
    );
  });

  it('lets a sales rep quote their own customers only; viewers read; other orgs get 404', async () => {
    const mine = await call('POST', '/v1/quotes', 'sales_rep', { customer: repCustomer, lines: lines() });
    assert.equal(mine.statusCode, 200, mine.body);
    assert.equal((await call('POST', `/v1/quotes/${mine.json().id}/send`, 'sales_rep')).statusCode, 200);
    assert.equal((await call('POST', `/v1/quotes/${mine.json().id}/accept`, 'sales_rep')).statusCode, 200);
    assert.equal(
      (await call('POST', '/v1/quotes', 'sales_rep', { customer, lines: lines() })).statusCode,
      404,
    );
    const list = await call('GET', '/v1/quotes', 'sales_rep');
    for (const q of list.json().data) assert.equal(q.customer, repCustomer);
    assert.equal((await call('GET', '/v1/quotes', 'viewer')).statusCode, 200);
    assert.equal((await call('POST', '/v1/quotes', 'viewer', { customer, lines: lines() })).statusCode, 403);
    assert.equal(
      (await call('GET', `/v1/quotes/${mine.json().id}`, 'owner', undefined, orgB)).statusCode,
      404,
    );
    const bad = await call('POST', '/v1/quotes', 'owner', {
      customer,
      lines: [{ description: 'x', quantity: '-1', unit_amount: 1 }],
    });
    assert.equal(bad.statusCode, 422);
  });
});
