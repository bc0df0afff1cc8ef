import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createOrg } from '../../src/app/orgs.js';
import { newId } from '../../src/domain/ids.js';
import type { Role } from '../../src/domain/permissions.js';
import type { BuiltApp } from '../../src/http/app.js';
import { actorHeader, addMember, buildBillingApp } from '../helpers/billing.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let t: TestDatabase;
let app: BuiltApp;
let orgA: string;
let orgB: string;
const users: Record<string, string> = {};

const as = (org: string, role: Role, user = users[`${org}:${role}`] ?? 'usr_x') =>
  actorHeader(org, role, user);
const member = (org: string, role: Role, name: string) => addMember(t, org, role, name);

const JANE = {
  name: 'Jane Q. Customer',
  legal_name: 'Jane Customer Consulting GmbH',
  display_name: 'Key account 77',
  email: 'Jane.Customer@Example.org',
  cc_emails: ['accounts@example.org'],
  phone: '+49 30 901820',
  address: { line1: 'Unter den Linden 77', city: 'Berlin', postal_code: '10117', country: 'DE' },
  tax_id: 'DE 123 456 789',
  currency: 'eur',
  language: 'de',
  payment_terms_days: 14,
  notes: 'Prefers paper invoices',
  metadata: { crm_id: 'A-77' },
};

before(async () => {
  t = await createTestDatabase();
  orgA = (await createOrg(t.db, { name: 'A', baseCurrency: 'EUR' })).id;
  orgB = (await createOrg(t.db, { name: 'B', baseCurrency: 'EUR' })).id;
  for (const role of ['owner', 'viewer', 'auditor', 'accountant'] as const)
    users[`${orgA}:${role}`] = await member(orgA, role, role);
  users[`${orgA}:sales_rep`] = await member(orgA, 'sales_rep', 'rep1');
  users.rep2 = await member(orgA, 'sales_rep', 'rep2');
  users[`${orgB}:owner`] = await member(orgB, 'owner', 'bowner');
  app = await buildBillingApp(t);
});
after(async () => {
  await app.close();
  await t.drop();
});

async function create(org: string, role: Role, body: Record<string, unknown>, user?: string) {
  return app.inject({ method: 'POST', url: '/v1/customers', headers: as(org, role, user), payload: body });
}

