/**
 * A single-org install: events need no org or invoice metadata to find their org, and
 * BILLVAULT_STRIPE_WEBHOOK_SECRET verifies them until the org stores a secret of its own.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { signatureHeader } from '../../src/adapters/gateway/stripe.js';
import { createOrg } from '../../src/app/orgs.js';
import type { BuiltApp } from '../../src/http/app.js';
import { buildTestApp } from '../helpers/app.js';
import { actorHeader, addMember, headerActor } from '../helpers/billing.js';
import { testCipher } from '../helpers/crypto.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { TestClock } from '../helpers/identity.js';

let t: TestDatabase;
let app: BuiltApp;
let org: string;
let owner: string;
const clock = new TestClock(new Date().toISOString());
const ENV_SECRET = `whsec_env_${randomBytes(16).toString('hex')}`;

function deliver(event: unknown, secret: string) {
  const raw = JSON.stringify(event);
  return app.inject({
    method: 'POST',
    url: '/v1/webhooks/gateway/stripe',
    headers: {
      'content-type': 'application/json',
      'stripe-signature': signatureHeader([secret], Math.floor(clock.now().getTime() / 1000), raw),
    },
    payload: raw,
  });
}

/** Random gateway-style ids without long digit runs (13+ digits would look like a card number and be refused). */
const letters = () =>
  randomBytes(10)
    .toString('base64url')
    .replace(/[^A-Za-z]/g, 'x');

const charge = (invoice: string, amount: number) => ({
  id: `evt_${letters()}`,
  type: 'charge.succeeded',
  data: {
    object: {
      id: `ch_${letters()}`,
      amount,
      currency: 'eur',
      captured: true,
      payment_method_details: { card: { brand: 'amex', last4: '0005', exp_month: 1, exp_year: 2031 } },
      metadata: { billvault_invoice: invoice },
    },
  },
});

before(async () => {
  t = await createTestDatabase();
  org = (await createOrg(t.db, { name: 'Only Org', baseCurrency: 'EUR' })).id;
  owner = await addMember(t, org, 'owner', 'owner');
  app = await buildTestApp(t, {
    authenticate: async (req) => headerActor(req.headers['x-test-actor'] as string | undefined),
    billing: { db: t.db, cipher: testCipher(), clock },
    gateway: { envSecrets: { stripe: ENV_SECRET } },
  });
});
after(async () => {
  await app.close();
  await t.drop();
});

describe('gateway webhooks on a single-org install', () => {
  it('the environment secret verifies events; metadata-less events belong to the only org', async () => {
    const headers = actorHeader(org, 'owner', owner);
    const settings = await app.inject({ method: 'GET', url: '/v1/settings/gateways/stripe', headers });
    assert.equal(settings.json().environment_secret, true);
    const other = await deliver(
      { id: 'evt_plain1', type: 'balance.available', data: { object: {} } },
      ENV_SECRET,
    );
    assert.equal(other.statusCode, 200, other.body);
    assert.equal(other.json().reason, 'unhandled_type');
    const wrong = await deliver(
      { id: 'evt_plain2', type: 'balance.available', data: { object: {} } },
      'whsec_wrong_0123456789',
    );
    assert.equal(wrong.statusCode, 400);

    const c = await app.inject({ method: 'POST', url: '/v1/customers', headers, payload: { name: 'Buyer' } });
    const d = await app.inject({
      method: 'POST',
      url: '/v1/invoices',
      headers,
      payload: {
        customer: c.json().id,
        currency: 'EUR',
        lines: [{ description: 'x', quantity: '1', unit_amount: 900 }],
      },
    });
    const f = await app.inject({ method: 'POST', url: `/v1/invoices/${d.json().id}/finalize`, headers });
    assert.equal(f.statusCode, 200, f.body);
    const paid = await deliver(charge(f.json().id, 900), ENV_SECRET);
    assert.equal(paid.json().outcome, 'processed', paid.body);
    const inv = await app.inject({ method: 'GET', url: `/v1/invoices/${f.json().id}`, headers });
    assert.equal(inv.json().status, 'paid');

    // a stored secret takes over: the environment's no longer verifies
    const own = `whsec_own_${randomBytes(16).toString('hex')}`;
    const put = await app.inject({
      method: 'PUT',
      url: '/v1/settings/gateways/stripe',
      headers,
      payload: { webhook_secret: own },
    });
    assert.equal(put.statusCode, 200, put.body);
    assert.equal(put.json().environment_secret, false);
    const evt = { id: 'evt_plain3', type: 'balance.available', data: { object: {} } };
    assert.equal((await deliver(evt, ENV_SECRET)).statusCode, 400);
    assert.equal((await deliver(evt, own)).statusCode, 200);
  });
});
