/**
 * Outbound webhooks through the API: endpoints (happy, error, security), the events each use
 * case emits in its own transaction, the delivery log and manual retry.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { parseAllowList, type SsrfPolicy } from '../../src/adapters/net/ssrf.js';
import { createOrg } from '../../src/app/orgs.js';
import { systemClock } from '../../src/app/ports.js';
import type { Role } from '../../src/domain/permissions.js';
import type { BuiltApp } from '../../src/http/app.js';
import { buildTestApp } from '../helpers/app.js';
import { actorHeader, addMember, headerActor } from '../helpers/billing.js';
import { testCipher } from '../helpers/crypto.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let t: TestDatabase;
let app: BuiltApp;
let strictApp: BuiltApp;
let org: string;
let orgB: string;
const users: Record<string, string> = {};

const DEV: SsrfPolicy = { devMode: true, allow: parseAllowList('') };
const HOOK = 'http://127.0.0.1:9/hook';

const as = (role: Role, o = org) => actorHeader(o, role, users[`${o}:${role}`] ?? 'usr_none');
const call = (
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  url: string,
  role: Role = 'owner',
  payload?: object,
  o = org,
) => app.inject({ method, url, headers: as(role, o), ...(payload ? { payload } : {}) });

async function endpoint(payload: object = {}, o = org) {
  const r = await call(
    'POST',
    '/v1/webhook_endpoints',
    'owner',
    { url: HOOK, enabled_events: ['*'], ...payload },
    o,
  );
  assert.equal(r.statusCode, 200, r.body);
  return r.json() as {
    id: string;
    secret: string;
    secret_hint: string;
    url: string;
    enabled_events: string[];
  };
}

interface DeliveryRow {
  id: string;
  endpoint_id: string;
  event_id: string;
  event_type: string;
  payload: string;
  status: string;
}
const deliveries = async (o = org) =>
  (
    await sql<DeliveryRow>`SELECT id, endpoint_id, event_id, event_type, payload, status FROM webhook_deliveries
      WHERE org_id = ${o} ORDER BY created_at, event_type`.execute(t.db)
  ).rows;
const clearDeliveries = () => sql`TRUNCATE webhook_deliveries`.execute(t.db);
const typesOf = (rows: DeliveryRow[]) => rows.map((r) => r.event_type).sort();

async function customer() {
  const r = await call('POST', '/v1/customers', 'owner', {
    name: 'Ada Lovelace',
    email: 'ada@example.com',
    currency: 'EUR',
  });
  assert.equal(r.statusCode, 200, r.body);
  return r.json().id as string;
}
async function openInvoice(cus: string, amount = 1000) {
  const r = await call('POST', '/v1/invoices', 'owner', {
    customer: cus,
    currency: 'EUR',
    lines: [{ description: 'Work', quantity: '1', unit_amount: amount }],
  });
  assert.equal(r.statusCode, 200, r.body);
  const f = await call('POST', `/v1/invoices/${r.json().id}/finalize`);
  assert.equal(f.statusCode, 200, f.body);
  return f.json() as { id: string; number: string; total: number };
}

before(async () => {
  t = await createTestDatabase();
  const billing = { db: t.db, cipher: testCipher(), clock: systemClock };
  const authenticate = async (req: { headers: Record<string, unknown> }) =>
    headerActor(req.headers['x-test-actor'] as string | undefined);
  app = await buildTestApp(t, { authenticate, billing, webhooks: { ssrf: DEV } });
  strictApp = await buildTestApp(t, { authenticate, billing });
  org = (await createOrg(t.db, { name: 'Hooks A', baseCurrency: 'EUR' })).id;
  orgB = (await createOrg(t.db, { name: 'Hooks B', baseCurrency: 'EUR' })).id;
  for (const o of [org, orgB])
    for (const role of [
      'owner',
      'admin',
      'finance_manager',
      'accountant',
      'viewer',
      'auditor',
      'sales_rep',
    ] as Role[])
      users[`${o}:${role}`] = await addMember(t, o, role, role);
});
after(async () => {
  await app.close();
  await strictApp.close();
  await t.drop();
});

describe('webhook endpoints', () => {
  it('creates an endpoint and shows its secret once; reads never carry it', async () => {
    const e = await endpoint({ description: 'ERP', enabled_events: ['invoice.paid', 'payment.received'] });
    assert.match(e.id, /^we_[0-9a-z]{32}$/);
    assert.match(e.secret, /^whsec_[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(e.secret.slice(6), 'base64url').length, 32);
    assert.equal(e.secret_hint, `${e.secret.slice(0, 10)}…`);
    assert.deepEqual(e.enabled_events, ['invoice.paid', 'payment.received']);
    assert.equal(e.url, HOOK);
    const one = await call('GET', `/v1/webhook_endpoints/${e.id}`);
    assert.equal(one.statusCode, 200);
    assert.equal(one.json().url, HOOK);
    assert.equal(one.json().description, 'ERP');
    const list = await call('GET', '/v1/webhook_endpoints');
    assert.equal(list.statusCode, 200);
    assert.ok(list.json().data.some((x: { id: string }) => x.id === e.id));
    for (const body of [one.body, list.body]) {
      assert.ok(!body.includes(e.secret), 'secret in a read');
      assert.ok(!body.includes(e.secret.slice(10)), 'secret tail in a read');
    }
    // at rest: URL and secret are ciphertexts
    const row = (
      await sql<{
        url_enc: string;
        secret_enc: string;
      }>`SELECT url_enc, secret_enc FROM webhook_endpoints WHERE id = ${e.id}`.execute(t.db)
    ).rows[0];
    assert.ok(row?.url_enc.startsWith('bv1:') && row.secret_enc.startsWith('bv1:'));
    assert.ok(!row?.url_enc.includes('127.0.0.1') && !row?.secret_enc.includes(e.secret.slice(6)));
  });

  it('updates, rotates the secret (the new one is shown once) and deletes; every change audited without the secret', async () => {
    const e = await endpoint();
    const p = await call('PATCH', `/v1/webhook_endpoints/${e.id}`, 'owner', {
      enabled: false,
      enabled_events: ['refund.created'],
      description: 'paused',
    });
    assert.equal(p.statusCode, 200, p.body);
    assert.equal(p.json().enabled, false);
    assert.deepEqual(p.json().enabled_events, ['refund.created']);
    const r = await call('POST', `/v1/webhook_endpoints/${e.id}/rotate_secret`);
    assert.equal(r.statusCode, 200, r.body);
    const rotated = r.json().secret as string;
    assert.match(rotated, /^whsec_/);
    assert.notEqual(rotated, e.secret);
    assert.ok(r.json().secret_rotated_at);
    const d = await call('DELETE', `/v1/webhook_endpoints/${e.id}`);
    assert.equal(d.statusCode, 200, d.body);
    assert.equal((await call('GET', `/v1/webhook_endpoints/${e.id}`)).statusCode, 404);
    assert.equal(
      (await call('PATCH', `/v1/webhook_endpoints/${e.id}`, 'owner', { enabled: true })).statusCode,
      404,
    );
    const shredded = (
      await sql<{
        url_enc: string | null;
        secret_enc: string | null;
      }>`SELECT url_enc, secret_enc FROM webhook_endpoints WHERE id = ${e.id}`.execute(t.db)
    ).rows[0];
    assert.deepEqual(shredded, { url_enc: null, secret_enc: null });
    const audit = (
      await sql<{ action: string; details: unknown }>`SELECT action, details FROM audit_events
        WHERE target_id = ${e.id} ORDER BY occurred_at`.execute(t.db)
    ).rows;
    assert.deepEqual(
      audit.map((a) => a.action),
      [
        'webhook_endpoint.created',
        'webhook_endpoint.updated',
        'webhook_endpoint.secret_rotated',
        'webhook_endpoint.deleted',
      ],
    );
    const all = JSON.stringify(audit);
    for (const s of [e.secret, rotated, e.secret.slice(6), rotated.slice(6), HOOK])
      assert.ok(!all.includes(s), `audit holds ${s}`);
    assert.ok(all.includes('127.0.0.1'), 'the host is recorded');
  });

  it('validates input: 422 for unknown events, bad URLs, "*" with others, unknown fields; 404 for unknown ids', async () => {
    const bad = [
      { url: HOOK, enabled_events: ['invoice.exploded'] },
      { url: HOOK, enabled_events: [] },
      { url: HOOK, enabled_events: ['*', 'invoice.paid'] },
      { url: 'not a url', enabled_events: ['*'] },
      { url: HOOK, enabled_events: ['*'], secret: 'whsec_mine' },
      { url: HOOK, enabled_events: '*' },
      { url: `http://127.0.0.1/${'x'.repeat(3000)}`, enabled_events: ['*'] },
      { url: HOOK, enabled_events: ['*'], description: 'd'.repeat(501) },
      { url: "https://x.example/'; DROP TABLE webhook_endpoints; --", enabled_events: ['*'] },
    ];
    for (const payload of bad) {
      const r = await call('POST', '/v1/webhook_endpoints', 'owner', payload);
      assert.equal(r.statusCode, 422, `${JSON.stringify(payload).slice(0, 80)}: ${r.body}`);
    }
    const unknown = 'we_00000000000000000000000000000000';
    assert.equal((await call('GET', `/v1/webhook_endpoints/${unknown}`)).statusCode, 404);
    assert.equal(
      (await call('GET', '/v1/webhook_endpoints/inv_00000000000000000000000000000000')).statusCode,
      422,
    );
    const count = await sql<{
      n: string;
    }>`SELECT count(*) AS n FROM webhook_endpoints WHERE url_host = 'x.example'`.execute(t.db);
    assert.equal(Number(count.rows[0]?.n), 0);
  });

  it('SSRF at registration: https only, no private, loopback, link-local or metadata addresses, no user info', async () => {
    const refused = [
      'http://93.184.215.14/hook',
      'https://127.0.0.1/hook',
      'https://localhost/hook',
      'https://10.0.0.1/hook',
      'https://192.168.0.1/hook',
      'https://172.16.5.4/hook',
      'https://100.64.0.1/hook',
      'https://169.254.169.254/latest/meta-data/',
      'https://[::1]/hook',
      'https://[fe80::1]/hook',
      'https://[fd00::1]/hook',
      'https://[::ffff:169.254.169.254]/hook',
      'https://0.0.0.0/hook',
      'https://user:pass@93.184.215.14/hook',
      'ftp://93.184.215.14/hook',
    ];
    for (const url of refused) {
      const r = await strictApp.inject({
        method: 'POST',
        url: '/v1/webhook_endpoints',
        headers: as('owner'),
        payload: { url, enabled_events: ['*'] },
      });
      assert.equal(r.statusCode, 422, `${url}: ${r.body}`);
      assert.equal(r.json().error.code, 'webhook_url_forbidden', url);
      assert.equal(r.json().error.param, 'url');
      assert.ok(!r.body.includes('pass@'), 'the user info is not echoed');
    }
    const ok = await strictApp.inject({
      method: 'POST',
      url: '/v1/webhook_endpoints',
      headers: as('owner'),
      payload: { url: 'https://93.184.215.14:8443/hooks?tenant=1', enabled_events: ['*'] },
    });
    assert.equal(ok.statusCode, 200, ok.body);
    // dev mode still refuses private networks and plain http to public addresses
    for (const url of ['http://10.1.1.1/h', 'https://169.254.169.254/', 'http://93.184.215.14/h']) {
      const r = await call('POST', '/v1/webhook_endpoints', 'owner', { url, enabled_events: ['*'] });
      assert.equal(r.statusCode, 422, url);
    }
    // a PATCH to a forbidden URL changes nothing
    const e = await endpoint();
    const p = await call('PATCH', `/v1/webhook_endpoints/${e.id}`, 'owner', {
      url: 'https://169.254.169.254/',
    });
    assert.equal(p.statusCode, 422);
    assert.equal((await call('GET', `/v1/webhook_endpoints/${e.id}`)).json().url, HOOK);
  });

  it('another org cannot see or change an endpoint (404), and its lists do not show it', async () => {
    const e = await endpoint();
    for (const [method, url, payload] of [
      ['GET', `/v1/webhook_endpoints/${e.id}`],
      ['PATCH', `/v1/webhook_endpoints/${e.id}`, { enabled: false }],
      ['DELETE', `/v1/webhook_endpoints/${e.id}`],
      ['POST', `/v1/webhook_endpoints/${e.id}/rotate_secret`],
      ['GET', `/v1/webhook_endpoints/${e.id}/deliveries`],
    ] as const) {
      const r = await call(method, url, 'owner', payload, orgB);
      assert.equal(r.statusCode, 404, `${method} ${url}: ${r.body}`);
    }
    const list = await call('GET', '/v1/webhook_endpoints', 'owner', undefined, orgB);
    assert.ok(!list.body.includes(e.id));
    assert.equal((await call('GET', `/v1/webhook_endpoints/${e.id}`)).json().enabled, true);
  });

  it('roles without webhooks:manage get 403 and nothing changes; admins may manage', async () => {
    const e = await endpoint();
    for (const role of ['finance_manager', 'accountant', 'viewer', 'auditor', 'sales_rep'] as Role[]) {
      for (const [method, url, payload] of [
        ['POST', '/v1/webhook_endpoints', { url: HOOK, enabled_events: ['*'] }],
        ['GET', '/v1/webhook_endpoints'],
        ['GET', `/v1/webhook_endpoints/${e.id}`],
        ['PATCH', `/v1/webhook_endpoints/${e.id}`, { enabled: false }],
        ['DELETE', `/v1/webhook_endpoints/${e.id}`],
        ['POST', `/v1/webhook_endpoints/${e.id}/rotate_secret`],
      ] as const) {
        const r = await call(method, url, role, payload);
        assert.equal(r.statusCode, 403, `${role} ${method} ${url}`);
        assert.ok(!r.body.includes('whsec_'));
      }
    }
    assert.equal((await call('GET', `/v1/webhook_endpoints/${e.id}`)).json().enabled, true);
    const admin = await call('POST', '/v1/webhook_endpoints', 'admin', {
      url: HOOK,
      enabled_events: ['invoice.paid'],
    });
    assert.equal(admin.statusCode, 200, admin.body);
  });
});

describe('events', () => {
  it('each business change emits its event in its own transaction, one delivery per subscribed endpoint', async () => {
    await sql`UPDATE webhook_endpoints SET enabled = false`.execute(t.db);
    await clearDeliveries();
    const all = await endpoint({ enabled_events: ['*'] });
    const onlyPaid = await endpoint({ enabled_events: ['invoice.paid'] });
    await endpoint({ enabled_events: ['*'], enabled: false });
    await endpoint({ enabled_events: ['*'] }, orgB);

    const cus = await customer();
    const inv = await openInvoice(cus, 1000);
    let rows = await deliveries();
    assert.deepEqual(typesOf(rows), ['invoice.finalized']);
    const payload = JSON.parse(rows[0]?.payload ?? '{}');
    assert.match(payload.id, /^evt_[0-9a-z]{32}$/);
    assert.equal(payload.type, 'invoice.finalized');
    assert.equal(typeof payload.created, 'number');
    assert.deepEqual(
      {
        id: payload.data.object.id,
        number: payload.data.object.number,
        status: payload.data.object.status,
        total: payload.data.object.total,
      },
      { id: inv.id, number: inv.number, status: 'open', total: 1000 },
    );
    assert.equal(payload.data.object.customer, cus);
    // the event's object is the finalised invoice as the API shows it (the statement that takes
    // the number writes both, from one object; its COMMIT is already on the wire)
    const shown = (await call('GET', `/v1/invoices/${inv.id}`)).json();
    assert.deepEqual(payload.data.object, {
      id: shown.id,
      object: 'invoice',
      customer: shown.customer,
      number: shown.number,
      status: shown.status,
      currency: shown.currency,
      total: shown.total,
      amount_due: shown.amount_due,
      amount_paid: shown.amount_paid,
      amount_credited: shown.amount_credited,
      amount_remaining: shown.amount_remaining,
      issue_date: shown.issue_date,
      due_date: shown.due_date,
    });
    assert.ok(
      !rows[0]?.payload.includes('Ada') && !rows[0]?.payload.includes('ada@example.com'),
      'no PII in events',
    );
    assert.equal(rows[0]?.endpoint_id, all.id);

    // payment → payment.received and invoice.paid (to both endpoints for invoice.paid)
    await clearDeliveries();
    const pay = await call('POST', '/v1/payments', 'owner', {
      customer: cus,
      amount: 1500,
      currency: 'EUR',
      method: 'bank_transfer',
      reference: 'Ada Lovelace remittance',
    });
    assert.equal(pay.statusCode, 200, pay.body);
    rows = await deliveries();
    assert.deepEqual(typesOf(rows), ['invoice.paid', 'invoice.paid', 'payment.received']);
    assert.deepEqual(
      new Set(rows.filter((r) => r.event_type === 'invoice.paid').map((r) => r.endpoint_id)),
      new Set([all.id, onlyPaid.id]),
    );
    const paidEvents = new Set(rows.filter((r) => r.event_type === 'invoice.paid').map((r) => r.event_id));
    assert.equal(paidEvents.size, 1, 'one event fans out to both endpoints with the same event id');
    const received = JSON.parse(rows.find((r) => r.event_type === 'payment.received')?.payload ?? '{}');
    assert.equal(received.data.object.amount, 1500);
    assert.equal(received.data.object.amount_unapplied, 500);
    assert.deepEqual(received.data.object.allocations, [{ invoice: inv.id, amount: 1000 }]);
    assert.ok(!JSON.stringify(rows).includes('remittance'), 'the payment reference stays out');

    // refund of the unapplied 500 (below the approval threshold): created + posted
    await clearDeliveries();
    const ref = await call('POST', '/v1/refunds', 'owner', {
      payment: pay.json().id,
      amount: 200,
      reason: 'Ada asked',
    });
    assert.equal(ref.statusCode, 200, ref.body);
    rows = await deliveries();
    assert.deepEqual(typesOf(rows), ['refund.created', 'refund.posted']);
    assert.ok(!JSON.stringify(rows).includes('Ada asked'));

    // four eyes: created (pending) now, approved + posted later
    await sql`INSERT INTO org_settings (org_id, key, value) VALUES (${org}, 'refunds.approval_threshold', '100')`.execute(
      t.db,
    );
    await clearDeliveries();
    const pending = await call('POST', '/v1/refunds', 'owner', {
      payment: pay.json().id,
      amount: 150,
      reason: 'more',
    });
    assert.equal(pending.statusCode, 200, pending.body);
    assert.equal(pending.json().status, 'pending_approval');
    assert.deepEqual(typesOf(await deliveries()), ['refund.created']);
    await clearDeliveries();
    const approved = await call('POST', `/v1/refunds/${pending.json().id}/approve`, 'finance_manager');
    assert.equal(approved.statusCode, 200, approved.body);
    assert.deepEqual(typesOf(await deliveries()), ['refund.approved', 'refund.posted']);

    // credit note that settles an invoice: credit_note.created + invoice.paid
    const inv2 = await openInvoice(cus, 700);
    await clearDeliveries();
    const cn = await call('POST', '/v1/credit_notes', 'owner', { invoice: inv2.id, reason: 'duplicate' });
    assert.equal(cn.statusCode, 200, cn.body);
    rows = await deliveries();
    assert.deepEqual(typesOf(rows), ['credit_note.created', 'invoice.paid', 'invoice.paid']);
    const cnEvent = JSON.parse(rows.find((r) => r.event_type === 'credit_note.created')?.payload ?? '{}');
    assert.equal(cnEvent.data.object.id, cn.json().id);
    assert.equal(cnEvent.data.object.total, 700);

    // void and mark uncollectible
    const inv3 = await openInvoice(cus, 300);
    const inv4 = await openInvoice(cus, 400);
    await clearDeliveries();
    assert.equal((await call('POST', `/v1/invoices/${inv3.id}/void`)).statusCode, 200);
    assert.equal((await call('POST', `/v1/invoices/${inv4.id}/mark_uncollectible`)).statusCode, 200);
    rows = await deliveries();
    assert.deepEqual(typesOf(rows), ['invoice.marked_uncollectible', 'invoice.voided']);
    assert.equal(
      JSON.parse(rows.find((r) => r.event_type === 'invoice.voided')?.payload ?? '{}').data.object.status,
      'void',
    );

    // the other org's endpoint got nothing from org A
    assert.equal((await deliveries(orgB)).length, 0);
  });

  it('a rolled-back finalize emits nothing (and a failing emit rolls the finalize back)', async () => {
    const cus = await customer();
    const draft = await call('POST', '/v1/invoices', 'owner', {
      customer: cus,
      currency: 'EUR',
      lines: [{ description: 'Work', quantity: '1', unit_amount: 999 }],
    });
    const id = draft.json().id as string;
    await clearDeliveries();
    // fail at commit, after the event was written in the same transaction
    await sql`CREATE FUNCTION test_fail() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'injected failure at commit'; END $$`.execute(t.db);
    await sql`CREATE CONSTRAINT TRIGGER test_fail_finalize AFTER UPDATE ON invoices DEFERRABLE INITIALLY DEFERRED
      FOR EACH ROW WHEN (NEW.status = 'open' AND NEW.total = 999) EXECUTE FUNCTION test_fail()`.execute(t.db);
    try {
      const r = await call('POST', `/v1/invoices/${id}/finalize`);
      assert.equal(r.statusCode, 500);
    } finally {
      await sql`DROP TRIGGER test_fail_finalize ON invoices`.execute(t.db);
    }
    assert.equal((await deliveries()).length, 0, 'no event from a rolled-back finalize');
    assert.equal((await call('GET', `/v1/invoices/${id}`)).json().status, 'draft');
    // the other way round: the emit itself fails, so the finalize does not happen
    await sql`CREATE TRIGGER test_fail_emit AFTER INSERT ON webhook_deliveries FOR EACH ROW
      WHEN (NEW.event_type = 'invoice.finalized') EXECUTE FUNCTION test_fail()`.execute(t.db);
    try {
      assert.equal((await call('POST', `/v1/invoices/${id}/finalize`)).statusCode, 500);
    } finally {
      await sql`DROP TRIGGER test_fail_emit ON webhook_deliveries`.execute(t.db);
    }
    const after = (await call('GET', `/v1/invoices/${id}`)).json();
    assert.equal(after.status, 'draft');
    assert.equal(after.number, null);
    // and with the triggers gone it finalizes and emits once
    assert.equal((await call('POST', `/v1/invoices/${id}/finalize`)).statusCode, 200);
    assert.deepEqual(typesOf(await deliveries()), ['invoice.finalized']);
  });

  it('an org without endpoints writes no delivery rows', async () => {
    const o = (await createOrg(t.db, { name: 'Quiet', baseCurrency: 'EUR' })).id;
    users[`${o}:owner`] = await addMember(t, o, 'owner', 'quiet');
    const c = await call('POST', '/v1/customers', 'owner', { name: 'Q', currency: 'EUR' }, o);
    const inv = await call(
      'POST',
      '/v1/invoices',
      'owner',
      {
        customer: c.json().id,
        currency: 'EUR',
        lines: [{ description: 'W', quantity: '1', unit_amount: 100 }],
      },
      o,
    );
    assert.equal(
      (await call('POST', `/v1/invoices/${inv.json().id}/finalize`, 'owner', undefined, o)).statusCode,
      200,
    );
    assert.equal((await deliveries(o)).length, 0);
  });
});

describe('delivery log and retry', () => {
  it('lists an endpoint’s deliveries, retries one, and keeps both to admins of the org', async () => {
    await sql`UPDATE webhook_endpoints SET enabled = false`.execute(t.db);
    await clearDeliveries();
    const e = await endpoint({ enabled_events: ['invoice.finalized'] });
    await openInvoice(await customer(), 100);
    const log = await call('GET', `/v1/webhook_endpoints/${e.id}/deliveries`);
    assert.equal(log.statusCode, 200, log.body);
    const [d] = log.json().data;
    assert.match(d.id, /^whd_[0-9a-z]{32}$/);
    assert.equal(d.status, 'pending');
    assert.equal(d.event.type, 'invoice.finalized');
    assert.equal(d.attempts, 0);
    assert.ok(!log.body.includes('whsec_'));
    // make it dead, then retry: pending again, due now
    await sql`UPDATE webhook_deliveries SET status = 'dead', attempts = 12, last_error = 'HTTP 500' WHERE id = ${d.id}`.execute(
      t.db,
    );
    const dead = await call('GET', `/v1/webhook_endpoints/${e.id}/deliveries?status=dead`);
    assert.equal(dead.json().data.length, 1);
    const retry = await call('POST', `/v1/webhook_deliveries/${d.id}/retry`);
    assert.equal(retry.statusCode, 200, retry.body);
    assert.equal(retry.json().status, 'pending');
    assert.ok(retry.json().next_attempt_at);
    // other org: 404; wrong role: 403
    assert.equal(
      (await call('POST', `/v1/webhook_deliveries/${d.id}/retry`, 'owner', undefined, orgB)).statusCode,
      404,
    );
    assert.equal(
      (await call('GET', `/v1/webhook_endpoints/${e.id}/deliveries`, 'finance_manager')).statusCode,
      403,
    );
    assert.equal((await call('POST', `/v1/webhook_deliveries/${d.id}/retry`, 'accountant')).statusCode, 403);
    // a delivery of a deleted endpoint cannot be retried
    await call('DELETE', `/v1/webhook_endpoints/${e.id}`);
    const gone = await sql<{
      status: string;
    }>`SELECT status FROM webhook_deliveries WHERE id = ${d.id}`.execute(t.db);
    assert.equal(gone.rows[0]?.status, 'dead');
    assert.equal((await call('POST', `/v1/webhook_deliveries/${d.id}/retry`)).statusCode, 409);
    assert.equal((await call('GET', `/v1/webhook_endpoints/${e.id}/deliveries`)).statusCode, 404);
  });

  it('the application role cannot see another org’s deliveries even with a forgetful query (RLS)', async () => {
    const r = await t.db.transaction().execute(async (tx) => {
      await sql`SELECT set_config('role', 'billvault_app', true), set_config('app.org_id', ${orgB}, true)`.execute(
        tx,
      );
      return sql<{ n: string }>`SELECT count(*) AS n FROM webhook_deliveries WHERE org_id = ${org}`.execute(
        tx,
      );
    });
    assert.equal(Number(r.rows[0]?.n), 0);
    const any = await sql<{
      n: string;
    }>`SELECT count(*) AS n FROM webhook_deliveries WHERE org_id = ${org}`.execute(t.db);
    assert.ok(Number(any.rows[0]?.n) > 0);
  });
});
