import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import type { IdentityDeps } from '../../src/app/sessions.js';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { inOrg, inTransaction } from '../helpers/dbexports.js';
import {
  cookiesFrom,
  MINUTE,
  type SeededOrg,
  seedOrg,
  TestClock,
  testIdentity,
} from '../helpers/identity.js';

let t: TestDatabase;
let clock: TestClock;
let deps: IdentityDeps;
let app: Awaited<ReturnType<typeof buildTestApp>>;
let a: SeededOrg;
let b: SeededOrg;

before(async () => {
  t = await createTestDatabase();
  clock = new TestClock();
  deps = testIdentity(t, clock);
  app = await buildTestApp(t, { identity: deps });
  a = await seedOrg(deps, 'Org A');
  b = await seedOrg(deps, 'Org B');
});
after(async () => {
  await app.close();
  await t.drop();
});

type Role = keyof SeededOrg['users'];
type Cookies = { cookie: string; csrf: string };

async function loginAs(email: string, password: string, org?: string) {
  const r = await app.inject({
    method: 'POST',
    url: '/v1/auth/login',
    payload: { email, password, ...(org ? { org } : {}) },
  });
  assert.equal(r.statusCode, 200, r.body);
  return cookiesFrom(r.headers['set-cookie']);
}
const session = (o: SeededOrg, role: Role) => loginAs(o.users[role].email, o.users[role].password);
const call = (c: Cookies, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: unknown) =>
  app.inject({
    method,
    url,
    headers: { cookie: c.cookie, 'x-csrf-token': c.csrf },
    ...(payload ? { payload: payload as object } : {}),
  });

describe('invitations', () => {
  it('an admin invites; the invitee sets a password and signs in with the given role; the token works once', async () => {
    const admin = await session(a, 'admin');
    const inv = await call(admin, 'POST', '/v1/users', {
      email: 'New.Person@Example.test',
      role: 'accountant',
    });
    assert.equal(inv.statusCode, 201, inv.body);
    const { token, email, role } = inv.json();
    assert.equal(email, 'new.person@example.test');
    assert.equal(role, 'accountant');
    const stored = await t.db.selectFrom('invitations').select('token_hash').executeTakeFirstOrThrow();
    assert.notEqual(stored.token_hash, token);
    const weak = await app.inject({
      method: 'POST',
      url: '/v1/auth/invitations/accept',
      payload: { token, password: 'iloveyou1234' },
    });
    assert.equal(weak.statusCode, 422);
    const ok = await app.inject({
      method: 'POST',
      url: '/v1/auth/invitations/accept',
      payload: { token, password: 'my own long passphrase' },
    });
    assert.equal(ok.statusCode, 200, ok.body);
    const again = await app.inject({
      method: 'POST',
      url: '/v1/auth/invitations/accept',
      payload: { token, password: 'my own long passphrase' },
    });
    assert.equal(again.statusCode, 422);
    assert.equal(again.json().error.code, 'token_invalid');
    const c = await loginAs('new.person@example.test', 'my own long passphrase');
    const me = await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: c.cookie } });
    assert.equal(me.json().role, 'accountant');
  });

  it('expires after 72 hours', async () => {
    const admin = await session(a, 'admin');
    const inv = await call(admin, 'POST', '/v1/users', { email: 'late@example.test', role: 'viewer' });
    clock.advance(72 * 60 * MINUTE + 1);
    const r = await app.inject({
      method: 'POST',
      url: '/v1/auth/invitations/accept',
      payload: { token: inv.json().token, password: 'too late passphrase' },
    });
    assert.equal(r.statusCode, 422);
  });

  it('someone with an account in another org joins with their own password and picks the org at login', async () => {
    const ownerA = await session(a, 'owner');
    const u = b.users.viewer;
    const inv = await call(ownerA, 'POST', '/v1/users', { email: u.email, role: 'auditor' });
    assert.equal(inv.statusCode, 201);
    const wrong = await app.inject({
      method: 'POST',
      url: '/v1/auth/invitations/accept',
      payload: { token: inv.json().token, password: 'not their password' },
    });
    assert.equal(wrong.statusCode, 401);
    const ok = await app.inject({
      method: 'POST',
      url: '/v1/auth/invitations/accept',
      payload: { token: inv.json().token, password: u.password },
    });
    assert.equal(ok.statusCode, 200, ok.body);
    const inA = await loginAs(u.email, u.password, a.orgId);
    const meA = (await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: inA.cookie } })).json();
    assert.deepEqual([meA.org.id, meA.role], [a.orgId, 'auditor']);
    const inB = await loginAs(u.email, u.password, b.orgId);
    const meB = (await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: inB.cookie } })).json();
    assert.deepEqual([meB.org.id, meB.role], [b.orgId, 'viewer']);
  });

  it('only owners invite owners; roles without users:manage cannot invite; validation is 422', async () => {
    const admin = await session(a, 'admin');
    assert.equal(
      (await call(admin, 'POST', '/v1/users', { email: 'boss@example.test', role: 'owner' })).statusCode,
      403,
    );
    const fm = await session(a, 'finance_manager');
    assert.equal(
      (await call(fm, 'POST', '/v1/users', { email: 'x@example.test', role: 'viewer' })).statusCode,
      403,
    );
    for (const body of [
      { email: 'x@example.test', role: 'root' },
      { email: 'x@example.test' },
      { email: 1, role: 'viewer' },
    ]) {
      const r = await call(admin, 'POST', '/v1/users', body);
      assert.equal(r.statusCode, 422, JSON.stringify(body));
      assert.equal(r.json().error.code, 'validation_failed');
    }
    assert.equal(
      (await call(admin, 'POST', '/v1/users', { email: a.users.viewer.email, role: 'viewer' })).statusCode,
      409,
    );
  });
});

