import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { IdentityDeps } from '../../src/app/sessions.js';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
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
  a = await seedOrg(deps, 'Keys A');
  b = await seedOrg(deps, 'Keys B');
});
after(async () => {
  await app.close();
  await t.drop();
});

type Cookies = { cookie: string; csrf: string };
async function session(o: SeededOrg, role: keyof SeededOrg['users']) {
  const u = o.users[role];
  const r = await app.inject({
    method: 'POST',
    url: '/v1/auth/login',
    payload: { email: u.email, password: u.password },
  });
  assert.equal(r.statusCode, 200, r.body);
  return cookiesFrom(r.headers['set-cookie']);
}
const call = (c: Cookies, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: unknown) =>
  app.inject({
    method,
    url,
    headers: { cookie: c.cookie, 'x-csrf-token': c.csrf },
    ...(payload ? { payload: payload as object } : {}),
  });
const bearer = (secret: string, url = '/v1/org', method: 'GET' | 'PUT' = 'GET', payload?: unknown) =>
  app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${secret}` },
    ...(payload ? { payload: payload as object } : {}),
  });

describe('API keys', () => {
  it('are shown once, stored hashed, and authenticate without CSRF', async () => {
    const admin = await session(a, 'admin');
    const r = await call(admin, 'POST', '/v1/api_keys', { name: 'Accounting sync' });
    assert.equal(r.statusCode, 201, r.body);
    const key = r.json();
    assert.match(key.id, /^key_[0-9a-z]{32}$/);
    assert.match(key.secret, /^bv_live_[A-Za-z0-9_-]{43}$/);
    const row = await t.db
      .selectFrom('api_keys')
      .selectAll()
      .where('id', '=', key.id)
      .executeTakeFirstOrThrow();
    assert.notEqual(row.secret_hash, key.secret);
    assert.ok(!JSON.stringify(row).includes(key.secret));
    const list = await call(admin, 'GET', '/v1/api_keys');
    assert.ok(!list.body.includes(key.secret));
    assert.equal((await bearer(key.secret)).statusCode, 200);
    const write = await bearer(key.secret, '/v1/settings/ui.theme', 'PUT', { value: 'dark' });
    assert.equal(write.statusCode, 200, write.body);
    const used = await t.db
      .selectFrom('api_keys')
      .select('last_used_at')
      .where('id', '=', key.id)
      .executeTakeFirstOrThrow();
    assert.ok(used.last_used_at);
  });

  it('scopes narrow a key; they never widen the creator’s role', async () => {
    const admin = await session(a, 'admin');
    const narrow = await call(admin, 'POST', '/v1/api_keys', { name: 'read only', scopes: ['org:read'] });
    assert.equal(narrow.statusCode, 201);
    assert.equal((await bearer(narrow.json().secret)).statusCode, 200);
    assert.equal(
      (await bearer(narrow.json().secret, '/v1/settings/ui.theme', 'PUT', { value: 'x' })).statusCode,
      403,
    );
    const wider = await call(admin, 'POST', '/v1/api_keys', { name: 'wider', scopes: ['refunds:write'] });
    assert.equal(wider.statusCode, 403);
    const unknown = await call(admin, 'POST', '/v1/api_keys', { name: 'bad', scopes: ['everything'] });
    assert.equal(unknown.statusCode, 422);
    const viewer = await session(a, 'viewer');
    assert.equal((await call(viewer, 'POST', '/v1/api_keys', { name: 'mine' })).statusCode, 403);
  });

  it('expire, can be revoked, and die with their creator', async () => {
    const admin = await session(a, 'admin');
    const exp = await call(admin, 'POST', '/v1/api_keys', {
      name: 'short',
      expires_at: new Date(clock.now().getTime() + 10 * MINUTE).toISOString(),
    });
    assert.equal(exp.statusCode, 201, exp.body);
    assert.equal((await bearer(exp.json().secret)).statusCode, 200);
    clock.advance(10 * MINUTE);
    assert.equal((await bearer(exp.json().secret)).statusCode, 401);

    const admin2 = await session(a, 'admin');
    const k = await call(admin2, 'POST', '/v1/api_keys', { name: 'to revoke' });
    const del = await call(admin2, 'DELETE', `/v1/api_keys/${k.json().id}`);
    assert.equal(del.statusCode, 200);
    assert.equal((await bearer(k.json().secret)).statusCode, 401);
    assert.equal((await call(admin2, 'DELETE', `/v1/api_keys/${k.json().id}`)).statusCode, 404);

    const fm = await session(a, 'finance_manager');
    assert.equal((await call(fm, 'POST', '/v1/api_keys', { name: 'x' })).statusCode, 403); // no api_keys:manage
    const owner = await session(a, 'owner');
    const ownersKey = await call(admin2, 'POST', '/v1/api_keys', { name: 'admin key' });
    assert.equal((await bearer(ownersKey.json().secret, '/v1/users')).statusCode, 200);
    // demote the creator: the key acts with the creator’s current role at once
    await call(owner, 'PATCH', `/v1/users/${a.users.admin.id}`, { role: 'viewer' });
    assert.equal((await bearer(ownersKey.json().secret, '/v1/users')).statusCode, 403);
    assert.equal((await bearer(ownersKey.json().secret)).statusCode, 200);
    // disable the creator: the key dies
    await call(owner, 'PATCH', `/v1/users/${a.users.admin.id}`, { disabled: true });
    assert.equal((await bearer(ownersKey.json().secret)).statusCode, 401);
    await call(owner, 'PATCH', `/v1/users/${a.users.admin.id}`, { disabled: false, role: 'admin' });
  });

  it('creating a key needs a fresh authentication', async () => {
    const owner = await session(a, 'owner');
    clock.advance(6 * MINUTE);
    const r = await call(owner, 'GET', '/v1/me'); // keeps the session alive, not fresh
    assert.equal(r.statusCode, 200);
    const late = await call(owner, 'POST', '/v1/api_keys', { name: 'late' });
    assert.equal(late.statusCode, 403);
    assert.equal(late.json().error.code, 'step_up_required');
    const su = await call(owner, 'POST', '/v1/auth/step_up', { password: a.users.owner.password });
    assert.equal(su.statusCode, 200);
    const ok = await call(cookiesFrom(su.headers['set-cookie']), 'POST', '/v1/api_keys', { name: 'late' });
    assert.equal(ok.statusCode, 201, ok.body);
  });

  it('a key of one org never reaches another org (404), and hostile bearer values are 401', async () => {
    const ownerB = await session(b, 'owner');
    const kb = await call(ownerB, 'POST', '/v1/api_keys', { name: 'b key' });
    const mine = (await bearer(kb.json().secret)).json();
    assert.equal(mine.id, b.orgId);
    const ownerA = await session(a, 'owner');
    const ka = await call(ownerA, 'POST', '/v1/api_keys', { name: 'a key' });
    const cross = await app.inject({
      method: 'DELETE',
      url: `/v1/api_keys/${ka.json().id}`,
      headers: { authorization: `Bearer ${kb.json().secret}` },
    });
    assert.equal(cross.statusCode, 404);
    assert.equal((await bearer(ka.json().secret)).statusCode, 200);
    for (const authorization of [
      'Bearer bv_live_',
      `Bearer ${ka.json().secret}x`,
      `Basic ${Buffer.from('a:b').toString('base64')}`,
      "Bearer bv_live_' OR '1'='1",
      `Bearer ${'bv_live_'.padEnd(5000, 'A')}`,
    ]) {
      const r = await app.inject({ method: 'GET', url: '/v1/org', headers: { authorization } });
      assert.equal(r.statusCode, 401, authorization.slice(0, 30));
    }
  });
});
