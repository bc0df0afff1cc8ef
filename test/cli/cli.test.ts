import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `billvault …` exactly as a user would (`npx billvault` resolves to bin/billvault.js). */
function billvault(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/billvault.js', ...args], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, BILLVAULT_LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

function oneLineError(r: Run, pattern: RegExp) {
  assert.notEqual(r.code, 0);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one line, got:\n${r.stderr}`);
  assert.match(lines[0] ?? '', /^billvault: error: /);
  assert.match(lines[0] ?? '', pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /); // no stack trace
}

let t: TestDatabase;
before(async () => {
  t = await createTestDatabase({ migrate: false });
});
after(() => t.drop());

describe('billvault CLI', () => {
  it('--help lists the commands', async () => {
    const r = await billvault(['--help']);
    assert.equal(r.code, 0);
    for (const c of ['serve', 'migrate', 'init', 'doctor']) assert.match(r.stdout, new RegExp(`\\b${c}\\b`));
    const s = await billvault(['serve', '--help']);
    assert.match(s.stdout, /--tls-cert/);
  });

  it('a bad DATABASE_URL is one clear line', async () => {
    oneLineError(
      await billvault(['migrate'], { DATABASE_URL: 'mysql://root:hunter2@db/x' }),
      /DATABASE_URL: must be a URL/,
    );
    const unreachable = await billvault(['migrate'], { DATABASE_URL: 'postgres://u:hunter2@127.0.0.1:1/x' });
    oneLineError(unreachable, /cannot connect to PostgreSQL at postgres:\/\/127\.0\.0\.1:1\/x/);
    assert.doesNotMatch(unreachable.stderr, /hunter2/);
  });

  it('a bad port is one clear line', async () => {
    oneLineError(await billvault(['serve'], { PORT: 'http' }), /PORT: must be a whole number/);
    oneLineError(await billvault(['serve', '--port', '99999']), /PORT: must be at most 65535/);
  });

  it('refuses a public listener without TLS', async () => {
    oneLineError(
      await billvault(['serve', '--host', '0.0.0.0'], { DATABASE_URL: t.url }),
      /refusing to listen on 0\.0\.0\.0 without TLS/,
    );
  });

  it('migrate applies the schema on PostgreSQL, then reports it current', async () => {
    const first = await billvault(['--json', 'migrate'], { DATABASE_URL: t.url });
    assert.equal(first.code, 0, first.stderr);
    assert.ok(JSON.parse(first.stdout).applied.includes('0001_foundation.sql'));
    const again = await billvault(['migrate'], { DATABASE_URL: t.url });
    assert.equal(again.code, 0);
    assert.match(again.stdout, /schema is current/);
  });

  it('init refuses an unknown currency in one line, then creates the org once', async () => {
    const env = { DATABASE_URL: t.url, BILLVAULT_OWNER_PASSWORD: 'correct horse battery staple' };
    oneLineError(
      await billvault(
        ['init', '--org-name', 'Acme', '--owner-email', 'o@example.com', '--currency', 'XYZ'],
        env,
      ),
      /unknown currency "XYZ"/i,
    );
    const ok = await billvault(
      ['--json', 'init', '--org-name', 'Acme', '--owner-email', 'o@example.com', '--currency', 'usd'],
      env,
    );
    assert.equal(ok.code, 0, ok.stderr);
    const out = JSON.parse(ok.stdout);
    assert.match(out.org.id, /^org_/);
    assert.equal(out.org.base_currency, 'USD');
    oneLineError(
      await billvault(['init', '--org-name', 'Again', '--owner-email', 'o@example.com'], env),
      /already initialised/,
    );
  });

  it('doctor exits non-zero and names each problem', async () => {
    const r = await billvault(['--json', 'doctor'], {
      DATABASE_URL: 'postgres://u@127.0.0.1:1/x',
      HOST: '0.0.0.0',
      BILLVAULT_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'bv-doc-')),
    });
    assert.notEqual(r.code, 0);
    const report = JSON.parse(r.stdout);
    assert.equal(report.ok, false);
    assert.ok(report.problems.some((p: string) => /TLS is off on the public address 0\.0\.0\.0/.test(p)));
    assert.ok(report.problems.some((p: string) => /database: cannot connect/.test(p)));
  });

  it('an unknown command or option fails with a non-zero exit', async () => {
    const r = await billvault(['frobnicate']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /unknown command/);
  });
});
