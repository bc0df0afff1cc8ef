import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { base32Decode, hotp, totp, totpStep } from '../../src/adapters/crypto/totp.js';
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

before(async () => {
  t = await createTestDatabase();
  clock = new TestClock();
  deps = testIdentity(t, clock);
  app = await buildTestApp(t, { identity: deps });
  a = await seedOrg(deps, 'MFA Org');
});
after(async () => {
  await app.close();
  await t.drop();
});

type Role = keyof SeededOrg['users'];
const login = (email: string, password: string) =>
  app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password } });

async function session(role: Role) {
  const r = await login(a.users[role].email, a.users[role].password);
  assert.equal(r.statusCode, 200, r.body);
  assert.equal(r.json().mfa_required, false);
  return cookiesFrom(r.headers['set-cookie']);
}

function post(c: { cookie: string; csrf: string }, url: string, payload?: unknown) {
  return app.inject({
    method: 'POST',
    url,
    headers: { cookie: c.cookie, 'x-csrf-token': c.csrf },
    ...(payload ? { payload } : {}),
  });
}

async function enrolTotp(role: Role) {
  const c = await session(role);
  const setup = await post(c, '/v1/me/mfa/totp');
  assert.equal(setup.statusCode, 200, setup.body);
  const { secret, otpauth_url } = setup.json();
  assert.match(otpauth_url, /^otpauth:\/\/totp\//);
  const confirm = await post(c, '/v1/me/mfa/totp/confirm', { code: totp(base32Decode(secret), clock.now()) });
  assert.equal(confirm.statusCode, 200, confirm.body);
  return { secret: secret as string, recovery: confirm.json().recovery_codes as string[], cookie: c };
}

describe('TOTP second factor', () => {
  let secret = '';
  let recovery: string[] = [];

  it('enrols: the secret is stored encrypted, ten recovery codes are stored hashed', async () => {
    const e = await enrolTotp('owner');
    secret = e.secret;
    recovery = e.recovery;
    assert.equal(recovery.length, 10);
    assert.equal(new Set(recovery).size, 10);
    const row = await t.db
      .selectFrom('users')
      .select(['totp_secret_enc', 'totp_enabled_at'])
      .where('id', '=', a.users.owner.id)
      .executeTakeFirstOrThrow();
    assert.ok(row.totp_enabled_at);
    assert.match(row.totp_secret_enc ?? '', /^bv1/);
    assert.ok(!(row.totp_secret_enc ?? '').includes(secret));
    const codes = await t.db
      .selectFrom('recovery_codes')
      .select('code_hash')
      .where('user_id', '=', a.users.owner.id)
      .execute();
    assert.equal(codes.length, 10);
    for (const c of recovery) assert.ok(!JSON.stringify(codes).includes(c.replaceAll('-', '')));
    const notice = await t.db
      .selectFrom('outbox')
      .select('kind')
      .where('user_id', '=', a.users.owner.id)
      .execute();
    assert.ok(notice.some((n) => n.kind === 'credential.mfa_changed'));
  });

  it('login then asks for the code; a right code gives a session flagged mfa', async () => {
    clock.advance(MINUTE);
    const r = await login(a.users.owner.email, a.users.owner.password);
    assert.equal(r.statusCode, 200);
    const body = r.json();
    assert.equal(body.mfa_required, true);
    assert.ok(body.methods.includes('totp'));
    assert.equal(r.headers['set-cookie'], undefined, 'no session before the second factor');
    const code = totp(base32Decode(secret), clock.now());
    const ok = await app.inject({
      method: 'POST',
      url: '/v1/auth/mfa',
      payload: { mfa_token: body.mfa_token, code },
    });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(ok.json().user.id, a.users.owner.id);
    const c = cookiesFrom(ok.headers['set-cookie']);
    assert.equal(
      (await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: c.cookie } })).statusCode,
      200,
    );

    // the same code again, on a new login, is refused (single use)
    const r2 = await login(a.users.owner.email, a.users.owner.password);
    const replay = await app.inject({
      method: 'POST',
      url: '/v1/auth/mfa',
      payload: { mfa_token: r2.json().mfa_token, code },
    });
    assert.equal(replay.statusCode, 401);
    assert.equal(replay.json().error.code, 'invalid_credentials');
    // and the mfa_token of the first login is spent
    const again = await app.inject({
      method: 'POST',
      url: '/v1/auth/mfa',
      payload: { mfa_token: body.mfa_token, code },
    });
    assert.equal(again.statusCode, 401);
    // the next step's code works
    const next = hotp(base32Decode(secret), totpStep(clock.now()) + 1n);
    const ok2 = await app.inject({
      method: 'POST',
      url: '/v1/auth/mfa',
      payload: { mfa_token: r2.json().mfa_token, code: next },
    });
    assert.equal(ok2.statusCode, 200, ok2.body);
  });

  it('recovery codes work exactly once', async () => {
    const code = recovery[0] ?? '';
    const r1 = await login(a.users.owner.email, a.users.owner.password);
    const ok = await app.inject({
      method: 'POST',
      url: '/v1/auth/mfa',
      payload: { mfa_token: r1.json().mfa_token, recovery_code: code.toUpperCase() },
    });
    assert.equal(ok.statusCode, 200, ok.body);
    const r2 = await login(a.users.owner.email, a.users.owner.password);
    const reuse = await app.inject({
      method: 'POST',
      url: '/v1/auth/mfa',
      payload: { mfa_token: r2.json().mfa_token, recovery_code: code },
    });
    assert.equal(reuse.statusCode, 401);
    const other = await app.inject({
      method: 'POST',
      url: '/v1/auth/mfa',
      payload: { mfa_token: r2.json().mfa_token, recovery_code: recovery[1] },
    });
    assert.equal(other.statusCode, 200);
  });

  it('an mfa_token dies after 5 wrong codes and expires after 5 minutes', async () => {
    const r = await login(a.users.owner.email, a.users.owner.password);
    const token = r.json().mfa_token;
    for (let i = 0; i < 5; i++) {
      const bad = await app.inject({
        method: 'POST',
        url: '/v1/auth/mfa',
        payload: { mfa_token: token, code: '000000' },
      });
      assert.equal(bad.statusCode, 401);
    }
    const good = totp(base32Decode(secret), clock.now());
    const late = await app.inject({
      method: 'POST',
      url: '/v1/auth/mfa',
      payload: { mfa_token: token, code: good },
    });
    assert.equal(late.statusCode, 401);
    await t.db.updateTable('users').set({ failed_logins: 0 }).where('id', '=', a.users.owner.id).execute();
    const r2 = await login(a.users.owner.email, a.users.owner.password);
    clock.advance(5 * MINUTE + 1000);
    const expired = await app.inject({
      method: 'POST',
      url: '/v1/auth/mfa',
      payload: { mfa_token: r2.json().mfa_token, code: totp(base32Decode(secret), clock.now()) },
    });
    assert.equal(expired.statusCode, 401);
  });

  it('changing MFA needs a fresh authentication (step-up within 5 minutes)', async () => {
    const e = await enrolTotp('admin');
    clock.advance(6 * MINUTE);
    const c = e.cookie;
    const del = await app.inject({
      method: 'DELETE',
      url: '/v1/me/mfa/totp',
      headers: { cookie: c.cookie, 'x-csrf-token': c.csrf },
    });
    assert.equal(del.statusCode, 403);
    assert.equal(del.json().error.code, 'step_up_required');
    const wrong = await post(c, '/v1/auth/step_up', { code: '123456' });
    assert.equal(wrong.statusCode, 401);
    const su = await post(c, '/v1/auth/step_up', { code: totp(base32Decode(e.secret), clock.now()) });
    assert.equal(su.statusCode, 200, su.body);
    const fresh = cookiesFrom(su.headers['set-cookie']);
    const del2 = await app.inject({
      method: 'DELETE',
      url: '/v1/me/mfa/totp',
      headers: { cookie: fresh.cookie, 'x-csrf-token': fresh.csrf },
    });
    assert.equal(del2.statusCode, 200, del2.body);
    const r = await login(a.users.admin.email, a.users.admin.password);
    assert.equal(r.json().mfa_required, false);
  });
});

