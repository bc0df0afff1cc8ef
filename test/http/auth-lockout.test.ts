import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ARGON2_DEFAULTS, createPasswordHasher } from '../../src/adapters/crypto/passwords.js';
import type { IdentityDeps } from '../../src/app/sessions.js';
import { IP_FAILURE_LIMIT } from '../../src/domain/auth-lockout.js';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { MINUTE, type SeededOrg, seedOrg, TestClock, testIdentity } from '../helpers/identity.js';

let t: TestDatabase;
let clock: TestClock;
let deps: IdentityDeps;
let app: Awaited<ReturnType<typeof buildTestApp>>;
let a: SeededOrg;
let verifyCalls = 0;

before(async () => {
  t = await createTestDatabase();
  clock = new TestClock();
  const base = testIdentity(t, clock);
  // Count the real argon2 verifications: every answer must cost the same work.
  const real = base.passwords;
  deps = {
    ...base,
    passwords: {
      ...real,
      verify: (h, p) => {
        verifyCalls++;
        return real.verify(h, p);
      },
    },
  };
  app = await buildTestApp(t, { identity: deps });
  a = await seedOrg(deps, 'Lockout Org');
});
after(async () => {
  await app.close();
  await t.drop();
});

const login = (email: string, password: string, ip = '10.1.0.1') =>
  app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password }, remoteAddress: ip });

function errorWithoutRequestId(body: string) {
  const { request_id: _r, ...rest } = JSON.parse(body).error;
  return rest;
}

describe('account lockout', () => {
  it('locks after 10 consecutive failures; a locked account answers exactly like an unknown one', async () => {
    const u = a.users.viewer;
    for (let i = 0; i < 10; i++) {
      const r = await login(u.email, `wrong guess number ${i}`);
      assert.equal(r.statusCode, 401);
    }
    verifyCalls = 0;
    const locked = await login(u.email, u.password); // the right password, but locked
    const unknown = await login('ghost@example.test', u.password);
    const wrong = await login(a.users.auditor.email, 'not the password at all');
    assert.equal(verifyCalls, 3, 'argon2 runs once for each, known or not, locked or not');
    for (const r of [locked, unknown, wrong]) assert.equal(r.statusCode, 401);
    assert.deepEqual(errorWithoutRequestId(locked.body), errorWithoutRequestId(unknown.body));
    assert.deepEqual(errorWithoutRequestId(wrong.body), errorWithoutRequestId(unknown.body));
    assert.equal(locked.json().error.code, 'invalid_credentials');
    const ev = await t.db
      .selectFrom('audit_events')
      .select(['action', 'target_id'])
      .where('action', '=', 'auth.account_locked')
      .execute();
    assert.deepEqual(ev, [{ action: 'auth.account_locked', target_id: u.id }]);
  });

  it('unlocks by itself after 30 minutes (injected clock, no sleeping)', async () => {
    const u = a.users.viewer;
    clock.advance(29 * MINUTE);
    assert.equal((await login(u.email, u.password)).statusCode, 401);
    clock.advance(MINUTE);
    assert.equal((await login(u.email, u.password)).statusCode, 200);
    const row = await t.db
      .selectFrom('users')
      .select(['failed_logins', 'locked_until'])
      .where('id', '=', u.id)
      .executeTakeFirstOrThrow();
    assert.deepEqual(row, { failed_logins: 0, locked_until: null });
  });

  it('a success resets the count: failures must be consecutive', async () => {
    const u = a.users.accountant;
    for (let i = 0; i < 9; i++) await login(u.email, `bad ${i} attempt here`);
    assert.equal((await login(u.email, u.password)).statusCode, 200);
    for (let i = 0; i < 9; i++) await login(u.email, `bad ${i} attempt again`);
    assert.equal((await login(u.email, u.password)).statusCode, 200);
  });

  it('an admin can unlock a member early (users:manage), not a viewer', async () => {
    const u = a.users.sales_rep;
    for (let i = 0; i < 10; i++) await login(u.email, `wrong guess ${i} again`);
    assert.equal((await login(u.email, u.password)).statusCode, 401);
    const admin = await login(a.users.admin.email, a.users.admin.password);
    const cookie = admin.headers['set-cookie'] as string[];
    const jar = cookie.map((c) => c.split(';')[0]).join('; ');
    const csrf =
      (cookie.find((c) => c.startsWith('bv_csrf=')) ?? '').split(';')[0]?.slice('bv_csrf='.length) ?? '';
    const r = await app.inject({
      method: 'POST',
      url: `/v1/users/${u.id}/unlock`,
      headers: { cookie: jar, 'x-csrf-token': csrf },
    });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal((await login(u.email, u.password)).statusCode, 200);
  });
});

describe('per-IP throttling', () => {
  it('refuses an address after its failure budget (429), whoever it targets; other addresses are unaffected', async () => {
    const ip = '10.9.9.9';
    for (let i = 0; i < IP_FAILURE_LIMIT; i++) {
      const r = await login(`spray${i}@example.test`, 'Spring2026 password!', ip);
      assert.equal(r.statusCode, 401);
    }
    const blocked = await login(a.users.owner.email, a.users.owner.password, ip);
    assert.equal(blocked.statusCode, 429);
    assert.equal(blocked.json().error.code, 'rate_limited');
    assert.equal((await login(a.users.owner.email, a.users.owner.password, '10.9.9.10')).statusCode, 200);
    clock.advance(15 * MINUTE);
    assert.equal((await login(a.users.owner.email, a.users.owner.password, ip)).statusCode, 200);
  });
});

describe('password hashing', () => {
  it('rehashes at login when the stored hash used weaker parameters', async () => {
    const u = a.users.finance_manager;
    const before = await t.db
      .selectFrom('users')
      .select('password_hash')
      .where('id', '=', u.id)
      .executeTakeFirstOrThrow();
    assert.match(before.password_hash ?? '', /m=19456/);
    const strong = await buildTestApp(t, {
      identity: { ...deps, passwords: createPasswordHasher(ARGON2_DEFAULTS) },
    });
    try {
      const r = await strong.inject({
        method: 'POST',
        url: '/v1/auth/login',
        payload: { email: u.email, password: u.password },
      });
      assert.equal(r.statusCode, 200);
    } finally {
      await strong.close();
    }
    const after = await t.db
      .selectFrom('users')
      .select('password_hash')
      .where('id', '=', u.id)
      .executeTakeFirstOrThrow();
    assert.match(after.password_hash ?? '', /^\$argon2id\$v=19\$m=65536,p=1,t=3\$/);
    assert.equal(
      (await login(u.email, u.password)).statusCode,
      200,
      'the weaker hasher still verifies, and does not downgrade',
    );
    const again = await t.db
      .selectFrom('users')
      .select('password_hash')
      .where('id', '=', u.id)
      .executeTakeFirstOrThrow();
    assert.equal(again.password_hash, after.password_hash);
  });

  it('refuses parameters below the OWASP floor', () => {
    assert.throws(() => createPasswordHasher({ memoryCost: 8192, timeCost: 3, parallelism: 1 }), /floor/);
    assert.throws(() => createPasswordHasher({ memoryCost: 65536, timeCost: 1, parallelism: 1 }), /floor/);
  });
});
