import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hashSecret, type IdentityDeps } from '../../src/app/sessions.js';
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

before(async () => {
  t = await createTestDatabase();
  clock = new TestClock();
  deps = testIdentity(t, clock);
  app = await buildTestApp(t, { identity: deps });
  a = await seedOrg(deps, 'Org A');
});
after(async () => {
  await app.close();
  await t.drop();
});

async function login(email: string, password: string, ip = '10.0.0.1') {
  return app.inject({
    method: 'POST',
    url: '/v1/auth/login',
    payload: { email, password },
    remoteAddress: ip,
  });
}

async function session(role: keyof SeededOrg['users'] = 'owner') {
  const u = a.users[role];
  const res = await login(u.email, u.password);
  assert.equal(res.statusCode, 200, res.body);
  return cookiesFrom(res.headers['set-cookie']);
}

describe('login', () => {
  it('sets the session cookie with the flags of DESIGN.md §5 and returns the user', async () => {
    const res = await login(a.users.owner.email, a.users.owner.password);
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    assert.equal(body.mfa_required, false);
    assert.equal(body.user.id, a.users.owner.id);
    const cookies = res.headers['set-cookie'] as string[];
    const sessionCookie = cookies.find((c) => c.startsWith('__Host-bv_session='));
    assert.ok(sessionCookie);
    for (const flag of ['Path=/', 'Secure', 'HttpOnly', 'SameSite=Strict'])
      assert.ok(sessionCookie.includes(flag), flag);
    assert.doesNotMatch(sessionCookie, /Domain=/i);
    const token = sessionCookie.split(';')[0]?.split('=')[1] ?? '';
    assert.ok(Buffer.from(token, 'base64url').length === 32, '256-bit token');
    const csrf = cookies.find((c) => c.startsWith('bv_csrf='));
    assert.ok(csrf && !csrf.includes('HttpOnly'));
    // only the hash is stored
    const rows = await t.db.selectFrom('sessions').select('token_hash').execute();
    assert.ok(rows.every((r) => r.token_hash !== token));
  });

  it('GET /v1/me returns user, org, role and permissions', async () => {
    const c = await session('accountant');
    const res = await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: c.cookie } });
    assert.equal(res.statusCode, 200, res.body);
    const me = res.json();
    assert.equal(me.user.id, a.users.accountant.id);
    assert.equal(me.org.id, a.orgId);
    assert.equal(me.role, 'accountant');
    assert.ok(me.permissions.includes('invoices:write'));
    assert.ok(!me.permissions.includes('refunds:write'));
  });

  it('answers wrong password, unknown account and malformed email identically', async () => {
    const bodies = [];
    for (const [email, pw] of [
      [a.users.viewer.email, 'wrong password entirely'],
      ['nobody@example.test', 'wrong password entirely'],
      ['not-an-email', 'wrong password entirely'],
    ] as const) {
      const res = await login(email, pw, '10.0.0.2');
      assert.equal(res.statusCode, 401);
      const { request_id: _r, ...rest } = res.json().error;
      bodies.push(rest);
      assert.equal(res.headers['set-cookie'], undefined);
    }
    assert.deepEqual(bodies[0], {
      type: 'authentication_error',
      code: 'invalid_credentials',
      message: bodies[0].message,
    });
    assert.deepEqual(bodies[1], bodies[0]);
    assert.deepEqual(bodies[2], bodies[0]);
  });

  it('rotates: every login issues a new token', async () => {
    const c1 = await session('viewer');
    const c2 = await session('viewer');
    assert.notEqual(c1.token, c2.token);
  });

  it('records logins and failures in the audit trail without secrets', async () => {
    const rows = await t.db
      .selectFrom('audit_events')
      .select(['action', 'outcome', 'details'])
      .where('action', 'in', ['auth.login', 'auth.login_failed'])
      .execute();
    assert.ok(rows.some((r) => r.action === 'auth.login' && r.outcome === 'success'));
    assert.ok(rows.some((r) => r.action === 'auth.login_failed' && r.outcome === 'failed'));
    assert.doesNotMatch(JSON.stringify(rows), /wrong password/);
  });
});

