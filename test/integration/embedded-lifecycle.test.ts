// The embedded server's own lifecycle runs in every test run, whatever TEST_DATABASE_URL says:
// first start, restart with data kept, and a kill -9 (of Billvault, then of PostgreSQL itself)
// followed by a restart with every committed row still there.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { EMBEDDED_NICE, ensureDatabase, startEmbeddedPostgres } from '../../src/adapters/db/embedded.js';

const dataDir = mkdtempSync(path.join(tmpdir(), 'bv-embedded-'));
after(() => rmSync(dataDir, { recursive: true, force: true }));

async function query<T extends pg.QueryResultRow>(url: string, text: string, params: unknown[] = []) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(text, params)).rows;
  } finally {
    await c.end();
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitDead(pid: number) {
  for (let i = 0; i < 200 && processAlive(pid); i++) await new Promise((r) => setTimeout(r, 50));
}

// A separate process that starts the embedded server, commits rows, reports, then waits to be killed.
const CHILD = `
import { startEmbeddedPostgres, ensureDatabase } from './src/adapters/db/embedded.ts';
import pg from 'pg';
const s = await startEmbeddedPostgres({ dataDir: process.env.DIR });
const url = await ensureDatabase(s.adminUrl, 'life');
const c = new pg.Client({ connectionString: url });
await c.connect();
for (let i = 0; i < 100; i++) await c.query('INSERT INTO t (note) VALUES ($1)', ['child-' + i]);
process.stdout.write(JSON.stringify({ pid: s.pid }) + '\\n');
setInterval(() => {}, 1000);
`;

describe('embedded PostgreSQL lifecycle', () => {
  it('initialises on first start: loopback only, password file 0600, no Unix socket', async () => {
    const s = await startEmbeddedPostgres({ dataDir });
    try {
      assert.match(s.adminUrl, /@127\.0\.0\.1:\d+\//);
      assert.equal(statSync(path.join(dataDir, 'pg-password')).mode & 0o777, 0o600);
      const url = await ensureDatabase(s.adminUrl, 'life');
      const rows = await query<{ l: string; sock: string; v: string }>(
        url,
        "SELECT current_setting('listen_addresses') AS l, current_setting('unix_socket_directories') AS sock, current_setting('server_version_num') AS v",
      );
      assert.deepEqual({ l: rows[0]?.l, sock: rows[0]?.sock }, { l: '127.0.0.1', sock: '' });
      assert.ok(Number(rows[0]?.v) >= 170000, 'PostgreSQL 17');
      await query(url, 'CREATE TABLE t (id serial PRIMARY KEY, note text NOT NULL)');
      await query(url, "INSERT INTO t (note) VALUES ('first')");
      const wrong = new URL(url);
      wrong.password = 'not-the-password';
      await assert.rejects(query(wrong.toString(), 'SELECT 1'), /password authentication failed/);
      // one step below this process's CPU priority: the server, and a backend forked just now
      const [backend] = await query<{ pid: number }>(url, 'SELECT pg_backend_pid() AS pid');
      assert.equal(os.getPriority(s.pid), EMBEDDED_NICE);
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        const pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
        assert.ok(pid && pid !== backend?.pid);
        assert.equal(os.getPriority(pid), EMBEDDED_NICE);
      } finally {
        await c.end();
      }
    } finally {
      await s.stop();
    }
  });

  it('keeps data across a clean restart, at the CPU priority asked for', async () => {
    const s = await startEmbeddedPostgres({ dataDir, nice: 0 });
    try {
      const url = await ensureDatabase(s.adminUrl, 'life');
      const rows = await query<{ note: string }>(url, 'SELECT note FROM t ORDER BY id');
      assert.deepEqual(rows, [{ note: 'first' }]);
      assert.equal(os.getPriority(s.pid), os.getPriority()); // nice 0: left as this process's
    } finally {
      await s.stop();
    }
  });

  it('survives kill -9 of Billvault (orphaned server) and then of PostgreSQL itself', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], {
      cwd: process.cwd(),
      env: { ...process.env, DIR: dataDir },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const line = await new Promise<string>((resolve, reject) => {
      let buf = '';
      child.stdout.on('data', (d) => {
        buf += d;
        if (buf.includes('\n')) resolve(buf.split('\n')[0] ?? '');
      });
      child.on('exit', (code) => reject(new Error(`child exited early with ${code}`)));
    });
    const { pid: postmaster } = JSON.parse(line) as { pid: number };
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.ok(processAlive(postmaster), 'the orphaned PostgreSQL is still running after the app died');

    // Restart: the orphan is stopped cleanly and a new server takes over the same data.
    let s = await startEmbeddedPostgres({ dataDir });
    assert.equal(processAlive(postmaster), false);
    let url = await ensureDatabase(s.adminUrl, 'life');
    let count = await query<{ n: string }>(
      url,
      "SELECT count(*)::text AS n FROM t WHERE note LIKE 'child-%'",
    );
    assert.equal(count[0]?.n, '100');
    await query(url, "INSERT INTO t (note) VALUES ('before-crash')");

    // Now kill -9 PostgreSQL itself: WAL recovery must bring back every committed row.
    process.kill(s.pid, 'SIGKILL');
    await waitDead(s.pid);
    s = await startEmbeddedPostgres({ dataDir });
    try {
      url = await ensureDatabase(s.adminUrl, 'life');
      count = await query<{ n: string }>(url, 'SELECT count(*)::text AS n FROM t');
      assert.equal(count[0]?.n, '102');
    } finally {
      await s.stop();
    }
  });
});
