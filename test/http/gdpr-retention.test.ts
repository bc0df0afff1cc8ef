import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createLogger } from '../../src/adapters/log/logger.js';
import { recordAudit } from '../../src/app/audit.js';
import { systemCtx } from '../../src/app/context.js';
import { createOrg } from '../../src/app/orgs.js';
import { systemClock } from '../../src/app/ports.js';
import { eraseCustomer } from '../../src/app/privacy.js';
import { type RetentionReport, runRetention } from '../../src/app/retention.js';
import { newId } from '../../src/domain/ids.js';
import type { BuiltApp } from '../../src/http/app.js';
import { scheduleRetention } from '../../src/main/server.js';
import { buildTestApp } from '../helpers/app.js';
import { actorHeader, addMember, headerActor } from '../helpers/billing.js';
import { testCipher } from '../helpers/crypto.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/**
 * Retention: each policy removes exactly the rows past it and nothing else; a dry run counts
 * the same rows and changes nothing; audit events are reported, never deleted; another org's
 * stale data is untouched by this org's run.
 */

let t: TestDatabase;
let app: BuiltApp;
let org: string;
let orgB: string;
const owner: Record<string, string> = {};
const cipher = testCipher();
const deps = () => ({ db: t.db, cipher, clock: systemClock });
const DAY = 86_400_000;
const now = Date.now();
const ago = (days: number) => new Date(now - days * DAY);

async function post(o: string, url: string, payload: object) {
  const r = await app.inject({
    method: 'POST',
    url,
    headers: actorHeader(o, 'owner', owner[o] ?? ''),
    payload,
  });
  assert.ok(r.statusCode < 300, `${url}: ${r.body}`);
  return r.json().id as string;
}

async function session(o: string, expires: Date, revoked: Date | null): Promise<string> {
  const id = newId('session');
  await sql`INSERT INTO sessions (org_id, id, user_id, token_hash, created_at, last_seen_at, authenticated_at,
      expires_at, idle_seconds, mfa, revoked_at)
    VALUES (${o}, ${id}, ${owner[o]}, ${randomBytes(32).toString('hex')}, ${ago(60)}, ${ago(60)}, ${ago(60)},
      ${expires}, 900, false, ${revoked})`.execute(t.db);
  return id;
}

async function idem(o: string, created: Date): Promise<string> {
  const key = `k-${randomBytes(6).toString('hex')}`;
  await sql`INSERT INTO idempotency_keys (org_id, key, actor_id, request_hash, status, created_at)
    VALUES (${o}, ${key}, 'usr_x', ${randomBytes(32).toString('hex')}, 'in_progress', ${created})`.execute(
    t.db,
  );
  return key;
}

interface Seed {
  sessions: { old: string; oldRevoked: string; recent: string; live: string };
  drafts: { old: string; fresh: string; issued: string };
  quotes: { oldDraft: string; oldSent: string; fresh: string };
  idem: { old: string; fresh: string };
  retained: { past: string; kept: string };
}

async function seed(o: string): Promise<Seed> {
  const customer = () => post(o, '/v1/customers', { name: 'Retention Person', currency: 'EUR' });
  const draft = async () =>
    post(o, '/v1/invoices', {
      customer: await customer(),
      currency: 'EUR',
      lines: [{ description: 'x', quantity: '1', unit_amount: 100 }],
    });
  const issued = async (issue_date: string) => {
    const c = await customer();
    const id = await post(o, '/v1/invoices', {
      customer: c,
      currency: 'EUR',
      lines: [{ description: 'x', quantity: '1', unit_amount: 100 }],
    });
    await post(o, `/v1/invoices/${id}/finalize`, { issue_date });
    return { c, id };
  };
  const quote = async () =>
    post(o, '/v1/quotes', {
      customer: await customer(),
      currency: 'EUR',
      lines: [{ description: 'q', quantity: '1', unit_amount: 100 }],
    });
  const s: Seed = {
    sessions: {
      old: await session(o, ago(40), null),
      oldRevoked: await session(o, new Date(now + DAY), ago(40)),
      recent: await session(o, ago(5), null),
      live: await session(o, new Date(now + DAY), null),
    },
    drafts: { old: await draft(), fresh: await draft(), issued: (await issued('2026-01-15')).id },
    quotes: { oldDraft: await quote(), oldSent: await quote(), fresh: await quote() },
    idem: {
      old: await idem(o, new Date(now - 48 * 3_600_000)),
      fresh: await idem(o, new Date(now - 3_600_000)),
    },
    retained: { past: '', kept: '' },
  };
  await post(o, `/v1/quotes/${s.quotes.oldSent}/send`, {});
  await sql`UPDATE invoices SET updated_at = ${ago(400)} WHERE id IN (${s.drafts.old}, ${s.drafts.issued})`.execute(
    t.db,
  );
  await sql`UPDATE quotes SET updated_at = ${ago(400)} WHERE id IN (${s.quotes.oldDraft}, ${s.quotes.oldSent})`.execute(
    t.db,
  );
  // two erased customers: one invoice issued in 2010 (kept until 2020: past), one in 2026 (until 2036)
  const past = await issued('2010-06-30');
  const kept = await issued('2026-02-01');
  for (const c of [past.c, kept.c]) await eraseCustomer(deps(), systemCtx(o), c, 'data_subject_request');
  s.retained = { past: past.id, kept: kept.id };
  // an audit event from 11 years ago, and an archived customer from 12 years ago
  await t.db.transaction().execute((tx) =>
    recordAudit(tx, {
      orgId: o,
      actor: { kind: 'system', id: 'system' },
      action: 'test.ancient',
      outcome: 'success',
      occurredAt: new Date(now - 11 * 366 * DAY),
    }),
  );
  const old = await customer();
  await sql`UPDATE customers SET archived_at = ${new Date(now - 12 * 366 * DAY)} WHERE id = ${old}`.execute(
    t.db,
  );
  return s;
}