describe('"MFA required" org setting', () => {
  it('forces enrolment at next login: only /v1/me and enrolment are reachable until then', async () => {
    await t.db
      .insertInto('org_settings')
      .values({ org_id: a.orgId, key: 'auth.mfa_required', value: 'true' })
      .execute();
    const r = await login(a.users.viewer.email, a.users.viewer.password);
    assert.equal(r.statusCode, 200);
    assert.equal(r.json().mfa_enrolment_required, true);
    const c = cookiesFrom(r.headers['set-cookie']);
    assert.equal(
      (await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: c.cookie } })).statusCode,
      200,
    );
    const blocked = await app.inject({ method: 'GET', url: '/v1/org', headers: { cookie: c.cookie } });
    assert.equal(blocked.statusCode, 403);
    assert.equal(blocked.json().error.code, 'mfa_enrolment_required');
    // step-up (needed after 5 minutes for enrolment) keeps the restriction on the rotated session
    clock.advance(6 * MINUTE);
    const late = await post(c, '/v1/me/mfa/totp');
    assert.equal(late.json().error.code, 'step_up_required');
    const su = await post(c, '/v1/auth/step_up', { password: a.users.viewer.password });
    assert.equal(su.statusCode, 200, su.body);
    const rotated = cookiesFrom(su.headers['set-cookie']);
    const still = await app.inject({ method: 'GET', url: '/v1/org', headers: { cookie: rotated.cookie } });
    assert.equal(still.json().error.code, 'mfa_enrolment_required');
    Object.assign(c, rotated);
    const setup = await post(c, '/v1/me/mfa/totp');
    assert.equal(setup.statusCode, 200, setup.body);
    const conf = await post(c, '/v1/me/mfa/totp/confirm', {
      code: totp(base32Decode(setup.json().secret), clock.now()),
    });
    assert.equal(conf.statusCode, 200, conf.body);
    assert.equal(
      (await app.inject({ method: 'GET', url: '/v1/org', headers: { cookie: c.cookie } })).statusCode,
      200,
    );
    await t.db.deleteFrom('org_settings').where('key', '=', 'auth.mfa_required').execute();
  });
});

