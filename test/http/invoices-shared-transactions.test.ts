/**
 * Finalisations that queue share a transaction (src/app/tx-batch.ts). Through the API, with the
 * queue forced (the series' counter is held by another transaction until every request waits),
 * each request's outcome must be exactly what it would have been alone: gap-free numbers, its
 * own ledger entry, audit events and webhook events, and a refused request (another org's
 * customer, an archived customer, an invoice no longer a draft, a bad fx_rate) refused with its
 * own error, leaving nothing, while the requests it shared a transaction with are written.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { inOrg } from '../../src/adapters/db/index.js';
import { parseAllowList } from '../../src/adapters/net/ssrf.js';
import { DEFAULT_PATTERNS, takeSequence } from '../../src/app/invoices.js';
import { createOrg } from '../../src/app/orgs.js';
import { systemClock } from '../../src/app/ports.js';
import { batcherOf } from '../../src/app/tx-batch.js';
import { sequenceScope } from '../../src/domain/numbering.js';
import type { Role } from '../../src/domain/permissions.js';
import type { BuiltApp } from '../../src/http/app.js';
import { buildTestApp } from '../helpers/app.js';
import { actorHeader, addMember, headerActor } from '../helpers/billing.js';
import { testCipher } from '../helpers/crypto.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { deferred, numberingWaiters, until } from '../helpers/wait.js';

let t: TestDatabase;
let app: BuiltApp;
let org: string;
let orgB: string;
const users: Record<string, string> = {};
let customer: string;
let archived: string;
let otherOrgCustomer: string;

const as = (role: Role, o = org) => actorHeader(o, role, users[`${o}:${role}`] ?? 'usr_none');
const post = (url: string, payload: object, role: Role = 'owner', o = org) =>
  app.inject({ method: 'POST', url, headers: as(role, o), payload });

const invoiceBody = (c: string, amount: number, finalize = true) => ({
  customer: c,
  currency: 'EUR',
  lines: [{ description: 'Work', quantity: '1', unit_amount: amount }],
  ...(finalize ? { finalize: true } : {}),
});

let releaseHold: (() => void) | undefined;
afterEach(() => releaseHold?.());

/**
 * Takes the org's next invoice number in a transaction of its own and keeps it open: every
 * finalisation waits behind it. `release` rolls it back (its number is the next one's).
 */
async function holdInvoiceNumbers() {
  const taken = deferred();
  const release = deferred();
  releaseHold = release.resolve;
  const done = inOrg(t.db, org, async (tx) => {
    const today = new Date().toISOString().slice(0, 10);
    await takeSequence(tx, org, 'invoice', sequenceScope(DEFAULT_PATTERNS.invoice, today));
    taken.resolve();
    await release.promise;
    throw new Error('rolled back on purpose');
  }).catch((e: Error) => {
    if (e.message !== 'rolled back on purpose') throw e;
  });
  await taken.promise;
  return {
    release: () => {
      releaseHold = undefined;
      release.resolve();
    },
    done,
  };
}

before(async () => {
  t = await createTestDatabase();
  const authenticate = async (req: { headers: Record<string, unknown> }) =>
    headerActor(req.headers['x-test-actor'] as string | undefined);
  app = await buildTestApp(t, {
    authenticate,
    billing: { db: t.db, cipher: testCipher(), clock: systemClock },
    webhooks: { ssrf: { devMode: true, allow: parseAllowList('') } },
  });
  org = (await createOrg(t.db, { name: 'Shared A', baseCurrency: 'EUR' })).id;
  orgB = (await createOrg(t.db, { name: 'Shared B', baseCurrency: 'EUR' })).id;
  for (const o of [org, orgB]) users[`${o}:owner`] = await addMember(t, o, 'owner', 'owner');
  const make = async (name: string, o = org) => {
    const r = await post('/v1/customers', { name, email: `${name.toLowerCase()}@example.com` }, 'owner', o);
    assert.equal(r.statusCode, 200, r.body);
    return r.json().id as string;
  };
  customer = await make('Ada');
  archived = await make('Gone');
  otherOrgCustomer = await make('Elsewhere', orgB);
  assert.equal((await post(`/v1/customers/${archived}/archive`, {})).statusCode, 200);
  const hook = await post('/v1/webhook_endpoints', { url: 'http://127.0.0.1:9/hook', enabled_events: ['*'] });
  assert.equal(hook.statusCode, 200, hook.body);
});
after(async () => {
  await app.close();
  await t.drop();
});