/** Everything retention may touch, as row identities. */
async function state(o: string) {
  const ids = async (q: ReturnType<typeof sql<{ id: string }>>) =>
    (await q.execute(t.db)).rows.map((r) => r.id).sort();
  return {
    sessions: await ids(sql<{ id: string }>`SELECT id FROM sessions WHERE org_id = ${o}`),
    invoices: await ids(sql<{ id: string }>`SELECT id FROM invoices WHERE org_id = ${o}`),
    quotes: await ids(sql<{ id: string }>`SELECT id FROM quotes WHERE org_id = ${o}`),
    idem: await ids(sql<{ id: string }>`SELECT key AS id FROM idempotency_keys WHERE org_id = ${o}`),
    retained: await ids(
      sql<{
        id: string;
      }>`SELECT invoice_id || ':' || (details_enc IS NULL)::text AS id FROM retained_buyer_details WHERE org_id = ${o}`,
    ),
    keys: await ids(
      sql<{
        id: string;
      }>`SELECT id || ':' || status AS id FROM org_data_keys WHERE org_id = ${o} AND subject_type = 'retention'`,
    ),
    audit: Number(
      (
        await sql<{
          n: string;
        }>`SELECT count(*)::text AS n FROM audit_events WHERE org_id = ${o} AND action <> 'retention.run'`.execute(
          t.db,
        )
      ).rows[0]?.n,
    ),
  };
}

const counts = (r: RetentionReport) => Object.fromEntries(r.classes.map((c) => [c.class, c.count]));

before(async () => {
  t = await createTestDatabase();
  org = (await createOrg(t.db, { name: 'Retention Org', baseCurrency: 'EUR' })).id;
  orgB = (await createOrg(t.db, { name: 'Other Org', baseCurrency: 'EUR' })).id;
  owner[org] = await addMember(t, org, 'owner', 'o');
  owner[orgB] = await addMember(t, orgB, 'owner', 'b');
  // the app and the use cases called directly share one cipher (one master key)
  app = await buildTestApp(t, {
    authenticate: async (r) => headerActor(r.headers['x-test-actor'] as string | undefined),
    billing: deps(),
  });
});
after(async () => {
  await app.close();
  await t.drop();
});