describe('sessions', () => {
  it('expire after 15 idle minutes (injected clock)', async () => {
    const c = await session('viewer');
    clock.advance(14 * MINUTE);
    assert.equal(
      (await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: c.cookie } })).statusCode,
      200,
    );
    clock.advance(14 * MINUTE); // 14 min since last use: still alive
    assert.equal(
      (await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: c.cookie } })).statusCode,
      200,
    );
    clock.advance(15 * MINUTE + 1);
    const res = await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: c.cookie } });
    assert.equal(res.statusCode, 401);
    assert.equal(res.json().error.code, 'unauthenticated');
  });

  it('expire after 12 hours however active', async () => {
    const c = await session('viewer');
    for (let i = 0; i < 71; i++) {
      clock.advance(10 * MINUTE);
      const r = await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: c.cookie } });
      assert.equal(r.statusCode, 200, `at ${(i + 1) * 10} min`);
    }
    clock.advance(10 * MINUTE); // 720 minutes
    assert.equal(
      (await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: c.cookie } })).statusCode,
      401,
    );
  });

  it('an org setting can shorten the idle timeout but not lengthen it', async () => {
    const owner = await session('owner');
    for (const [key, value] of [
      ['auth.session_idle_minutes', 5],
      ['auth.session_absolute_hours', 48],
    ] as const) {
      const r = await app.inject({
        method: 'PUT',
        url: `/v1/settings/${key}`,
        headers: { cookie: owner.cookie, 'x-csrf-token': owner.csrf },
        payload: { value },
      });
      assert.equal(r.statusCode, 200, r.body);
    }
    const c = await session('viewer');
    const row = await t.db
      .selectFrom('sessions')
      .select(['idle_seconds', 'expires_at', 'created_at'])
      .where('token_hash', '=', hashSecret(c.token))
      .executeTakeFirstOrThrow();
    assert.equal(row.idle_seconds, 5 * 60);
    assert.equal(row.expires_at.getTime() - row.created_at.getTime(), 12 * 3600_000);
    clock.advance(6 * MINUTE);
    assert.equal(
      (await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: c.cookie } })).statusCode,
      401,
    );
    await t.db.deleteFrom('org_settings').where('key', 'like', 'auth.session%').execute();
  });

  it('logout kills the session server-side and clears the cookies', async () => {
    const c = await session('viewer');
    const out = await app.inject({
      method: 'POST',
      url: '/v1/auth/logout',
      headers: { cookie: c.cookie, 'x-csrf-token': c.csrf },
    });
    assert.equal(out.statusCode, 200, out.body);
    assert.ok(
      (out.headers['set-cookie'] as string[]).some(
        (s) => s.startsWith('__Host-bv_session=;') && s.includes('Max-Age=0'),
      ),
    );
    assert.equal(
      (await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: c.cookie } })).statusCode,
      401,
    );
  });

  it('lists own sessions and revokes one; another user cannot see or revoke it (404)', async () => {
    const mine = await session('finance_manager');
    const other = await session('finance_manager');
    const list = await app.inject({ method: 'GET', url: '/v1/sessions', headers: { cookie: mine.cookie } });
    assert.equal(list.statusCode, 200);
    const data = list.json().data as { id: string; current: boolean }[];
    assert.ok(data.length >= 2);
    const target = data.find((s) => !s.current);
    assert.ok(target);
    const stranger = await session('admin');
    const denied = await app.inject({
      method: 'DELETE',
      url: `/v1/sessions/${target.id}`,
      headers: { cookie: stranger.cookie, 'x-csrf-token': stranger.csrf },
    });
    assert.equal(denied.statusCode, 404);
    const ok = await app.inject({
      method: 'DELETE',
      url: `/v1/sessions/${target.id}`,
      headers: { cookie: mine.cookie, 'x-csrf-token': mine.csrf },
    });
    assert.equal(ok.statusCode, 200, ok.body);
    const statuses = [
      (await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: mine.cookie } })).statusCode,
      (await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: other.cookie } })).statusCode,
    ];
    assert.equal(statuses.filter((s) => s === 401).length, 1);
  });

  it('a new sign-in from a browser that still holds a session ends that old session', async () => {
    const old = await session('viewer');
    const u = a.users.viewer;
    const r = await app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      headers: { cookie: old.cookie },
      payload: { email: u.email, password: u.password },
    });
    assert.equal(r.statusCode, 200);
    assert.equal(
      (await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: old.cookie } })).statusCode,
      401,
    );
    const fresh = cookiesFrom(r.headers['set-cookie']);
    assert.equal(
      (await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: fresh.cookie } })).statusCode,
      200,
    );
  });

  it('revoke_others signs the caller out everywhere else', async () => {
    const s1 = await session('sales_rep');
    const s2 = await session('sales_rep');
    const r = await app.inject({
      method: 'POST',
      url: '/v1/sessions/revoke_others',
      headers: { cookie: s1.cookie, 'x-csrf-token': s1.csrf },
    });
    assert.equal(r.statusCode, 200, r.body);
    assert.ok(r.json().revoked >= 1);
    assert.equal(
      (await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: s2.cookie } })).statusCode,
      401,
    );
    assert.equal(
      (await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: s1.cookie } })).statusCode,
      200,
    );
  });

  it('step-up rotates the token and the old one stops working', async () => {
    const u = a.users.accountant;
    const c = await session('accountant');
    const r = await app.inject({
      method: 'POST',
      url: '/v1/auth/step_up',
      headers: { cookie: c.cookie, 'x-csrf-token': c.csrf },
      payload: { password: u.password },
    });
    assert.equal(r.statusCode, 200, r.body);
    const n = cookiesFrom(r.headers['set-cookie']);
    assert.notEqual(n.token, c.token);
    assert.equal(
      (await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: c.cookie } })).statusCode,
      401,
    );
    assert.equal(
      (await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: n.cookie } })).statusCode,
      200,
    );
  });

  it('a disabled member loses every session at once', async () => {
    const victim = await session('auditor');
    const owner = await session('owner');
    const r = await app.inject({
      method: 'PATCH',
      url: `/v1/users/${a.users.auditor.id}`,
      headers: { cookie: owner.cookie, 'x-csrf-token': owner.csrf },
      payload: { disabled: true },
    });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(
      (await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: victim.cookie } })).statusCode,
      401,
    );
    const again = await login(a.users.auditor.email, a.users.auditor.password);
    assert.equal(again.statusCode, 401);
    const back = await app.inject({
      method: 'PATCH',
      url: `/v1/users/${a.users.auditor.id}`,
      headers: { cookie: owner.cookie, 'x-csrf-token': owner.csrf },
      payload: { disabled: false },
    });
    assert.equal(back.statusCode, 200);
    assert.equal((await login(a.users.auditor.email, a.users.auditor.password)).statusCode, 200);
  });
});

