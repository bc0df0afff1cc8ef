import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { inOrg, type Tx } from '../../src/adapters/db/index.js';
import { signatureHeader } from '../../src/adapters/gateway/stripe.js';
import { createOrg } from '../../src/app/orgs.js';
import type { Role } from '../../src/domain/permissions.js';
import type { BuiltApp } from '../../src/http/app.js';
import { buildTestApp } from '../helpers/app.js';
import { actorHeader, addMember, headerActor } from '../helpers/billing.js';
import { testCipher } from '../helpers/crypto.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { MINUTE, TestClock } from '../helpers/identity.js';

let t: TestDatabase;
let app: BuiltApp;
let orgA: string;
let orgB: string;
let orgC: string; // no stored secret (and the environment's is only for single-org installs)
const users: Record<string, string> = {};
const clock = new TestClock(new Date().toISOString());

const SECRET_A = `whsec_A_${randomBytes(16).toString('hex')}`;
const SECRET_A_NEXT = `whsec_A2_${randomBytes(16).toString('hex')}`;
const SECRET_B = `whsec_B_${randomBytes(16).toString('hex')}`;
const ENV_SECRET = `whsec_env_${randomBytes(16).toString('hex')}`;
const URL = '/v1/webhooks/gateway/stripe';

const as = (role: Role, o = orgA) => actorHeader(o, role, users[`${o}:${role}`] ?? 'usr_none');
const post = (url: string, role: Role, payload?: object, o = orgA) =>
  app.inject({ method: 'POST', url, headers: as(role, o), ...(payload ? { payload } : {}) });
const get = (url: string, role: Role = 'owner', o = orgA) =>
  app.inject({ method: 'GET', url, headers: as(role, o) });
const nowSec = () => Math.floor(clock.now().getTime() / 1000);

let seq = 0;
const rid = (prefix: string) =>
  `${prefix}_${randomBytes(9).toString('base64url').replace(/[-_]/g, 'x')}${++seq}`;

async function openInvoice(unit: number, o = orgA) {
  const c = await post('/v1/customers', 'owner', { name: 'Card Payer', currency: 'EUR' }, o);
  assert.equal(c.statusCode, 200, c.body);
  const d = await post(
    '/v1/invoices',
    'owner',
    {
      customer: c.json().id,
      currency: 'EUR',
      lines: [{ description: 'Work', quantity: '1', unit_amount: unit }],
    },
    o,
  );
  assert.equal(d.statusCode, 200, d.body);
  const f = await post(`/v1/invoices/${d.json().id}/finalize`, 'owner', undefined, o);
  assert.equal(f.statusCode, 200, f.body);
  return f.json() as { id: string; customer: string; amount_remaining: number };
}

interface PaymentOpts {
  invoice?: string;
  org?: string;
  pi?: string;
  ch?: string;
  currency?: string;
  metadata?: Record<string, string>;
  extra?: Record<string, unknown>;
}

function piSucceeded(amount: number, o: PaymentOpts = {}) {
  return {
    id: rid('evt'),
    object: 'event',
    type: 'payment_intent.succeeded',
    created: nowSec(),
    data: {
      object: {
        id: o.pi ?? rid('pi'),
        object: 'payment_intent',
        amount,
        amount_received: amount,
        currency: (o.currency ?? 'eur').toLowerCase(),
        payment_method: 'pm_card_visa_token',
        latest_charge: {
          id: o.ch ?? rid('ch'),
          payment_method_details: {
            type: 'card',
            card: {
              brand: 'visa',
              last4: '4242',
              exp_month: 12,
              exp_year: 2030,
              fingerprint: 'Xt5EWLLDS7FJjR1c',
            },
          },
        },
        metadata: {
          ...(o.invoice ? { billvault_invoice: o.invoice } : {}),
          ...(o.org ? { billvault_org: o.org } : {}),
          ...o.metadata,
        },
        ...o.extra,
      },
    },
  };
}