describe('passwords', () => {
  it('change: needs the current password, checks the policy, revokes other sessions, queues a notice', async () => {
    const u = a.users.accountant;
    const c1 = await session('accountant');
    const c2 = await session('accountant');
    const wrong = await post(c1, '/v1/auth/password', {
      current_password: 'not my password!',
      new_password: 'a brand new passphrase',
    });
    assert.equal(wrong.statusCode, 401);
    const weak = await post(c1, '/v1/auth/password', {
      current_password: u.password,
      new_password: 'qwerty123456',
    });
    assert.equal(weak.statusCode, 422);
    assert.equal(weak.json().error.code, 'password_rejected');
    assert.doesNotMatch(weak.body, /qwerty123456/);
    const short = await post(c1, '/v1/auth/password', {
      current_password: u.password,
      new_password: 'short',
    });
    assert.equal(short.json().error.code, 'password_rejected');
    const ok = await post(c1, '/v1/auth/password', {
      current_password: u.password,
      new_password: 'a brand new passphrase',
    });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(
      (await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: c1.cookie } })).statusCode,
      200,
    );
    assert.equal(
      (await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: c2.cookie } })).statusCode,
      401,
    );
    const notice = await t.db.selectFrom('outbox').select('kind').where('user_id', '=', u.id).execute();
    assert.ok(notice.some((n) => n.kind === 'credential.password_changed'));
    assert.equal((await login(u.email, 'a brand new passphrase')).statusCode, 200);
    u.password = 'a brand new passphrase';
  });

  it('reset: same answer for unknown emails, single-use token, revokes sessions, never bypasses MFA', async () => {
    const e = await enrolTotp('auditor');
    const u = a.users.auditor;
    const unknown = await app.inject({
      method: 'POST',
      url: '/v1/auth/password_reset',
      payload: { email: 'nobody@example.test' },
    });
    const known = await app.inject({
      method: 'POST',
      url: '/v1/auth/password_reset',
      payload: { email: u.email },
    });
    assert.equal(unknown.statusCode, 202);
    assert.equal(known.statusCode, 202);
    assert.deepEqual(unknown.json(), known.json());
    const row = await t.db
      .selectFrom('outbox')
      .select('payload')
      .where('user_id', '=', u.id)
      .where('kind', '=', 'password_reset.requested')
      .executeTakeFirstOrThrow();
    const token = String(row.payload.token);
    const done = await app.inject({
      method: 'POST',
      url: '/v1/auth/password_reset/complete',
      payload: { token, new_password: 'reset passphrase for the auditor' },
    });
    assert.equal(done.statusCode, 200, done.body);
    assert.equal(done.headers['set-cookie'], undefined, 'a reset signs nobody in');
    const reuse = await app.inject({
      method: 'POST',
      url: '/v1/auth/password_reset/complete',
      payload: { token, new_password: 'another reset passphrase' },
    });
    assert.equal(reuse.statusCode, 422);
    assert.equal(reuse.json().error.code, 'token_invalid');
    assert.equal(
      (await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: e.cookie.cookie } })).statusCode,
      401,
    );
    const r = await login(u.email, 'reset passphrase for the auditor');
    assert.equal(r.statusCode, 200);
    assert.equal(r.json().mfa_required, true, 'the second factor is still required after a reset');
  });

  it('reset links are limited to 3 per account and hour, with the same answer', async () => {
    const u = a.users.sales_rep;
    for (let i = 0; i < 5; i++) {
      const r = await app.inject({
        method: 'POST',
        url: '/v1/auth/password_reset',
        payload: { email: u.email },
      });
      assert.equal(r.statusCode, 202);
    }
    const rows = await t.db
      .selectFrom('outbox')
      .select('id')
      .where('user_id', '=', u.id)
      .where('kind', '=', 'password_reset.requested')
      .execute();
    assert.equal(rows.length, 3);
    clock.advance(61 * MINUTE);
    await app.inject({ method: 'POST', url: '/v1/auth/password_reset', payload: { email: u.email } });
    const after = await t.db
      .selectFrom('outbox')
      .select('id')
      .where('user_id', '=', u.id)
      .where('kind', '=', 'password_reset.requested')
      .execute();
    assert.equal(after.length, 4);
  });
});