describe('CSRF (cookie-authenticated writes)', () => {
  it('refuses a write without the header, with a wrong one, or with a forged cookie pair', async () => {
    const c = await session('owner');
    const url = '/v1/settings/ui.theme';
    const cases = [
      { cookie: c.cookie },
      { cookie: c.cookie, 'x-csrf-token': 'x'.repeat(43) },
      { cookie: `__Host-bv_session=${c.token}; bv_csrf=${'y'.repeat(43)}`, 'x-csrf-token': 'y'.repeat(43) },
    ];
    for (const headers of cases) {
      const r = await app.inject({ method: 'PUT', url, headers, payload: { value: 'dark' } });
      assert.equal(r.statusCode, 403);
      assert.equal(r.json().error.code, 'csrf_failed');
    }
    const ok = await app.inject({
      method: 'PUT',
      url,
      headers: { cookie: c.cookie, 'x-csrf-token': c.csrf },
      payload: { value: 'dark' },
    });
    assert.equal(ok.statusCode, 200);
  });

  it('does not need a CSRF token for reads', async () => {
    const c = await session('owner');
    assert.equal(
      (await app.inject({ method: 'GET', url: '/v1/org', headers: { cookie: c.cookie } })).statusCode,
      200,
    );
  });

  it('rejects garbage and oversized cookies as unauthenticated', async () => {
    for (const cookie of [
      '__Host-bv_session=abc',
      `__Host-bv_session=${'A'.repeat(5000)}`,
      "__Host-bv_session=' OR 1=1 --",
    ]) {
      const r = await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie } });
      assert.equal(r.statusCode, 401);
    }
  });
});

describe('hostile input on the authentication routes', () => {
  it('validates before any work: oversized, wrongly typed and missing fields are 422', async () => {
    const cases: unknown[] = [
      { email: a.users.owner.email, password: 'x'.repeat(1025) },
      { email: `${'a'.repeat(300)}@example.test`, password: 'whatever password' },
      { email: ['a@b.c'], password: 'whatever password' },
      { email: a.users.owner.email, password: 123456789012 },
      { email: a.users.owner.email },
      { email: a.users.owner.email, password: 'whatever password', org: "org_' OR 1=1 --" },
    ];
    for (const payload of cases) {
      const r = await app.inject({ method: 'POST', url: '/v1/auth/login', payload: payload as object });
      assert.equal(r.statusCode, 422, JSON.stringify(payload).slice(0, 80));
      assert.equal(r.json().error.code, 'validation_failed');
    }
  });

  it('treats SQL and script payloads as plain data', async () => {
    for (const email of [
      "' OR '1'='1' --@x.test",
      '<script>alert(1)</script>@x.test',
      'a@b.c; DROP TABLE users',
    ]) {
      const r = await login(email, "' OR '1'='1", '10.0.0.77');
      assert.equal(r.statusCode, 401);
      assert.doesNotMatch(r.body, /script|DROP/);
    }
    const users = await t.db.selectFrom('users').select('id').execute();
    assert.ok(users.length >= 7);
  });

  it('rejects a non-JSON body and a body that is too large', async () => {
    const bad = await app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      headers: { 'content-type': 'application/json' },
      payload: '{"email":',
    });
    assert.equal(bad.statusCode, 400);
    const big = await app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      payload: { email: 'a@b.c', password: 'x'.repeat(2 * 1024 * 1024) },
    });
    assert.equal(big.statusCode, 413);
  });
});