describe('invitation list and revocation, org switching', () => {
  it('lists open invitations without tokens; a revoked invitation cannot be accepted', async () => {
    const admin = await session(a, 'admin');
    const inv = await call(admin, 'POST', '/v1/users', { email: 'withdrawn@example.test', role: 'viewer' });
    const list = await call(admin, 'GET', '/v1/invitations');
    assert.equal(list.statusCode, 200);
    assert.ok(list.json().data.some((i: { id: string }) => i.id === inv.json().id));
    assert.ok(!list.body.includes(inv.json().token));
    const del = await call(admin, 'DELETE', `/v1/invitations/${inv.json().id}`);
    assert.equal(del.statusCode, 200);
    const accept = await app.inject({
      method: 'POST',
      url: '/v1/auth/invitations/accept',
      payload: { token: inv.json().token, password: 'too late for this one' },
    });
    assert.equal(accept.statusCode, 422);
    const adminB = await session(b, 'admin');
    assert.equal((await call(adminB, 'DELETE', `/v1/invitations/${inv.json().id}`)).statusCode, 404);
  });

  it('a member of two orgs switches orgs with a new token; not into an org they do not belong to', async () => {
    const u = b.users.viewer; // joined org A as auditor in an earlier test
    const c = await loginAs(u.email, u.password, b.orgId);
    const bad = await call(c, 'POST', '/v1/sessions/switch_org', {
      org: 'org_00000000000000000000000000000000',
    });
    assert.equal(bad.statusCode, 404);
    const r = await call(c, 'POST', '/v1/sessions/switch_org', { org: a.orgId });
    assert.equal(r.statusCode, 200, r.body);
    const n = cookiesFrom(r.headers['set-cookie']);
    assert.equal((await call(c, 'GET', '/v1/me')).statusCode, 401, 'the old token ends');
    const me = (await call(n, 'GET', '/v1/me')).json();
    assert.deepEqual([me.org.id, me.role], [a.orgId, 'auditor']);
  });
});

describe('members and roles', () => {
  it('lists only the own org; another org’s user is 404', async () => {
    const admin = await session(a, 'admin');
    const list = await call(admin, 'GET', '/v1/users');
    const emails = list.json().data.map((u: { email: string }) => u.email);
    assert.ok(emails.includes(a.users.owner.email));
    assert.ok(!emails.includes(b.users.owner.email));
    assert.equal((await call(admin, 'GET', `/v1/users/${b.users.owner.id}`)).statusCode, 404);
    assert.equal(
      (await call(admin, 'PATCH', `/v1/users/${b.users.sales_rep.id}`, { role: 'viewer' })).statusCode,
      404,
    );
    assert.equal((await call(admin, 'GET', `/v1/users/${a.users.viewer.id}`)).statusCode, 200);
  });

  it('a role change applies on the next request and ends the member’s sessions', async () => {
    const victim = await session(a, 'sales_rep');
    const admin = await session(a, 'admin');
    const r = await call(admin, 'PATCH', `/v1/users/${a.users.sales_rep.id}`, { role: 'viewer' });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().role, 'viewer');
    assert.equal((await call(victim, 'GET', '/v1/me')).statusCode, 401);
    const fresh = await session(a, 'sales_rep');
    assert.equal((await call(fresh, 'GET', '/v1/me')).json().role, 'viewer');
    await call(admin, 'PATCH', `/v1/users/${a.users.sales_rep.id}`, { role: 'sales_rep' });
  });

  it('guards the owner role and self-changes', async () => {
    const admin = await session(a, 'admin');
    assert.equal(
      (await call(admin, 'PATCH', `/v1/users/${a.users.viewer.id}`, { role: 'owner' })).statusCode,
      403,
    );
    assert.equal(
      (await call(admin, 'PATCH', `/v1/users/${a.users.owner.id}`, { disabled: true })).statusCode,
      403,
    );
    assert.equal(
      (await call(admin, 'PATCH', `/v1/users/${a.users.admin.id}`, { role: 'owner' })).statusCode,
      403,
    );
    const owner = await session(a, 'owner');
    assert.equal(
      (await call(owner, 'PATCH', `/v1/users/${a.users.owner.id}`, { role: 'viewer' })).statusCode,
      403,
    );
    const hostile = await call(owner, 'PATCH', `/v1/users/${a.users.viewer.id}`, {
      role: 'viewer',
      org_id: b.orgId,
    });
    assert.equal(hostile.statusCode, 422);
    assert.equal(
      (await call(owner, 'PATCH', `/v1/users/usr_'; DROP TABLE users; --`, { role: 'viewer' })).statusCode,
      422,
    );
  });
});