function chargeSucceeded(amount: number, o: PaymentOpts = {}) {
  return {
    id: rid('evt'),
    type: 'charge.succeeded',
    data: {
      object: {
        id: o.ch ?? rid('ch'),
        object: 'charge',
        amount,
        amount_captured: amount,
        captured: true,
        currency: 'eur',
        payment_intent: o.pi ?? null,
        payment_method: 'pm_card_mastercard',
        payment_method_details: {
          card: { brand: 'mastercard', last4: '4444', exp_month: 3, exp_year: 2029 },
        },
        metadata: { ...(o.invoice ? { billvault_invoice: o.invoice } : {}), ...o.metadata },
      },
    },
  };
}

const chargeRefunded = (
  ch: string,
  pi: string | null,
  amountRefunded: number,
  meta: Record<string, string> = {},
) => ({
  id: rid('evt'),
  type: 'charge.refunded',
  data: {
    object: {
      id: ch,
      object: 'charge',
      amount_refunded: amountRefunded,
      currency: 'eur',
      payment_intent: pi,
      refunds: { data: [{ id: rid('re'), amount: amountRefunded }] },
      metadata: meta,
    },
  },
});

interface Delivery {
  secrets?: string[];
  at?: number;
  header?: string | null;
  headerName?: string;
  raw?: string;
}

async function deliver(event: unknown, d: Delivery = {}) {
  const raw = d.raw ?? JSON.stringify(event);
  const header =
    d.header === undefined ? signatureHeader(d.secrets ?? [SECRET_A], d.at ?? nowSec(), raw) : d.header;
  return app.inject({
    method: 'POST',
    url: URL,
    headers: {
      'content-type': 'application/json',
      ...(header === null ? {} : { [d.headerName ?? 'stripe-signature']: header }),
    },
    payload: raw,
  });
}

const invoiceOf = async (id: string, o = orgA) => (await get(`/v1/invoices/${id}`, 'owner', o)).json();
const paymentsOn = (invoice: string, o = orgA) =>
  inOrg(t.db, o, (tx) =>
    tx
      .selectFrom('payment_allocations')
      .select('payment_id')
      .distinct()
      .where('invoice_id', '=', invoice)
      .execute(),
  );

async function ledgerOk(o = orgA) {
  const r = await get('/v1/ledger/verify', 'owner', o);
  assert.equal(r.json().ok, true, JSON.stringify(r.json().problems));
}

async function auditActions(o: string | null, since: Date) {
  const rows = await sql<{
    action: string;
    actor_id: string | null;
    target_id: string | null;
    details: unknown;
    org_id: string | null;
  }>`
    SELECT action, actor_id, target_id, details, org_id FROM audit_events
     WHERE occurred_at >= ${since} AND (org_id = ${o} OR (${o}::text IS NULL AND org_id IS NULL))
     ORDER BY occurred_at, id`.execute(t.db);
  return rows.rows;
}

before(async () => {
  t = await createTestDatabase();
  orgA = (await createOrg(t.db, { name: 'Gateway A', baseCurrency: 'EUR' })).id;
  orgB = (await createOrg(t.db, { name: 'Gateway B', baseCurrency: 'EUR' })).id;
  orgC = (await createOrg(t.db, { name: 'Gateway C', baseCurrency: 'EUR' })).id;
  for (const o of [orgA, orgB, orgC])
    for (const role of ['owner', 'admin', 'accountant', 'viewer'] as const)
      users[`${o}:${role}`] = await addMember(t, o, role, role);
  app = await buildTestApp(t, {
    authenticate: async (req) => headerActor(req.headers['x-test-actor'] as string | undefined),
    billing: { db: t.db, cipher: testCipher(), clock },
    gateway: { envSecrets: { stripe: ENV_SECRET } },
  });
  for (const [o, secret] of [
    [orgA, SECRET_A],
    [orgB, SECRET_B],
  ] as const) {
    const r = await app.inject({
      method: 'PUT',
      url: '/v1/settings/gateways/stripe',
      headers: as('owner', o),
      payload: { webhook_secret: secret },
    });
    assert.equal(r.statusCode, 200, r.body);
  }
});
after(async () => {
  await app.close();
  await t.drop();
});

