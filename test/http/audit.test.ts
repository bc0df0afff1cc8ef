import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { inOrg } from '../../src/adapters/db/index.js';
import { recordAudit } from '../../src/app/audit.js';
import { AuditSealer } from '../../src/app/audit-chain.js';
import { createOrg } from '../../src/app/orgs.js';
import type { Role } from '../../src/domain/permissions.js';
import type { BuiltApp } from '../../src/http/app.js';
import { actorHeader, addMember, buildBillingApp } from '../helpers/billing.js';
import { testKeyProvider } from '../helpers/crypto.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let t: TestDatabase;
let app: BuiltApp;
let orgA: string;
let orgB: string;
const users: Record<string, string> = {};

const get = (url: string, org: string, role: Role) =>
  app.inject({ method: 'GET', url, headers: actorHeader(org, role, users[`${org}:${role}`] ?? 'usr_x') });

before(async () => {
  t = await createTestDatabase();
  app = await buildBillingApp(t);
  orgA = (await createOrg(t.db, { name: 'Audit A', baseCurrency: 'EUR' })).id;
  orgB = (await createOrg(t.db, { name: 'Audit B', baseCurrency: 'EUR' })).id;
  for (const org of [orgA, orgB])
    for (const role of ['owner', 'auditor', 'viewer', 'sales_rep', 'accountant'] as Role[])
      users[`${org}:${role}`] = await addMember(t, org, role, role);
  for (let i = 0; i < 25; i++) {
    await inOrg(t.db, orgA, (tx) =>
      recordAudit(tx, {
        orgId: orgA,
        actor: { kind: 'user', id: i % 2 ? 'usr_odd' : 'usr_even' },
        action: i % 5 === 0 ? 'invoice.finalized' : 'invoice.created',
        target: { type: 'invoice', id: `inv_${i}` },
        outcome: 'success',
        details: { i },
      }),
    );
  }
  await inOrg(t.db, orgB, (tx) =>
    recordAudit(tx, {
      orgId: orgB,
      actor: { kind: 'user', id: 'usr_b' },
      action: 'invoice.created',
      target: { type: 'invoice', id: 'inv_b' },
      outcome: 'success',
    }),
  );
  await new AuditSealer(t.db, { keyProvider: testKeyProvider() }).sealAll();
});
after(async () => {
  await app.close();
  await t.drop();
});

describe('GET /v1/audit_events', () => {
  it('lists the org events newest first, with filters and keyset pagination', async () => {
    const r = await get('/v1/audit_events?action=invoice.created&limit=7', orgA, 'auditor');
    assert.equal(r.statusCode, 200, r.body);
    const page = r.json();
    assert.equal(page.object, 'list');
    assert.equal(page.data.length, 7);
    assert.equal(page.has_more, true);
    assert.ok(
      page.data.every(
        (e: { action: string; org_id: string }) => e.action === 'invoice.created' && e.org_id === orgA,
      ),
    );
    assert.ok(page.data[0].seq > page.data[6].seq, 'newest first');
    const seen = new Set<string>(page.data.map((e: { id: string }) => e.id));
    let cursor = page.data.at(-1).id;
    for (;;) {
      const next = (
        await get(`/v1/audit_events?action=invoice.created&limit=7&starting_after=${cursor}`, orgA, 'auditor')
      ).json();
      for (const e of next.data) {
        assert.ok(!seen.has(e.id));
        seen.add(e.id);
      }
      if (!next.has_more) break;
      cursor = next.data.at(-1).id;
    }
    assert.equal(seen.size, 20);
    const byTarget = (
      await get('/v1/audit_events?target_type=invoice&target_id=inv_3', orgA, 'owner')
    ).json();
    assert.equal(byTarget.data.length, 1);
    assert.equal(byTarget.data[0].actor.id, 'usr_odd');
    assert.match(byTarget.data[0].content_hash, /^[0-9a-f]{64}$/);
    const byActor = (await get('/v1/audit_events?actor_id=usr_even&limit=100', orgA, 'auditor')).json();
    assert.equal(byActor.data.length, 13);
    const future = (await get('/v1/audit_events?from=2999-01-01T00:00:00Z', orgA, 'auditor')).json();
    assert.equal(future.data.length, 0);
    const past = (await get('/v1/audit_events?to=2000-01-01T00:00:00Z', orgA, 'auditor')).json();
    assert.equal(past.data.length, 0);
  });

  it('never shows another org: its event ids are 404 cursors and its events are absent', async () => {
    const b = (await get('/v1/audit_events', orgB, 'auditor')).json();
    const bEvent = b.data.find((e: { action: string }) => e.action === 'invoice.created');
    assert.ok(bEvent);
    const r = await get(`/v1/audit_events?starting_after=${bEvent.id}`, orgA, 'auditor');
    assert.equal(r.statusCode, 404);
    const other = (await get('/v1/audit_events?target_id=inv_b', orgA, 'auditor')).json();
    assert.equal(other.data.length, 0);
  });

  it('is for audit:read only (403 for others, and the denial is audited)', async () => {
    for (const role of ['viewer', 'sales_rep', 'accountant'] as Role[]) {
      assert.equal((await get('/v1/audit_events', orgA, role)).statusCode, 403, role);
      assert.equal((await get('/v1/audit/verify', orgA, role)).statusCode, 403, role);
    }
    const denied = await sql<{ n: number }>`SELECT count(*)::int AS n FROM audit_events
      WHERE org_id = ${orgA} AND outcome = 'denied'`.execute(t.db);
    assert.ok((denied.rows[0]?.n ?? 0) >= 6);
  });

  it('rejects malformed filters with 422', async () => {
    assert.equal((await get('/v1/audit_events?from=yesterday', orgA, 'auditor')).statusCode, 422);
    assert.equal((await get('/v1/audit_events?limit=500', orgA, 'auditor')).statusCode, 422);
  });
});

describe('GET /v1/audit/verify', () => {
  it('verifies the caller org chain, and reports the first bad seq after tampering', async () => {
    const ok = await get('/v1/audit/verify', orgA, 'auditor');
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(ok.json().ok, true, ok.body);
    assert.equal(ok.json().chain_id, orgA);
    const seq3 = await sql<{
      event_id: string;
    }>`SELECT event_id FROM audit_chain WHERE chain_id = ${orgA} AND seq = 3`.execute(t.db);
    await sql`ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update`.execute(t.db);
    try {
      await sql`UPDATE audit_events SET actor_id = 'usr_someone_else' WHERE id = ${seq3.rows[0]?.event_id ?? ''}`.execute(
        t.db,
      );
    } finally {
      await sql`ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update`.execute(t.db);
    }
    const bad = (await get('/v1/audit/verify', orgA, 'owner')).json();
    assert.equal(bad.ok, false);
    assert.equal(bad.first_bad_seq, 3);
    assert.equal(bad.problems[0].kind, 'content_changed');
    // The other org's chain is untouched and its verification says so.
    assert.equal((await get('/v1/audit/verify', orgB, 'auditor')).json().ok, true);
  });
});