describe('retention run', () => {
  it('a dry run counts exactly what a run removes, and changes nothing', async () => {
    const s = await seed(org);
    await seed(orgB);
    const beforeA = await state(org);
    const beforeB = await state(orgB);
    const dry = await runRetention(deps(), org, { dryRun: true });
    assert.equal(dry.dry_run, true);
    const expected = {
      sessions: 2,
      draft_invoices: 1,
      draft_quotes: 1,
      idempotency_keys: 1,
      restricted_buyer_details: 1,
      retention_keys: 1,
      audit_events: 1,
      archived_customers: 1,
    };
    assert.deepEqual(counts(dry), expected);
    assert.deepEqual(await state(org), beforeA);

    const run = await runRetention(deps(), org, { dryRun: false });
    assert.deepEqual(counts(run), expected);
    const afterA = await state(org);
    const gone = (k: 'sessions' | 'invoices' | 'quotes' | 'idem') =>
      beforeA[k].filter((id) => !afterA[k].includes(id)).sort();
    assert.deepEqual(gone('sessions'), [s.sessions.old, s.sessions.oldRevoked].sort());
    assert.deepEqual(gone('invoices'), [s.drafts.old]);
    assert.deepEqual(gone('quotes'), [s.quotes.oldDraft]);
    assert.deepEqual(gone('idem'), [s.idem.old]);
    for (const id of [s.sessions.recent, s.sessions.live]) assert.ok(afterA.sessions.includes(id));
    for (const id of [s.drafts.fresh, s.drafts.issued]) assert.ok(afterA.invoices.includes(id));
    for (const id of [s.quotes.oldSent, s.quotes.fresh]) assert.ok(afterA.quotes.includes(id));
    // restricted details past retain_until are purged, the rest kept; the 2020 key is destroyed
    assert.ok(afterA.retained.includes(`${s.retained.past}:true`));
    assert.ok(afterA.retained.includes(`${s.retained.kept}:false`));
    assert.equal(afterA.keys.filter((k) => k.endsWith(':destroyed')).length, 1);
    const y2020 = await sql<{ status: string }>`SELECT status FROM org_data_keys
      WHERE org_id = ${org} AND subject_type = 'retention' AND subject_id = 'y2020'`.execute(t.db);
    assert.deepEqual(
      y2020.rows.map((r) => r.status),
      ['destroyed'],
    );
    // audit events are reported, never deleted
    assert.equal(afterA.audit, beforeA.audit);
    // the other org is untouched
    assert.deepEqual(await state(orgB), beforeB);
    // each run is audited with its counts (the dry run too)
    const ev = await sql<{ details: { dry_run: boolean; counts: Record<string, number> } }>`
      SELECT details FROM audit_events WHERE org_id = ${org} AND action = 'retention.run' ORDER BY occurred_at`.execute(
      t.db,
    );
    assert.deepEqual(
      ev.rows.map((r) => r.details.dry_run),
      [true, false],
    );
    assert.deepEqual(ev.rows[1]?.details.counts, expected);
    // a second run finds nothing left to remove
    const again = counts(await runRetention(deps(), org, { dryRun: false }));
    for (const k of [
      'sessions',
      'draft_invoices',
      'draft_quotes',
      'idempotency_keys',
      'restricted_buyer_details',
    ])
      assert.equal(again[k], 0, k);
    // the invoice whose buyer details were purged still shows its totals; the ledger verifies
    const inv = await app.inject({
      method: 'GET',
      url: `/v1/invoices/${s.retained.past}/buyer`,
      headers: actorHeader(org, 'owner', owner[org] ?? ''),
    });
    assert.equal(inv.statusCode, 200, inv.body);
    assert.deepEqual(
      { restricted: inv.json().restricted, purged: inv.json().purged, details: inv.json().details },
      { restricted: true, purged: true, details: null },
    );
    const ledger = await app.inject({
      method: 'GET',
      url: '/v1/ledger/verify',
      headers: actorHeader(org, 'owner', owner[org] ?? ''),
    });
    assert.equal(ledger.json().ok, true, ledger.body);
  });

  it('org settings change the policies; out-of-range values fall back to the default', async () => {
    const o = (await createOrg(t.db, { name: 'Settings Org', baseCurrency: 'EUR' })).id;
    owner[o] = await addMember(t, o, 'owner', 's');
    const s1 = await session(o, ago(10), null);
    await session(o, ago(40), null);
    const put = (key: string, value: unknown) =>
      app.inject({
        method: 'PUT',
        url: `/v1/settings/${key}`,
        headers: actorHeader(o, 'owner', owner[o] ?? ''),
        payload: { value },
      });
    assert.equal((await put('retention.sessions_days', 7)).statusCode, 200);
    assert.equal(counts(await runRetention(deps(), o, { dryRun: true })).sessions, 2);
    await put('retention.sessions_days', -3);
    assert.equal(counts(await runRetention(deps(), o, { dryRun: true })).sessions, 1);
    await put('retention.sessions_days', 'DROP TABLE sessions');
    const r = await runRetention(deps(), o, { dryRun: false });
    assert.equal(counts(r).sessions, 1);
    const left = await sql<{ id: string }>`SELECT id FROM sessions WHERE org_id = ${o}`.execute(t.db);
    assert.deepEqual(
      left.rows.map((x) => x.id),
      [s1],
    );
  });

  it('serve runs retention on a schedule and stops cleanly', async () => {
    const o = (await createOrg(t.db, { name: 'Scheduled Org', baseCurrency: 'EUR' })).id;
    owner[o] = await addMember(t, o, 'owner', 'sch');
    const stale = await session(o, ago(90), null);
    const runs = async () =>
      Number(
        (
          await sql<{ n: string }>`SELECT count(*)::text AS n FROM audit_events
            WHERE org_id = ${o} AND action = 'retention.run'`.execute(t.db)
        ).rows[0]?.n,
      );
    const job = scheduleRetention(createLogger('silent'), deps(), 24, 0);
    try {
      while ((await runs()) === 0) await new Promise((r) => setTimeout(r, 20));
    } finally {
      job.stop();
    }
    const left = await sql<{ id: string }>`SELECT id FROM sessions WHERE id = ${stale}`.execute(t.db);
    assert.equal(left.rows.length, 0);
    assert.equal(await runs(), 1);
  });
});