describe('gateway webhooks: signature', () => {
  it('a correctly signed payment_intent.succeeded pays the invoice in full', async () => {
    const since = new Date(Date.now() - 1000);
    const inv = await openInvoice(12_500);
    const ev = piSucceeded(12_500, { invoice: inv.id });
    const r = await deliver(ev);
    assert.equal(r.statusCode, 200, r.body);
    const body = r.json();
    assert.equal(body.duplicate, false);
    assert.equal(body.outcome, 'processed');
    assert.equal(body.event, ev.id);
    assert.match(body.payment, /^pay_/);
    const after = await invoiceOf(inv.id);
    assert.equal(after.status, 'paid');
    assert.equal(after.amount_remaining, 0);
    const pay = (await get(`/v1/payments/${body.payment}`)).json();
    assert.equal(pay.method, 'card');
    assert.equal(pay.amount, 12_500);
    assert.equal(pay.currency, 'EUR');
    assert.equal(pay.gateway, 'stripe');
    assert.equal(pay.disputed, false);
    assert.deepEqual(pay.card, { brand: 'visa', last4: '4242', exp_month: 12, exp_year: 2030 });
    assert.equal(pay.customer, inv.customer);
    // the token is stored encrypted
    const raw = await inOrg(t.db, orgA, (tx) =>
      tx.selectFrom('payments').selectAll().where('id', '=', body.payment).executeTakeFirstOrThrow(),
    );
    assert.ok(raw.card_token_enc?.startsWith('bv1:'));
    assert.ok(!raw.card_token_enc?.includes('pm_card_visa_token'));
    assert.equal(raw.created_by, 'gateway:stripe');
    await ledgerOk();
    const events = await auditActions(orgA, since);
    const recorded = events.find((e) => e.action === 'payment.recorded');
    assert.equal(recorded?.actor_id, 'gateway:stripe');
    const processed = events.find((e) => e.action === 'gateway.event_processed');
    assert.equal(processed?.actor_id, 'gateway:stripe');
    assert.equal((processed?.details as { payment?: string } | undefined)?.payment, body.payment);
  });

  it('a Billvault-Signature header is accepted too', async () => {
    const inv = await openInvoice(1_000);
    const r = await deliver(piSucceeded(1_000, { invoice: inv.id }), { headerName: 'billvault-signature' });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal((await invoiceOf(inv.id)).status, 'paid');
  });

  it('refuses a wrong secret, a stale or future timestamp, a tampered body, a missing or malformed header: one generic 400', async () => {
    const since = new Date(Date.now() - 1000);
    const inv = await openInvoice(5_000);
    const ev = piSucceeded(5_000, { invoice: inv.id });
    const raw = JSON.stringify(ev);
    const tampered = raw.replace('"amount":5000', '"amount":1');
    assert.notEqual(tampered, raw);
    const goodHeader = signatureHeader([SECRET_A], nowSec(), raw);
    const cases: [string, Delivery][] = [
      ['wrong secret', { secrets: [`whsec_${randomBytes(16).toString('hex')}`] }],
      ["another org's secret", { secrets: [SECRET_B] }],
      ['older than 5 minutes', { at: nowSec() - 301 }],
      ['more than 5 minutes ahead', { at: nowSec() + 301 }],
      ['tampered body', { raw: tampered, header: goodHeader }],
      ['missing header', { header: null }],
      ['malformed: no t', { header: goodHeader.replace(/^t=\d+,/, '') }],
      ['malformed: not hex', { header: `t=${nowSec()},v1=${'z'.repeat(64)}` }],
      ['malformed: short signature', { header: goodHeader.slice(0, -2) }],
      ['malformed: garbage', { header: 'hello' }],
      ['only a v0 signature', { header: goodHeader.replace('v1=', 'v0=') }],
    ];
    const messages = new Set<string>();
    for (const [name, d] of cases) {
      const r = await deliver(ev, d);
      assert.equal(r.statusCode, 400, `${name}: ${r.body}`);
      assert.equal(r.json().error.code, 'signature_invalid', name);
      messages.add(r.json().error.message);
    }
    assert.equal(messages.size, 1, 'one message whatever failed');
    const after = await invoiceOf(inv.id);
    assert.equal(after.status, 'open');
    assert.equal(after.amount_remaining, 5_000);
    assert.deepEqual(await paymentsOn(inv.id), []);
    const rejected = (await auditActions(orgA, since)).filter((e) => e.action === 'gateway.event_rejected');
    assert.equal(rejected.length, cases.length);
    for (const e of rejected) assert.equal(e.actor_id, 'gateway:stripe');
    // nothing secret in the audit details
    assert.ok(!JSON.stringify(rejected).includes(SECRET_A));
    // the correctly signed one still goes through afterwards
    const ok = await deliver(ev, { raw, header: goodHeader });
    assert.equal(ok.statusCode, 200, ok.body);
  });

  it('accepts timestamps within the tolerance on both sides (injected clock)', async () => {
    const inv = await openInvoice(2_000);
    const early = await deliver(piSucceeded(1_000, { invoice: inv.id }), { at: nowSec() - 299 });
    assert.equal(early.statusCode, 200, early.body);
    const late = await deliver(piSucceeded(1_000, { invoice: inv.id }), { at: nowSec() + 299 });
    assert.equal(late.statusCode, 200, late.body);
    // a delivery signed now and replayed 6 minutes later is refused
    const ev = piSucceeded(500, { invoice: inv.id });
    const raw = JSON.stringify(ev);
    const header = signatureHeader([SECRET_A], nowSec(), raw);
    clock.advance(6 * MINUTE);
    try {
      const r = await deliver(ev, { raw, header });
      assert.equal(r.statusCode, 400);
    } finally {
      clock.advance(-6 * MINUTE);
    }
  });

  it('secret rotation: the previous secret and any of several v1 signatures are accepted', async () => {
    const put = (payload: object) =>
      app.inject({ method: 'PUT', url: '/v1/settings/gateways/stripe', headers: as('admin'), payload });
    const r = await put({ webhook_secret: SECRET_A_NEXT, previous_webhook_secret: SECRET_A });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().has_previous_secret, true);
    try {
      const inv = await openInvoice(3_000);
      const withOld = await deliver(piSucceeded(1_000, { invoice: inv.id }), { secrets: [SECRET_A] });
      assert.equal(withOld.statusCode, 200, withOld.body);
      const withNew = await deliver(piSucceeded(1_000, { invoice: inv.id }), { secrets: [SECRET_A_NEXT] });
      assert.equal(withNew.statusCode, 200, withNew.body);
      // the sender signs with an unknown secret and the new one: one match is enough
      const both = await deliver(piSucceeded(1_000, { invoice: inv.id }), {
        secrets: [`whsec_${randomBytes(12).toString('hex')}`, SECRET_A_NEXT],
      });
      assert.equal(both.statusCode, 200, both.body);
      assert.equal((await invoiceOf(inv.id)).status, 'paid');
      // rotation finished: the old secret no longer works
      assert.equal((await put({ webhook_secret: SECRET_A_NEXT })).statusCode, 200);
      const stale = await deliver(piSucceeded(1_000, { invoice: (await openInvoice(1_000)).id }), {
        secrets: [SECRET_A],
      });
      assert.equal(stale.statusCode, 400);
    } finally {
      assert.equal((await put({ webhook_secret: SECRET_A })).statusCode, 200);
    }
  });

  it('BILLVAULT_STRIPE_WEBHOOK_SECRET is for a single-org install: with several orgs it applies to none', async () => {
    const inv = await openInvoice(4_000, orgC);
    const r = await deliver(piSucceeded(4_000, { invoice: inv.id }), { secrets: [ENV_SECRET] });
    assert.equal(r.statusCode, 400);
    assert.equal((await invoiceOf(inv.id, orgC)).status, 'open');
    const settings = (await get('/v1/settings/gateways/stripe', 'admin', orgC)).json();
    assert.equal(settings.configured, false);
    assert.equal(settings.environment_secret, false);
  });
});