describe('break-glass', () => {
  it('an owner grants time-limited emergency access with a reason; it is visible to admins and loudly audited', async () => {
    const owner = await session(a, 'owner');
    const viewerBefore = await session(a, 'viewer');
    const tooLong = await call(owner, 'POST', '/v1/break_glass', {
      user: a.users.viewer.id,
      reason: 'incident 42: payments stuck',
      duration_minutes: 241,
    });
    assert.equal(tooLong.statusCode, 422);
    const noReason = await call(owner, 'POST', '/v1/break_glass', {
      user: a.users.viewer.id,
      reason: 'x',
      duration_minutes: 60,
    });
    assert.equal(noReason.statusCode, 422);
    const admin = await session(a, 'admin');
    const notOwner = await call(admin, 'POST', '/v1/break_glass', {
      user: a.users.viewer.id,
      reason: 'incident 42: payments stuck',
      duration_minutes: 60,
    });
    assert.equal(notOwner.statusCode, 403);
    const g = await call(owner, 'POST', '/v1/break_glass', {
      user: a.users.viewer.id,
      reason: 'incident 42: payments stuck',
      duration_minutes: 60,
    });
    assert.equal(g.statusCode, 201, g.body);
    assert.equal(
      (await call(viewerBefore, 'GET', '/v1/me')).statusCode,
      401,
      'sessions rotate on the privilege change',
    );
    const elevated = await session(a, 'viewer');
    assert.equal((await call(elevated, 'GET', '/v1/me')).json().role, 'owner');
    const write = await call(elevated, 'POST', '/v1/users', { email: 'helper@example.test', role: 'viewer' });
    assert.equal(write.statusCode, 201, write.body);
    const used = await t.db
      .selectFrom('audit_events')
      .select('target_id')
      .where('action', '=', 'break_glass.used')
      .execute();
    assert.ok(used.some((u) => u.target_id === g.json().id));
    const list = await call(admin, 'GET', '/v1/break_glass');
    assert.equal(list.statusCode, 200, list.body);
    assert.equal(list.json().data[0].reason, 'incident 42: payments stuck');
    assert.equal(list.json().data[0].active, true);
    clock.advance(61 * MINUTE);
    const after = await session(a, 'viewer');
    assert.equal((await call(after, 'GET', '/v1/me')).json().role, 'viewer');
    assert.equal(
      (await call(await session(a, 'admin'), 'GET', '/v1/break_glass')).json().data[0].active,
      false,
    );
  });
});

describe('row-level security for identity tables', () => {
  it('an org transaction sees only its own members and none of the credential tables', async () => {
    const users = await inOrg(t.db, a.orgId, (tx) => tx.selectFrom('users').select('id').execute());
    const ids = users.map((u) => u.id);
    assert.ok(ids.includes(a.users.owner.id));
    assert.ok(!ids.includes(b.users.owner.id));
    for (const table of [
      'recovery_codes',
      'webauthn_credentials',
      'auth_challenges',
      'auth_throttle',
    ] as const) {
      const rows = await inOrg(t.db, a.orgId, (tx) => tx.selectFrom(table).selectAll().execute());
      assert.equal(rows.length, 0, table);
    }
    const sessions = await inOrg(t.db, a.orgId, (tx) => tx.selectFrom('sessions').select('org_id').execute());
    assert.ok(sessions.every((s) => s.org_id === a.orgId));
    const none = await inTransaction(t.db, {}, (tx) => tx.selectFrom('users').select('id').execute());
    assert.equal(none.length, 0);
  });

  it('the application role cannot delete users or rewrite ids, hashes of sessions or key secrets', async () => {
    for (const stmt of [
      sql`DELETE FROM users`,
      sql`UPDATE users SET id = id`,
      sql`UPDATE sessions SET token_hash = 'x'`,
      sql`UPDATE api_keys SET secret_hash = 'x'`,
      sql`DELETE FROM sessions`,
    ]) {
      await assert.rejects(
        inOrg(t.db, a.orgId, (tx) => stmt.execute(tx)),
        /permission denied/,
      );
    }
  });
});
