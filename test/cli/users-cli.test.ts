import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { cookiesFrom, testIdentity } from '../helpers/identity.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let t: TestDatabase;
let home: string;

function billvault(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/billvault.js', ...args], {
      env: { PATH: process.env.PATH, HOME: home, BILLVAULT_LOG_LEVEL: 'warn', DATABASE_URL: t.url, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

const OWNER_PW = 'owner passphrase for the cli test';
const USER_PW = 'a different passphrase for bob';

before(async () => {
  t = await createTestDatabase({ migrate: false });
  home = mkdtempSync(path.join(tmpdir(), 'bv-home-'));
});
after(() => t.drop());

describe('billvault init / user / apikey', () => {
  let orgId = '';
  let keyId = '';
  let secret = '';

  it('init creates the org and its owner, who can then sign in; the password is never printed', async () => {
    const weak = await billvault(['init', '--org-name', 'Acme', '--owner-email', 'owner@acme.test'], {
      BILLVAULT_OWNER_PASSWORD: 'password1234',
    });
    assert.notEqual(weak.code, 0);
    assert.match(weak.stderr, /too common/);
    const none = await billvault(['init', '--org-name', 'Acme', '--owner-email', 'owner@acme.test']);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /BILLVAULT_OWNER_PASSWORD/);
    const r = await billvault(['--json', 'init', '--org-name', 'Acme', '--owner-email', 'Owner@Acme.test'], {
      BILLVAULT_OWNER_PASSWORD: OWNER_PW,
    });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    orgId = out.org.id;
    assert.match(out.owner.id, /^usr_/);
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(OWNER_PW));
    const app = await buildTestApp(t, { identity: testIdentity(t) });
    try {
      const login = await app.inject({
        method: 'POST',
        url: '/v1/auth/login',
        payload: { email: 'owner@acme.test', password: OWNER_PW },
      });
      assert.equal(login.statusCode, 200, login.body);
      const me = await app.inject({
        method: 'GET',
        url: '/v1/me',
        headers: { cookie: cookiesFrom(login.headers['set-cookie']).cookie },
      });
      assert.equal(me.json().role, 'owner');
      // production parameters were used for the hash, and a login never downgrades it
      const row = await t.db.selectFrom('users').select('password_hash').executeTakeFirstOrThrow();
      assert.match(row.password_hash ?? '', /^\$argon2id\$v=19\$m=65536,p=1,t=3\$/);
    } finally {
      await app.close();
    }
  });

  it('user create --json prints {"id": "usr_…"}; a bad role is one line', async () => {
    const bad = await billvault(['user', 'create', '--email', 'bob@acme.test', '--role', 'root'], {
      BILLVAULT_USER_PASSWORD: USER_PW,
    });
    assert.notEqual(bad.code, 0);
    assert.equal(bad.stderr.trim().split('\n').length, 1);
    const r = await billvault(
      ['user', 'create', '--email', 'bob@acme.test', '--role', 'accountant', '--json'],
      {
        BILLVAULT_USER_PASSWORD: USER_PW,
      },
    );
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(out), ['id']);
    assert.match(out.id, /^usr_[0-9a-z]{32}$/);
    const dup = await billvault(
      ['user', 'create', '--email', 'bob@acme.test', '--role', 'viewer', '--org', orgId],
      {
        BILLVAULT_USER_PASSWORD: USER_PW,
      },
    );
    assert.notEqual(dup.code, 0);
    assert.match(dup.stderr, /already a member/);
  });

  it('apikey create --json prints id and a bv_live_ secret that authenticates; revoke kills it', async () => {
    const r = await billvault([
      'apikey',
      'create',
      '--name',
      'ci',
      '--scopes',
      'invoices:read,org:read',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(out), ['id', 'secret']);
    keyId = out.id;
    secret = out.secret;
    assert.match(keyId, /^key_[0-9a-z]{32}$/);
    assert.match(secret, /^bv_live_[A-Za-z0-9_-]{43}$/);
    const app = await buildTestApp(t, { identity: testIdentity(t) });
    try {
      const org = await app.inject({
        method: 'GET',
        url: '/v1/org',
        headers: { authorization: `Bearer ${secret}` },
      });
      assert.equal(org.statusCode, 200, org.body);
      const users = await app.inject({
        method: 'GET',
        url: '/v1/users',
        headers: { authorization: `Bearer ${secret}` },
      });
      assert.equal(users.statusCode, 403); // outside the key's scopes
      const rv = await billvault(['apikey', 'revoke', keyId, '--json']);
      assert.equal(rv.code, 0, rv.stderr);
      const after = await app.inject({
        method: 'GET',
        url: '/v1/org',
        headers: { authorization: `Bearer ${secret}` },
      });
      assert.equal(after.statusCode, 401);
    } finally {
      await app.close();
    }
    const unknownScope = await billvault(['apikey', 'create', '--name', 'x', '--scopes', 'root:all']);
    assert.notEqual(unknownScope.code, 0);
    assert.match(unknownScope.stderr, /Unknown scope/);
  });

  it('prompts for the password on a terminal without echoing it (a real pty through script(1))', async () => {
    const pw = 'typed at a hidden prompt';
    const out = await new Promise<string>((resolve) => {
      const child = spawn(
        'script',
        [
          '-qec',
          'node bin/billvault.js user create --email carol@acme.test --role viewer --json',
          '/dev/null',
        ],
        {
          env: { PATH: process.env.PATH, HOME: home, BILLVAULT_LOG_LEVEL: 'warn', DATABASE_URL: t.url },
          stdio: ['pipe', 'pipe', 'pipe'],
        },
      );
      let text = '';
      let answered = 0;
      child.stdout.on('data', (d) => {
        text += d;
        const prompts = (text.match(/Password for|Repeat the password/g) ?? []).length;
        while (answered < prompts) {
          child.stdin.write(`${pw}\r`);
          answered++;
        }
      });
      child.on('exit', () => resolve(text));
    });
    assert.match(out, /Password for carol@acme\.test: /);
    assert.match(out, /Repeat the password: /);
    assert.match(out, /\{"id":"usr_[0-9a-z]{32}"\}/);
    assert.ok(!out.includes(pw), 'the password is never echoed');
  });

  it('user disable and user unlock', async () => {
    const app = await buildTestApp(t, { identity: testIdentity(t) });
    try {
      const login = await app.inject({
        method: 'POST',
        url: '/v1/auth/login',
        payload: { email: 'bob@acme.test', password: USER_PW },
      });
      assert.equal(login.statusCode, 200);
      const cookie = cookiesFrom(login.headers['set-cookie']).cookie;
      const d = await billvault(['user', 'disable', '--email', 'bob@acme.test', '--json']);
      assert.equal(d.code, 0, d.stderr);
      assert.equal(JSON.parse(d.stdout).sessions_revoked, 1);
      assert.equal((await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie } })).statusCode, 401);
      await t.db
        .updateTable('users')
        .set({ failed_logins: 10, locked_until: new Date(Date.now() + 3600_000) })
        .where('email', '=', 'owner@acme.test')
        .execute();
      const u = await billvault(['user', 'unlock', '--email', 'owner@acme.test']);
      assert.equal(u.code, 0, u.stderr);
      const row = await t.db
        .selectFrom('users')
        .select(['failed_logins', 'locked_until'])
        .where('email', '=', 'owner@acme.test')
        .executeTakeFirstOrThrow();
      assert.deepEqual(row, { failed_logins: 0, locked_until: null });
      const missing = await billvault(['user', 'disable', '--email', 'nobody@acme.test']);
      assert.notEqual(missing.code, 0);
    } finally {
      await app.close();
    }
  });
});
