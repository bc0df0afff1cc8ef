import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { base32Decode, hotp, totp, totpStep } from '../../src/adapters/crypto/totp.js';
import { createLogger } from '../../src/adapters/log/logger.js';
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

/**
 * Runs a scripted session through every credential flow with a logger at `trace`, seeding
 * known secrets (passwords, session and CSRF tokens, TOTP secret and codes, recovery codes,
 * API key, invitation and reset tokens, MFA tokens), then greps every log line, every error
 * body and the audit trail for each of them.
 */
const lines: string[] = [];
const sink = new Writable({
  write(chunk, _enc, cb) {
    lines.push(...String(chunk).split('\n').filter(Boolean));
    cb();
  },
});

let t: TestDatabase;
let clock: TestClock;
let deps: IdentityDeps;
let app: Awaited<ReturnType<typeof buildTestApp>>;
let a: SeededOrg;
const secrets = new Map<string, string>(); // value -> what it is
const errorBodies: string[] = [];

function seed(what: string, value: string | undefined) {
  assert.ok(value && value.length >= 6, `${what} missing`);
  secrets.set(value, what);
}

before(async () => {
  t = await createTestDatabase();
  clock = new TestClock();
  const logger = createLogger('trace', sink);
  deps = { ...testIdentity(t, clock), warn: (e, m) => logger.warn(e, m) };
  app = await buildTestApp(t, { identity: deps, logger });
  a = await seedOrg(deps, 'Logging Org');
  for (const [role, u] of Object.entries(a.users)) seed(`${role} password`, u.password);
});
after(async () => {
  await app.close();
  await t.drop();
});

async function req(
  method: string,
  url: string,
  opts: { cookie?: { cookie: string; csrf: string }; bearer?: string; payload?: unknown } = {},
) {
  const headers: Record<string, string> = { 'user-agent': 'secrets-test' };
  if (opts.cookie) {
    headers.cookie = opts.cookie.cookie;
    headers['x-csrf-token'] = opts.cookie.csrf;
  }
  if (opts.bearer) headers.authorization = `Bearer ${opts.bearer}`;
  const r = await app.inject({
    method: method as 'GET',
    url,
    headers,
    ...(opts.payload !== undefined ? { payload: opts.payload as object } : {}),
  });
  if (r.statusCode >= 400) errorBodies.push(r.body);
  return r;
}