describe('finalisations sharing a transaction, through the API', () => {
  it('each request gets its own outcome; numbers stay gap-free; refusals leave nothing', async () => {
    // Drafts to finalise with POST /v1/invoices/:id/finalize, one of them finalised already.
    const drafts: string[] = [];
    for (let i = 0; i < 7; i++) {
      const r = await post('/v1/invoices', invoiceBody(customer, 500 + i, false));
      assert.equal(r.statusCode, 200, r.body);
      drafts.push(r.json().id);
    }
    const done = drafts.pop() as string;
    const fxDraft = drafts.pop() as string;
    const first = await post(`/v1/invoices/${done}/finalize`, {});
    assert.equal(first.statusCode, 200, first.body);
    assert.equal(first.json().number.slice(-6), '000001');
    const invoicesBefore = await countInvoices();

    const hold = await holdInvoiceNumbers();
    const requests: { label: string; expect: number; reply: ReturnType<typeof post> }[] = [];
    const add = (label: string, expect: number, reply: ReturnType<typeof post>) =>
      requests.push({ label, expect, reply });
    for (let i = 0; i < 14; i++)
      add(`create ${i}`, 200, post('/v1/invoices', invoiceBody(customer, 1000 + i)));
    // covered at once (nothing to pay): paid on finalisation, invoice.paid in the same transaction
    for (let i = 0; i < 2; i++) add(`zero ${i}`, 200, post('/v1/invoices', invoiceBody(customer, 0)));
    for (const id of drafts) add(`finalize ${id}`, 200, post(`/v1/invoices/${id}/finalize`, {}));
    add('other org customer', 404, post('/v1/invoices', invoiceBody(otherOrgCustomer, 700)));
    add('archived customer', 422, post('/v1/invoices', invoiceBody(archived, 700)));
    add('no longer a draft', 409, post(`/v1/invoices/${done}/finalize`, {}));
    add('fx_rate in the base currency', 422, post(`/v1/invoices/${fxDraft}/finalize`, { fx_rate: '1.1' }));
    // Every request is queued (the first transactions wait on the held counter, the rest wait
    // to share the next ones) before the counter is let go.
    const b = batcherOf(t.db);
    const counts0 = { ...b.counts };
    await until(() => b.callers(org) === requests.length, 'every request queued');
    await until(async () => (await numberingWaiters(t)) >= 1, 'a transaction waiting for a number');
    hold.release();
    await hold.done;
    const replies = await Promise.all(requests.map(async (r) => ({ ...r, res: await r.reply })));

    for (const r of replies) assert.equal(r.res.statusCode, r.expect, `${r.label}: ${r.res.body}`);
    const codes = Object.fromEntries(
      replies.filter((r) => r.expect !== 200).map((r) => [r.label, r.res.json().error.code]),
    );
    assert.deepEqual(codes, {
      'other org customer': 'not_found',
      'archived customer': 'validation_failed',
      'no longer a draft': 'invoice_not_draft',
      'fx_rate in the base currency': 'validation_failed',
    });
    // The queue did form, and the requests shared transactions.
    assert.ok(b.counts.shared - counts0.shared >= 1, JSON.stringify(b.counts));
    assert.ok(b.counts.sharedCallers - counts0.sharedCallers >= 4, JSON.stringify(b.counts));

    // Numbers 2..N+1: gap-free, no duplicate (the held number was rolled back and reused).
    const ok = replies.filter((r) => r.expect === 200).map((r) => r.res.json());
    const numbers = ok.map((i) => Number(i.number.slice(-6))).sort((x, y) => x - y);
    assert.deepEqual(
      numbers,
      Array.from({ length: ok.length }, (_, i) => i + 2),
    );
    // Exactly the successful creations were written (the refused one wrote no invoice).
    assert.equal(await countInvoices(), invoicesBefore + 16);
    assert.equal(await countInvoices(orgB), 0);

    for (const inv of ok) {
      const zero = inv.total === 0;
      assert.equal(inv.status, zero ? 'paid' : 'open', inv.id);
      const audit = await rows<{ action: string }>(
        sql`SELECT action FROM audit_events WHERE target_id = ${inv.id} ORDER BY action`,
      );
      assert.deepEqual(
        audit.map((a) => a.action),
        ['invoice.created', 'invoice.finalized'],
        inv.id,
      );
      const entries = await rows<{ n: number }>(
        sql`SELECT count(*)::int AS n FROM journal_entries WHERE reference = ${inv.id} AND kind = 'invoice_finalized'`,
      );
      // (nothing to post for an invoice of 0.00)
      assert.equal(entries[0]?.n, zero ? 0 : 1, `the ledger entries of ${inv.id}`);
      const events = await rows<{ event_type: string; payload: string }>(
        sql`SELECT event_type, payload FROM webhook_deliveries
             WHERE org_id = ${org} AND payload::jsonb -> 'data' -> 'object' ->> 'id' = ${inv.id}
               AND event_type IN ('invoice.finalized', 'invoice.paid')
             ORDER BY event_type`,
      );
      assert.deepEqual(
        events.map((e) => e.event_type),
        zero ? ['invoice.finalized', 'invoice.paid'] : ['invoice.finalized'],
        inv.id,
      );
      for (const e of events)
        assert.equal(
          JSON.parse(e.payload).data.object.number,
          inv.number,
          'the event carries its own number',
        );
    }
    // The refused finalisations changed nothing: the draft is still a draft, the other not refinalised.
    const draft = await app.inject({ method: 'GET', url: `/v1/invoices/${fxDraft}`, headers: as('owner') });
    assert.equal(draft.json().status, 'draft');
    assert.equal(draft.json().number, null);
    const again = await app.inject({ method: 'GET', url: `/v1/invoices/${done}`, headers: as('owner') });
    assert.equal(again.json().number, first.json().number);
    const verify = await app.inject({ method: 'GET', url: '/v1/ledger/verify', headers: as('owner') });
    assert.equal(verify.json().ok, true, JSON.stringify(verify.json().problems));
  });
});

async function rows<R>(q: ReturnType<typeof sql<R>>): Promise<R[]> {
  return (await q.execute(t.db)).rows;
}

async function countInvoices(o = org): Promise<number> {
  const r = await sql<{ n: number }>`SELECT count(*)::int AS n FROM invoices WHERE org_id = ${o}`.execute(
    t.db,
  );
  return r.rows[0]?.n ?? 0;
}
