// The identity stack as deployed: `billvault init` creates the owner, `billvault serve` wires
// the real authenticator, argon2id, the field cipher (master key from the environment) and
// TOTP; a client signs in over HTTP, enrols TOTP, and must then give a code.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { base32Decode, totp } from '../../src/adapters/crypto/totp.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let t: TestDatabase;
let env: Record<string, string>;
const PASSWORD = 'an owner passphrase for the e2e test';

function run(
  args: string[],
  extra: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/billvault.js', ...args], {
      env: { ...env, ...extra },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => resolve({ code: code ?? 1, out, err }));
  });
}

function serve(): Promise<{ child: ChildProcess; url: string; logs: () => string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/billvault.js', 'serve'], {
      env: { ...env, PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d) => (out += d));
    child.stderr?.on('data', (d) => {
      err += d;
      const m = /serving on (http:\/\/\S+)/.exec(err);
      if (m?.[1]) resolve({ child, url: m[1], logs: () => out + err });
    });
    child.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${err}`)));
  });
}

function cookieJar(res: Response) {
  const set = res.headers.getSetCookie();
  const pairs = set.map((c) => c.split(';')[0] ?? '');
  const csrf = pairs.find((p) => p.startsWith('bv_csrf='))?.slice('bv_csrf='.length) ?? '';
  return { cookie: pairs.join('; '), csrf, raw: set };
}

before(async () => {
  t = await createTestDatabase({ migrate: false });
  env = {
    PATH: process.env.PATH ?? '',
    HOME: mkdtempSync(path.join(tmpdir(), 'bv-e2e-home-')),
    DATABASE_URL: t.url,
    BILLVAULT_MASTER_KEY: randomBytes(32).toString('base64'),
    BILLVAULT_LOG_LEVEL: 'info',
  };
});
after(() => t.drop());

describe('identity end to end through billvault serve', () => {
  it('init → login → /v1/me → TOTP enrolment → MFA login → logout', async () => {
    const init = await run(['--json', 'init', '--org-name', 'E2E Ltd', '--owner-email', 'boss@e2e.test'], {
      BILLVAULT_OWNER_PASSWORD: PASSWORD,
    });
    assert.equal(init.code, 0, init.err);
    const s = await serve();
    try {
      const login = await fetch(`${s.url}/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'boss@e2e.test', password: PASSWORD }),
      });
      assert.equal(login.status, 200);
      const jar = cookieJar(login);
      assert.ok(
        jar.raw.some((c) => c.startsWith('__Host-bv_session=') && /HttpOnly/.test(c) && /Secure/.test(c)),
      );
      const me = await fetch(`${s.url}/v1/me`, { headers: { cookie: jar.cookie } });
      assert.equal(me.status, 200);
      assert.equal(((await me.json()) as { role: string }).role, 'owner');
      const noCsrf = await fetch(`${s.url}/v1/me/mfa/totp`, {
        method: 'POST',
        headers: { cookie: jar.cookie },
      });
      assert.equal(noCsrf.status, 403);
      const setup = await fetch(`${s.url}/v1/me/mfa/totp`, {
        method: 'POST',
        headers: { cookie: jar.cookie, 'x-csrf-token': jar.csrf },
      });
      assert.equal(setup.status, 200);
      const { secret } = (await setup.json()) as { secret: string };
      const confirm = await fetch(`${s.url}/v1/me/mfa/totp/confirm`, {
        method: 'POST',
        headers: { cookie: jar.cookie, 'x-csrf-token': jar.csrf, 'content-type': 'application/json' },
        body: JSON.stringify({ code: totp(base32Decode(secret), new Date()) }),
      });
      assert.equal(confirm.status, 200, await confirm.clone().text());
      const again = await fetch(`${s.url}/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'boss@e2e.test', password: PASSWORD }),
      });
      const body = (await again.json()) as { mfa_required: boolean };
      assert.equal(body.mfa_required, true);
      const out = await fetch(`${s.url}/v1/auth/logout`, {
        method: 'POST',
        headers: { cookie: jar.cookie, 'x-csrf-token': jar.csrf },
      });
      assert.equal(out.status, 200);
      assert.equal((await fetch(`${s.url}/v1/me`, { headers: { cookie: jar.cookie } })).status, 401);
      for (const secretValue of [PASSWORD, secret, jar.csrf]) assert.ok(!s.logs().includes(secretValue));
    } finally {
      const exited = new Promise((r) => s.child.once('exit', r));
      s.child.kill('SIGTERM');
      await exited;
    }
    const row = await t.db.selectFrom('users').select('totp_secret_enc').executeTakeFirstOrThrow();
    assert.match(row.totp_secret_enc ?? '', /^bv1/);
  });
});