describe('no secret reaches a log line, an error body or the audit trail', () => {
  it('runs the scripted session', async () => {
    const owner = a.users.owner;
    // failed logins carrying real passwords of other accounts and a typo of the right one
    await req('POST', '/v1/auth/login', {
      payload: { email: owner.email, password: a.users.viewer.password },
    });
    await req('POST', '/v1/auth/login', {
      payload: { email: 'nobody@example.test', password: owner.password },
    });
    const typo = `${owner.password}x`;
    seed('typo password', typo);
    await req('POST', '/v1/auth/login', { payload: { email: owner.email, password: typo } });
    const hostile = { email: owner.email, password: owner.password, extra: "'; DROP TABLE users; --" };
    await req('POST', '/v1/auth/login', { payload: hostile });

    const login = await req('POST', '/v1/auth/login', {
      payload: { email: owner.email, password: owner.password },
    });
    assert.equal(login.statusCode, 200);
    const c = cookiesFrom(login.headers['set-cookie']);
    seed('session token', c.token);
    seed('csrf token', c.csrf);
    // a token in a query string is not logged either
    await req('GET', `/v1/me?token=${c.token}`, { cookie: c });
    // CSRF failure and a bad cookie
    await req('PUT', '/v1/settings/ui.theme', {
      cookie: { cookie: c.cookie, csrf: 'forged-csrf-token-value' },
      payload: { value: 1 },
    });

    // TOTP enrolment and MFA login
    const setup = await req('POST', '/v1/me/mfa/totp', { cookie: c });
    const secret = setup.json().secret as string;
    seed('totp secret', secret);
    const code = totp(base32Decode(secret), clock.now());
    seed('totp code', `"${code}"`);
    const conf = await req('POST', '/v1/me/mfa/totp/confirm', { cookie: c, payload: { code } });
    const recovery = conf.json().recovery_codes as string[];
    for (const r of recovery) seed('recovery code', r);
    clock.advance(MINUTE);
    const m1 = await req('POST', '/v1/auth/login', {
      payload: { email: owner.email, password: owner.password },
    });
    const mfaToken = m1.json().mfa_token as string;
    seed('mfa token', mfaToken);
    await req('POST', '/v1/auth/mfa', { payload: { mfa_token: mfaToken, code: '000000' } });
    await req('POST', '/v1/auth/mfa', { payload: { mfa_token: mfaToken, recovery_code: recovery[0] } });
    const m2 = await req('POST', '/v1/auth/login', {
      payload: { email: owner.email, password: owner.password },
    });
    seed('mfa token 2', m2.json().mfa_token);
    const next = hotp(base32Decode(secret), totpStep(clock.now()) + 1n);
    const s2 = await req('POST', '/v1/auth/mfa', { payload: { mfa_token: m2.json().mfa_token, code: next } });
    const c2 = cookiesFrom(s2.headers['set-cookie']);
    seed('session token 2', c2.token);
    await req('POST', '/v1/auth/step_up', { cookie: c2, payload: { password: typo } });
    const su = await req('POST', '/v1/auth/step_up', { cookie: c2, payload: { password: owner.password } });
    const c3 = cookiesFrom(su.headers['set-cookie']);
    seed('session token 3', c3.token);

    // API keys
    const key = await req('POST', '/v1/api_keys', { cookie: c3, payload: { name: 'logging' } });
    assert.equal(key.statusCode, 201, key.body);
    seed('api key', key.json().secret);
    await req('GET', '/v1/org', { bearer: key.json().secret });
    await req('GET', '/v1/org', { bearer: `${key.json().secret}tampered` });
    await req('DELETE', `/v1/api_keys/${key.json().id}`, { cookie: c3 });
    await req('GET', '/v1/org', { bearer: key.json().secret });

    // outbound webhook signing secrets (shown once at creation and rotation)
    const hook = await req('POST', '/v1/webhook_endpoints', {
      cookie: c3,
      payload: { url: 'https://93.184.215.14/hook', enabled_events: ['*'] },
    });
    assert.equal(hook.statusCode, 200, hook.body);
    seed('webhook secret', hook.json().secret);
    const rotated = await req('POST', `/v1/webhook_endpoints/${hook.json().id}/rotate_secret`, {
      cookie: c3,
    });
    seed('rotated webhook secret', rotated.json().secret);
    await req('GET', `/v1/webhook_endpoints/${hook.json().id}`, { cookie: c3 });
    await req('PATCH', `/v1/webhook_endpoints/${hook.json().id}`, {
      cookie: c3,
      payload: { url: 'https://169.254.169.254/latest/meta-data' },
    });

    // invitations
    const inv = await req('POST', '/v1/users', {
      cookie: c3,
      payload: { email: 'newbie@example.test', role: 'viewer' },
    });
    seed('invitation token', inv.json().token);
    const newbiePassword = 'newbie passphrase never logged';
    seed('newbie password', newbiePassword);
    await req('POST', '/v1/auth/invitations/accept', {
      payload: { token: inv.json().token, password: 'password' },
    });
    await req('POST', '/v1/auth/invitations/accept', {
      payload: { token: inv.json().token, password: newbiePassword },
    });
    await req('POST', '/v1/auth/invitations/accept', {
      payload: { token: inv.json().token, password: newbiePassword },
    });

    // password change and reset
    const changed = 'changed passphrase never logged';
    seed('changed password', changed);
    await req('POST', '/v1/auth/password', {
      cookie: c3,
      payload: { current_password: typo, new_password: changed },
    });
    await req('POST', '/v1/auth/password', {
      cookie: c3,
      payload: { current_password: owner.password, new_password: 'qwerty123456' },
    });
    await req('POST', '/v1/auth/password', {
      cookie: c3,
      payload: { current_password: owner.password, new_password: changed },
    });
    await req('POST', '/v1/auth/password_reset', { payload: { email: a.users.viewer.email } });
    const reset = await t.db
      .selectFrom('outbox')
      .select('payload')
      .where('kind', '=', 'password_reset.requested')
      .executeTakeFirstOrThrow();
    const resetToken = String(reset.payload.token);
    seed('reset token', resetToken);
    const resetPw = 'reset passphrase never logged';
    seed('reset password', resetPw);
    await req('POST', '/v1/auth/password_reset/complete', {
      payload: { token: resetToken, new_password: resetPw },
    });
    await req('POST', '/v1/auth/password_reset/complete', {
      payload: { token: resetToken, new_password: resetPw },
    });

    // break-glass (a loud warning line) and logout
    await req('POST', '/v1/break_glass', {
      cookie: c3,
      payload: { user: a.users.auditor.id, reason: 'logging test emergency', duration_minutes: 10 },
    });
    await req('POST', '/v1/auth/logout', { cookie: c3 });
    await req('GET', '/v1/me', { cookie: c3 });
    // locked account
    for (let i = 0; i < 11; i++)
      await req('POST', '/v1/auth/login', { payload: { email: a.users.sales_rep.email, password: typo } });
    await req('POST', '/v1/auth/login', {
      payload: { email: a.users.sales_rep.email, password: a.users.sales_rep.password },
    });
  });

  it('found log lines and error bodies to check (the script really ran and logged)', () => {
    assert.ok(lines.length > 80, `only ${lines.length} log lines`);
    assert.ok(lines.some((l) => l.includes('BREAK-GLASS')));
    assert.ok(errorBodies.length > 15, `only ${errorBodies.length} error bodies`);
    assert.ok(secrets.size > 20);
  });

  it('no log line contains any seeded secret', () => {
    const leaks: string[] = [];
    for (const line of lines) {
      for (const [value, what] of secrets)
        if (line.includes(value)) leaks.push(`${what} in: ${line.slice(0, 200)}`);
    }
    assert.deepEqual(leaks, []);
  });

  it('no error body contains any seeded secret', () => {
    const leaks: string[] = [];
    for (const body of errorBodies) {
      for (const [value, what] of secrets)
        if (body.includes(value)) leaks.push(`${what} in: ${body.slice(0, 200)}`);
    }
    assert.deepEqual(leaks, []);
  });

  it('the audit trail holds no secret either', async () => {
    const rows = await t.db.selectFrom('audit_events').selectAll().execute();
    const dump = JSON.stringify(rows);
    const leaks = [...secrets].filter(([value]) => dump.includes(value)).map(([, what]) => what);
    assert.deepEqual(leaks, []);
    assert.ok(rows.length > 30);
  });
});