describe('customers', () => {
  let janeId: string;

  it('creates a customer and returns it decrypted', async () => {
    const r = await create(orgA, 'owner', JANE);
    assert.equal(r.statusCode, 200, r.body);
    const c = r.json();
    janeId = c.id;
    assert.match(c.id, /^cus_[0-9a-z]{32}$/);
    assert.equal(c.object, 'customer');
    assert.equal(c.name, JANE.name);
    assert.equal(c.email, 'jane.customer@example.org');
    assert.equal(c.currency, 'EUR');
    assert.deepEqual(c.address, JANE.address);
    assert.equal(c.tax_id, JANE.tax_id);
    assert.equal(c.pii_masked, false);
    assert.equal(c.payment_terms_days, 14);
  });

  it('stores no plaintext PII: a direct SQL read shows only ciphertexts and blind indexes', async () => {
    const raw = await sql<Record<string, unknown>>`SELECT * FROM customers WHERE id = ${janeId}`.execute(
      t.db,
    );
    const text = JSON.stringify(raw.rows[0]).toLowerCase();
    for (const secret of [
      'jane',
      'customer consulting',
      'example.org',
      '901820',
      'linden',
      'berlin',
      '123 456',
      '123456',
      'paper',
    ]) {
      assert.ok(!text.includes(secret), `plaintext "${secret}" found in the row`);
    }
    assert.match(String(raw.rows[0]?.name_enc), /^bv1:dk_/);
    assert.equal(raw.rows[0]?.display_name, 'Key account 77'); // the non-sensitive label, by design
  });

  it('reads it back, and the PII read is audited without PII in the event', async () => {
    const r = await app.inject({
      method: 'GET',
      url: `/v1/customers/${janeId}`,
      headers: as(orgA, 'accountant'),
    });
    assert.equal(r.statusCode, 200);
    assert.equal(r.json().phone, JANE.phone);
    const ev = await sql<Record<string, unknown>>`
      SELECT * FROM audit_events WHERE action = 'customer.pii_read' AND target_id = ${janeId}`.execute(t.db);
    assert.equal(ev.rows.length, 1);
    assert.equal(ev.rows[0]?.actor_id, users[`${orgA}:accountant`]);
    assert.doesNotMatch(JSON.stringify(ev.rows), /jane|berlin|901820/i);
  });

  it('finds by exact email and tax id through blind indexes, and by display-name prefix', async () => {
    const byEmail = await app.inject({
      method: 'GET',
      url: `/v1/customers?email=${encodeURIComponent('  JANE.customer@example.ORG ')}`,
      headers: as(orgA, 'owner'),
    });
    assert.deepEqual(
      byEmail.json().data.map((c: { id: string }) => c.id),
      [janeId],
    );
    const byTax = await app.inject({
      method: 'GET',
      url: '/v1/customers?tax_id=DE123456789',
      headers: as(orgA, 'owner'),
    });
    assert.deepEqual(
      byTax.json().data.map((c: { id: string }) => c.id),
      [janeId],
    );
    const byPrefix = await app.inject({
      method: 'GET',
      url: '/v1/customers?display_name_prefix=KEY%20acc',
      headers: as(orgA, 'owner'),
    });
    assert.equal(byPrefix.json().data.length, 1);
    const wildcard = await app.inject({
      method: 'GET',
      url: '/v1/customers?display_name_prefix=%25',
      headers: as(orgA, 'owner'),
    });
    assert.equal(wildcard.json().data.length, 0, 'LIKE wildcards are escaped');
    const none = await app.inject({
      method: 'GET',
      url: '/v1/customers?email=nobody@example.org',
      headers: as(orgA, 'owner'),
    });
    assert.deepEqual(none.json(), { object: 'list', data: [], has_more: false });
  });

  it('masks PII for roles without customers:read_pii and does not log a PII read for them', async () => {
    for (const role of ['viewer', 'auditor'] as const) {
      const r = await app.inject({ method: 'GET', url: `/v1/customers/${janeId}`, headers: as(orgA, role) });
      if (role === 'auditor') {
        assert.equal(r.statusCode, 403); // auditors read the audit log, ledger and reports, not customers
        continue;
      }
      assert.equal(r.statusCode, 200);
      const c = r.json();
      assert.equal(c.pii_masked, true);
      assert.equal(c.name, 'J*** Q*** C***');
      assert.equal(c.email, 'j***@e***.org');
      assert.equal(c.phone, '***20');
      assert.equal(c.tax_id, '***789');
      assert.equal(c.notes, '***');
      assert.equal(c.address.country, 'DE');
      assert.doesNotMatch(r.body, /Jane|Berlin|Linden|901820|paper/);
    }
    const ev = await sql<{ n: string }>`
      SELECT count(*)::text AS n FROM audit_events WHERE action = 'customer.pii_read' AND actor_id = ${users[`${orgA}:viewer`]}`.execute(
      t.db,
    );
    assert.equal(ev.rows[0]?.n, '0');
  });

  it('never shows another org its customers (404, not 403)', async () => {
    for (const [method, url] of [
      ['GET', `/v1/customers/${janeId}`],
      ['PATCH', `/v1/customers/${janeId}`],
      ['POST', `/v1/customers/${janeId}/archive`],
    ] as const) {
      const r = await app.inject({
        method,
        url,
        headers: as(orgB, 'owner'),
        ...(method === 'PATCH' ? { payload: { notes: 'x' } } : {}),
      });
      assert.equal(r.statusCode, 404, `${method} ${url}`);
    }
    const list = await app.inject({ method: 'GET', url: '/v1/customers', headers: as(orgB, 'owner') });
    assert.equal(list.json().data.length, 0);
    const byEmail = await app.inject({
      method: 'GET',
      url: `/v1/customers?email=${encodeURIComponent(JANE.email)}`,
      headers: as(orgB, 'owner'),
    });
    assert.equal(byEmail.json().data.length, 0, 'blind indexes are per org');
  });

  it('limits a sales rep to the customers assigned to them', async () => {
    const rep1 = users[`${orgA}:sales_rep`];
    const mine = await create(orgA, 'sales_rep', { name: 'Rep One Client' });
    assert.equal(mine.statusCode, 200, mine.body);
    assert.equal(mine.json().owner_user, rep1, 'a rep owns what they create');
    const theirs = await create(orgA, 'sales_rep', { name: 'Rep Two Client' }, users.rep2);
    const theirsId = theirs.json().id;

    const seen = await app.inject({ method: 'GET', url: '/v1/customers', headers: as(orgA, 'sales_rep') });
    assert.deepEqual(
      seen.json().data.map((c: { id: string }) => c.id),
      [mine.json().id],
    );
    for (const [method, url] of [
      ['GET', `/v1/customers/${theirsId}`],
      ['GET', `/v1/customers/${janeId}`],
      ['PATCH', `/v1/customers/${theirsId}`],
    ] as const) {
      const r = await app.inject({
        method,
        url,
        headers: as(orgA, 'sales_rep'),
        ...(method === 'PATCH' ? { payload: { notes: 'x' } } : {}),
      });
      assert.equal(r.statusCode, 404, `${method} ${url}`);
    }
    const steal = await app.inject({
      method: 'PATCH',
      url: `/v1/customers/${mine.json().id}`,
      headers: as(orgA, 'sales_rep'),
      payload: { owner_user: users.rep2 },
    });
    assert.equal(steal.statusCode, 403);
    const assign = await create(orgA, 'sales_rep', { name: 'X', owner_user: users.rep2 });
    assert.equal(assign.statusCode, 403);
    // The owner can reassign to any active member, not to a stranger.
    const reassign = await app.inject({
      method: 'PATCH',
      url: `/v1/customers/${theirsId}`,
      headers: as(orgA, 'owner'),
      payload: { owner_user: rep1 },
    });
    assert.equal(reassign.statusCode, 200);
    const stranger = await app.inject({
      method: 'PATCH',
      url: `/v1/customers/${theirsId}`,
      headers: as(orgA, 'owner'),
      payload: { owner_user: users[`${orgB}:owner`] },
    });
    assert.equal(stranger.statusCode, 422);
  });

  it('refuses writes from read-only roles', async () => {
    for (const role of ['viewer', 'auditor'] as const) {
      const r = await create(orgA, role, { name: 'Nope' });
      assert.equal(r.statusCode, 403);
    }
  });

  it('rectifies with an audited update naming the fields, not their values', async () => {
    const r = await app.inject({
      method: 'PATCH',
      url: `/v1/customers/${janeId}`,
      headers: as(orgA, 'owner'),
      payload: { email: 'jane@new.example', phone: null },
    });
    assert.equal(r.statusCode, 200);
    assert.equal(r.json().email, 'jane@new.example');
    assert.equal(r.json().phone, null);
    assert.equal(r.json().name, JANE.name, 'untouched fields stay');
    const old = await app.inject({
      method: 'GET',
      url: `/v1/customers?email=${encodeURIComponent(JANE.email)}`,
      headers: as(orgA, 'owner'),
    });
    assert.equal(old.json().data.length, 0, 'the old blind index is gone');
    const ev = await sql<{ details: unknown }>`
      SELECT details FROM audit_events WHERE action = 'customer.updated' AND target_id = ${janeId}`.execute(
      t.db,
    );
    assert.deepEqual(ev.rows[0]?.details, { fields: ['email', 'phone'] });
  });

  it('validates input with the offending parameter', async () => {
    const cases: [Record<string, unknown>, number, string, string?][] = [
      [{}, 422, 'validation_failed', 'name'],
      [{ name: 'x', email: 'not-an-email' }, 422, 'validation_failed', 'email'],
      [{ name: 'x', currency: 'XYZ' }, 422, 'currency_unknown', 'currency'],
      [
        { name: 'x', address: { line1: 'a', city: 'b', country: 'germany' } },
        422,
        'validation_failed',
        'address.country',
      ],
      [{ name: 'x', payment_terms_days: 1000 }, 422, 'validation_failed', 'payment_terms_days'],
      [{ name: 'x', is_admin: true }, 422, 'validation_failed'],
      [{ name: 'x', notes: 'card 4111 1111 1111 1111 exp 12/29' }, 422, 'card_number_not_allowed'],
      [{ name: 'x', metadata: { 'Bad Key': 'v' } }, 422, 'validation_failed'],
    ];
    for (const [body, status, code, param] of cases) {
      const r = await create(orgA, 'owner', body);
      assert.equal(r.statusCode, status, `${JSON.stringify(body)} → ${r.body}`);
      assert.equal(r.json().error.code, code);
      if (param) assert.equal(r.json().error.param, param);
      assert.doesNotMatch(r.body, /4111/);
    }
    const badId = await app.inject({
      method: 'GET',
      url: "/v1/customers/cus_' OR 1=1--",
      headers: as(orgA, 'owner'),
    });
    assert.equal(badId.statusCode, 422);
    const missing = await app.inject({
      method: 'GET',
      url: `/v1/customers/${newId('customer')}`,
      headers: as(orgA, 'owner'),
    });
    assert.equal(missing.statusCode, 404);
  });

  it('stores hostile strings as data', async () => {
    const hostile = `Robert'); DROP TABLE customers;-- <script>alert(1)</script>`;
    const r = await create(orgA, 'owner', { name: hostile, display_name: hostile });
    assert.equal(r.statusCode, 200);
    const back = await app.inject({
      method: 'GET',
      url: `/v1/customers/${r.json().id}`,
      headers: as(orgA, 'owner'),
    });
    assert.equal(back.json().name, hostile);
    assert.equal(back.headers['content-type'], 'application/json; charset=utf-8');
  });

  it('archives instead of deleting, and lists only active customers by default', async () => {
    const c = (await create(orgA, 'owner', { name: 'To Archive', display_name: 'zz-archive' })).json();
    const a = await app.inject({
      method: 'POST',
      url: `/v1/customers/${c.id}/archive`,
      headers: as(orgA, 'owner'),
    });
    assert.equal(a.json().archived, true);
    const active = await app.inject({
      method: 'GET',
      url: '/v1/customers?display_name_prefix=zz-archive',
      headers: as(orgA, 'owner'),
    });
    assert.equal(active.json().data.length, 0);
    const all = await app.inject({
      method: 'GET',
      url: '/v1/customers?display_name_prefix=zz-archive&include_archived=true',
      headers: as(orgA, 'owner'),
    });
    assert.equal(all.json().data.length, 1);
    const u = await app.inject({
      method: 'POST',
      url: `/v1/customers/${c.id}/unarchive`,
      headers: as(orgA, 'owner'),
    });
    assert.equal(u.json().archived, false);
  });

  it('paginates newest first with starting_after, without gaps or repeats', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 23; i++) ids.add((await create(orgB, 'owner', { name: `Page ${i}` })).json().id);
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 10; page++) {
      const r = await app.inject({
        method: 'GET',
        url: `/v1/customers?limit=10${cursor ? `&starting_after=${cursor}` : ''}`,
        headers: as(orgB, 'owner'),
      });
      const body = r.json();
      seen.push(...body.data.map((c: { id: string }) => c.id));
      if (!body.has_more) break;
      cursor = body.data.at(-1).id;
    }
    assert.equal(seen.length, 23);
    assert.deepEqual(new Set(seen), ids);
    const bad = await app.inject({
      method: 'GET',
      url: `/v1/customers?limit=101`,
      headers: as(orgB, 'owner'),
    });
    assert.equal(bad.statusCode, 422);
    const foreignCursor = await app.inject({
      method: 'GET',
      url: `/v1/customers?starting_after=${janeId}`,
      headers: as(orgB, 'owner'),
    });
    assert.equal(foreignCursor.statusCode, 404);
  });
});
