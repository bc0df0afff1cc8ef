// `billvault serve` as a user runs it (`npm start` runs exactly this): on a fresh data dir with
// the embedded server, and on an external PostgreSQL named by DATABASE_URL.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

interface Served {
  child: ChildProcess;
  url: string;
  stdout: () => string;
  stderr: () => string;
}

function serve(env: Record<string, string>): Promise<Served> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/billvault.js', 'serve'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d) => (out += d));
    child.stderr?.on('data', (d) => {
      err += d;
      const m = /serving on (http:\/\/\S+)/.exec(err);
      if (m?.[1]) resolve({ child, url: m[1], stdout: () => out, stderr: () => err });
    });
    child.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${err}`)));
  });
}

async function stop(s: Served): Promise<number | null> {
  const exited = new Promise<number | null>((r) => s.child.once('exit', (code) => r(code)));
  s.child.kill('SIGTERM');
  return exited;
}

let t: TestDatabase;
const dataDir = mkdtempSync(path.join(tmpdir(), 'bv-serve-'));
before(async () => {
  t = await createTestDatabase({ migrate: false });
});
after(async () => {
  await t.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('billvault serve', () => {
  it('starts on a fresh data dir with the embedded PostgreSQL, serves /healthz and /readyz, stops cleanly', async () => {
    const s = await serve({ BILLVAULT_DATA_DIR: dataDir });
    try {
      const h = await fetch(`${s.url}/healthz`);
      assert.equal(h.status, 200);
      const r = await fetch(`${s.url}/readyz`);
      assert.equal(r.status, 200);
      assert.deepEqual(((await r.json()) as { checks: unknown }).checks, {
        database: true,
        migrations: 'current',
      });
      assert.equal((await fetch(`${s.url}/v1/org`)).status, 401);
    } finally {
      assert.equal(await stop(s), 0);
    }
    // The embedded server went down with the app: its pid file is gone.
    assert.throws(() => readFileSync(path.join(dataDir, 'pg', 'postmaster.pid')));
    assert.match(s.stdout(), /"msg":"billvault listening"/);
    assert.doesNotMatch(
      s.stdout(),
      new RegExp(readFileSync(path.join(dataDir, 'pg-password'), 'utf8').trim()),
    );
  });

  it('runs the same app on an external PostgreSQL from DATABASE_URL', async () => {
    const s = await serve({ DATABASE_URL: t.url, BILLVAULT_DATA_DIR: dataDir });
    try {
      const r = await fetch(`${s.url}/readyz`);
      assert.equal(r.status, 200);
      assert.match(s.stdout(), /external PostgreSQL/);
    } finally {
      assert.equal(await stop(s), 0);
    }
  });

  it('--workers 2: two server processes share the port and the embedded server; a crashed one is replaced; SIGTERM stops all', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bv-serve-workers-'));
    const s = await serve({ BILLVAULT_DATA_DIR: dir, BILLVAULT_WORKERS: '2' });
    const primary = s.child.pid as number;
    const children = () =>
      readFileSync(`/proc/${primary}/task/${primary}/children`, 'utf8')
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map(Number);
    try {
      assert.match(s.stderr(), /embedded PostgreSQL, 2 server processes/);
      // the embedded server and two workers
      const workers = children().filter((pid) =>
        readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('billvault.js'),
      );
      assert.equal(workers.length, 2);
      // New connections are spread over both workers (their request logs name them).
      for (let i = 0; i < 8; i++) {
        const r = await fetch(`${s.url}/readyz`, { headers: { connection: 'close' } });
        assert.equal(r.status, 200);
        assert.deepEqual(((await r.json()) as { checks: unknown }).checks, {
          database: true,
          migrations: 'current',
        });
      }
      await waitFor(
        () =>
          /"worker":1,.*request completed/.test(s.stdout()) &&
          /"worker":2,.*request completed/.test(s.stdout()),
      );
      // A worker killed outright is replaced, and the service goes on.
      process.kill(workers[0] as number, 'SIGKILL');
      await waitFor(() => /server process exited; starting another/.test(s.stdout()));
      await waitFor(() => {
        const now = children().filter((pid) =>
          readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('billvault.js'),
        );
        return now.length === 2 && !now.includes(workers[0] as number);
      });
      for (let i = 0; i < 4; i++)
        assert.equal((await fetch(`${s.url}/healthz`, { headers: { connection: 'close' } })).status, 200);
    } finally {
      const all = children();
      assert.equal(await stop(s), 0);
      // every worker and the embedded server went down with the primary
      for (const pid of all) assert.throws(() => process.kill(pid, 0), `process ${pid} is still running`);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--workers must be 1 to 64', async () => {
    await assert.rejects(serve({ BILLVAULT_DATA_DIR: dataDir, BILLVAULT_WORKERS: '0' }), /BILLVAULT_WORKERS/);
  });
});

async function waitFor(check: () => boolean, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 100));
  }
}