describe('gateway webhooks: events', () => {
  it('a partial amount leaves the remainder; the charge.succeeded of the same payment records nothing more', async () => {
    const inv = await openInvoice(10_000);
    const pi = rid('pi');
    const ch = rid('ch');
    const r = await deliver(piSucceeded(4_000, { invoice: inv.id, pi, ch }));
    assert.equal(r.statusCode, 200, r.body);
    let after = await invoiceOf(inv.id);
    assert.equal(after.status, 'open');
    assert.equal(after.amount_remaining, 6_000);
    const again = await deliver(chargeSucceeded(4_000, { invoice: inv.id, pi, ch }));
    assert.equal(again.statusCode, 200, again.body);
    assert.equal(again.json().outcome, 'ignored');
    assert.equal(again.json().reason, 'payment_already_recorded');
    assert.equal(again.json().payment, r.json().payment);
    after = await invoiceOf(inv.id);
    assert.equal(after.amount_remaining, 6_000);
    // the rest, by a charge without a payment intent
    const rest = await deliver(chargeSucceeded(6_000, { invoice: inv.id }));
    assert.equal(rest.json().outcome, 'processed');
    const pay = (await get(`/v1/payments/${rest.json().payment}`)).json();
    assert.deepEqual(pay.card, { brand: 'mastercard', last4: '4444', exp_month: 3, exp_year: 2029 });
    assert.equal((await invoiceOf(inv.id)).status, 'paid');
    assert.equal((await paymentsOn(inv.id)).length, 2);
    await ledgerOk();
  });

  it('an overpayment becomes customer credit; a payment on a void invoice is kept as credit', async () => {
    const inv = await openInvoice(1_000);
    const r = await deliver(piSucceeded(1_500, { invoice: inv.id }));
    assert.equal(r.json().outcome, 'processed');
    const pay = (await get(`/v1/payments/${r.json().payment}`)).json();
    assert.equal(pay.amount_applied, 1_000);
    assert.equal(pay.amount_unapplied, 500);
    assert.equal((await get(`/v1/customers/${inv.customer}`)).json().credit_balance, 500);
    const voided = await openInvoice(2_000);
    assert.equal((await post(`/v1/invoices/${voided.id}/void`, 'owner')).statusCode, 200);
    const v = await deliver(piSucceeded(2_000, { invoice: voided.id }));
    assert.equal(v.statusCode, 200, v.body);
    assert.equal(v.json().outcome, 'processed');
    assert.equal(v.json().reason, 'invoice_not_payable');
    assert.equal((await get(`/v1/customers/${voided.customer}`)).json().credit_balance, 2_000);
    await ledgerOk();
  });

  it('the same webhook delivered 10 times at once records exactly one payment', async () => {
    const inv = await openInvoice(7_000);
    const ev = piSucceeded(7_000, { invoice: inv.id });
    const raw = JSON.stringify(ev);
    const header = signatureHeader([SECRET_A], nowSec(), raw);
    const results = await Promise.all(Array.from({ length: 10 }, () => deliver(ev, { raw, header })));
    for (const r of results) assert.equal(r.statusCode, 200, r.body);
    const fresh = results.filter((r) => r.json().duplicate === false);
    assert.equal(fresh.length, 1);
    const payment = fresh[0]?.json().payment;
    for (const r of results) assert.equal(r.json().payment, payment);
    assert.equal((await paymentsOn(inv.id)).length, 1);
    const after = await invoiceOf(inv.id);
    assert.equal(after.status, 'paid');
    assert.equal(after.amount_paid, 7_000);
    const dups = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM audit_events WHERE action = 'gateway.event_duplicate' AND target_id = ${ev.id}`.execute(
      t.db,
    );
    assert.equal(dups.rows[0]?.n, 9);
    await ledgerOk();
  });

  it('payment_intent.succeeded and charge.succeeded of one payment arriving together record it once', async () => {
    const inv = await openInvoice(8_000);
    const pi = rid('pi');
    const ch = rid('ch');
    const results = await Promise.all([
      deliver(piSucceeded(8_000, { invoice: inv.id, pi, ch })),
      deliver(chargeSucceeded(8_000, { invoice: inv.id, pi, ch })),
    ]);
    for (const r of results) assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(results.map((r) => r.json().outcome).sort(), ['ignored', 'processed']);
    assert.equal((await paymentsOn(inv.id)).length, 1);
    assert.equal((await invoiceOf(inv.id)).amount_paid, 8_000);
  });

  it('charge.refunded records the refund at once (no four-eyes wait), reopening what it takes back', async () => {
    const inv = await openInvoice(2_000_000); // above the default approval threshold of 1,000,000
    const pi = rid('pi');
    const ch = rid('ch');
    const paid = await deliver(piSucceeded(2_000_000, { invoice: inv.id, pi, ch }));
    const payment = paid.json().payment;
    assert.equal((await invoiceOf(inv.id)).status, 'paid');
    // no metadata on the charge: the payment is found by its charge id
    const first = chargeRefunded(ch, pi, 1_500_000);
    const r = await deliver(first);
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().outcome, 'processed');
    const refund = (await get(`/v1/refunds/${r.json().refund}`)).json();
    assert.equal(refund.status, 'posted');
    assert.equal(refund.amount, 1_500_000);
    assert.equal(refund.gateway, 'stripe');
    assert.equal(refund.requested_by, 'gateway:stripe');
    let after = await invoiceOf(inv.id);
    assert.equal(after.status, 'open');
    assert.equal(after.amount_remaining, 1_500_000);
    let pay = (await get(`/v1/payments/${payment}`)).json();
    assert.equal(pay.amount_refunded, 1_500_000);
    assert.equal(pay.amount_applied, 500_000);
    assert.equal(pay.amount_unapplied, 0);
    await ledgerOk();
    // a replay changes nothing; the next event carries the cumulative figure
    const replay = await deliver(first);
    assert.equal(replay.json().duplicate, true);
    const second = await deliver(chargeRefunded(ch, pi, 2_000_000));
    assert.equal(second.json().outcome, 'processed');
    after = await invoiceOf(inv.id);
    assert.equal(after.amount_remaining, 2_000_000);
    pay = (await get(`/v1/payments/${payment}`)).json();
    assert.equal(pay.amount_refunded, 2_000_000);
    // a late event with an older cumulative figure is acknowledged and ignored
    const stale = await deliver(chargeRefunded(ch, pi, 1_500_000));
    assert.equal(stale.json().outcome, 'ignored');
    assert.equal(stale.json().reason, 'already_refunded');
    await ledgerOk();
  });

  it('charge.dispute.created marks the payment disputed, audited, shown on GET payment', async () => {
    const since = new Date(Date.now() - 1000);
    const inv = await openInvoice(3_300);
    const ch = rid('ch');
    const paid = await deliver(piSucceeded(3_300, { invoice: inv.id, ch }));
    const payment = paid.json().payment;
    const dispute = {
      id: rid('evt'),
      type: 'charge.dispute.created',
      data: {
        object: {
          id: rid('dp'),
          object: 'dispute',
          amount: 3_300,
          currency: 'eur',
          charge: ch,
          reason: 'fraudulent',
          status: 'needs_response',
          metadata: {},
        },
      },
    };
    const r = await deliver(dispute);
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().outcome, 'processed');
    const pay = (await get(`/v1/payments/${payment}`, 'viewer')).json();
    assert.equal(pay.disputed, true);
    assert.equal(pay.dispute_reason, 'fraudulent');
    assert.ok(pay.disputed_at);
    const audit = (await auditActions(orgA, since)).find((e) => e.action === 'payment.disputed');
    assert.equal(audit?.actor_id, 'gateway:stripe');
    const again = await deliver({ ...dispute, id: rid('evt') });
    assert.equal(again.json().reason, 'already_disputed');
  });

  it('unknown event types and unknown invoices are acknowledged and recorded as ignored', async () => {
    const since = new Date(Date.now() - 1000);
    const other = await deliver({
      id: rid('evt'),
      type: 'customer.created',
      data: { object: { id: 'cus_x', metadata: { billvault_org: orgA } } },
    });
    assert.equal(other.statusCode, 200, other.body);
    assert.equal(other.json().outcome, 'ignored');
    assert.equal(other.json().reason, 'unhandled_type');
    const unknown = await deliver(piSucceeded(100, { invoice: `inv_${'0'.repeat(32)}`, org: orgA }));
    assert.equal(unknown.statusCode, 200, unknown.body);
    assert.equal(unknown.json().reason, 'invoice_not_found');
    const none = await deliver(piSucceeded(100, { org: orgA }));
    assert.equal(none.json().reason, 'no_invoice');
    const ids = [other, unknown, none].map((r) => r.json().event);
    const ignored = (await auditActions(orgA, since)).filter(
      (e) => e.action === 'gateway.event_ignored' && ids.includes(e.target_id ?? ''),
    );
    assert.equal(ignored.length, 3);
    const logged = await inOrg(t.db, orgA, (tx) =>
      tx
        .selectFrom('gateway_events')
        .selectAll()
        .where('event_id', '=', other.json().event)
        .executeTakeFirstOrThrow(),
    );
    assert.equal(logged.outcome, 'ignored');
    assert.equal(logged.event_type, 'customer.created');
  });

  it("an event cannot pay another org's invoice, whatever its metadata says", async () => {
    const invA = await openInvoice(9_000);
    // claims org B and is signed with B's secret: processed in B, where A's invoice does not exist
    const inB = await deliver(piSucceeded(9_000, { invoice: invA.id, org: orgB }), { secrets: [SECRET_B] });
    assert.equal(inB.statusCode, 200, inB.body);
    assert.equal(inB.json().outcome, 'ignored');
    assert.equal(inB.json().reason, 'invoice_not_found');
    // names A's invoice (so org A) but is signed with B's secret: refused
    const forged = await deliver(piSucceeded(9_000, { invoice: invA.id }), { secrets: [SECRET_B] });
    assert.equal(forged.statusCode, 400);
    // claims org A with B's secret: refused
    const claimed = await deliver(piSucceeded(9_000, { invoice: invA.id, org: orgA }), {
      secrets: [SECRET_B],
    });
    assert.equal(claimed.statusCode, 400);
    // an org that does not exist
    const ghost = await deliver(piSucceeded(9_000, { invoice: invA.id, org: `org_${'1'.repeat(32)}` }));
    assert.equal(ghost.statusCode, 400);
    const after = await invoiceOf(invA.id);
    assert.equal(after.status, 'open');
    assert.equal(after.amount_remaining, 9_000);
    assert.deepEqual(await paymentsOn(invA.id), []);
    await ledgerOk(orgB);
  });

  it('card-number-looking data in the event is never stored', async () => {
    const inv = await openInvoice(1_234);
    const pan = '4242 4242 4242 4242';
    const ev = piSucceeded(1_234, {
      invoice: inv.id,
      metadata: { note: pan, order: '4000056655665556' },
      extra: { description: `card ${pan}`, receipt_email: 'jane@example.com' },
    });
    (ev.data.object.latest_charge.payment_method_details.card as Record<string, unknown>).number =
      '4242424242424242';
    const r = await deliver(ev);
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().outcome, 'processed');
    // an event id shaped like a card number is refused outright (it would be stored)
    const bad = await deliver({ ...piSucceeded(1, { invoice: inv.id }), id: 'evt_4242424242424242' });
    assert.equal(bad.statusCode, 400);
    const dump = await sql<{ t: string }>`
      SELECT (SELECT coalesce(json_agg(p)::text, '') FROM payments p)
          || (SELECT coalesce(json_agg(g)::text, '') FROM gateway_events g)
          || (SELECT coalesce(json_agg(x)::text, '') FROM gateway_refs x)
          || (SELECT coalesce(json_agg(a.details)::text, '') FROM audit_events a) AS t`.execute(t.db);
    const all = dump.rows[0]?.t ?? '';
    assert.ok(all.length > 100);
    for (const needle of ['4242424242424242', pan, '4000056655665556', 'jane@example.com']) {
      assert.ok(!all.includes(needle), `${needle} stored`);
    }
  });
});

describe('gateway routing role', () => {
  it('billvault_router reads only the org_id of the one invoice or ref it names', async () => {
    const inv = await openInvoice(100);
    const other = await openInvoice(100, orgB);
    const asRouter = <T>(settings: Record<string, string>, fn: (tx: Tx) => Promise<T>) =>
      t.db.transaction().execute(async (tx) => {
        await sql`SELECT set_config('role', 'billvault_router', true)`.execute(tx);
        for (const [k, v] of Object.entries(settings))
          await sql`SELECT set_config(${k}, ${v}, true)`.execute(tx);
        return fn(tx);
      });
    const seen = await asRouter({ 'app.gateway_invoice': inv.id }, (tx) =>
      sql<{ org_id: string; id: string }>`SELECT org_id, id FROM invoices`.execute(tx),
    );
    assert.deepEqual(seen.rows, [{ org_id: orgA, id: inv.id }]);
    const none = await asRouter({}, (tx) =>
      sql<{ n: number }>`SELECT count(*)::int AS n FROM invoices`.execute(tx),
    );
    assert.equal(none.rows[0]?.n, 0);
    // other columns, other tables, and writes are refused outright
    for (const q of [
      sql`SELECT total FROM invoices`,
      sql`SELECT * FROM customers`,
      sql`SELECT * FROM payments`,
      sql`UPDATE invoices SET org_id = org_id`,
    ]) {
      await assert.rejects(
        asRouter({ 'app.gateway_invoice': other.id }, (tx) => q.execute(tx)),
        /permission denied/,
      );
    }
  });
});

describe('gateway settings', () => {
  it('stores the secret encrypted, never returns or audits it, and needs settings:write', async () => {
    const since = new Date(Date.now() - 1000);
    const secret = `whsec_settings_${randomBytes(16).toString('hex')}`;
    const denied = await app.inject({
      method: 'PUT',
      url: '/v1/settings/gateways/stripe',
      headers: as('accountant', orgC),
      payload: { webhook_secret: secret },
    });
    assert.equal(denied.statusCode, 403);
    const short = await app.inject({
      method: 'PUT',
      url: '/v1/settings/gateways/stripe',
      headers: as('owner', orgC),
      payload: { webhook_secret: 'short' },
    });
    assert.equal(short.statusCode, 422);
    const ok = await app.inject({
      method: 'PUT',
      url: '/v1/settings/gateways/stripe',
      headers: as('owner', orgC),
      payload: { webhook_secret: secret },
    });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.ok(!ok.body.includes(secret));
    const read = await get('/v1/settings/gateways/stripe', 'admin', orgC);
    assert.equal(read.statusCode, 200);
    assert.equal(read.json().configured, true);
    assert.ok(!read.body.includes(secret));
    assert.equal((await get('/v1/settings/gateways/stripe', 'accountant', orgC)).statusCode, 403);
    const row = await sql<{
      secret_enc: string;
    }>`SELECT secret_enc FROM gateway_secrets WHERE org_id = ${orgC}`.execute(t.db);
    assert.ok(row.rows[0]?.secret_enc.startsWith('bv1:'));
    assert.ok(!row.rows[0]?.secret_enc.includes(secret));
    const audit = await auditActions(orgC, since);
    assert.ok(audit.some((e) => e.action === 'gateway.secret_updated'));
    assert.ok(!JSON.stringify(audit).includes(secret));
    // the org's own secret now replaces the environment's
    const inv = await openInvoice(100, orgC);
    assert.equal(
      (await deliver(piSucceeded(100, { invoice: inv.id }), { secrets: [ENV_SECRET] })).statusCode,
      400,
    );
    assert.equal(
      (await deliver(piSucceeded(100, { invoice: inv.id }), { secrets: [secret] })).statusCode,
      200,
    );
  });

  it('accepts any random secret, even one holding a card-number-shaped run of digits', async () => {
    // A random hex secret holds a Luhn-valid 13–19 digit run now and then; the card guard must
    // not refuse it (secret fields are exempt: they are encrypted and never echoed).
    const secret = 'whsec_4111111111111111a0b1c2d3e4f5';
    const ok = await app.inject({
      method: 'PUT',
      url: '/v1/settings/gateways/stripe',
      headers: as('owner', orgC),
      payload: { webhook_secret: secret, previous_webhook_secret: `${secret}x` },
    });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.ok(!ok.body.includes('4111111111111111'));
  });
});
