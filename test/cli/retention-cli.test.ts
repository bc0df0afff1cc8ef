import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createOrg } from '../../src/app/orgs.js';
import { newId } from '../../src/domain/ids.js';
import { addMember } from '../helpers/billing.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let t: TestDatabase;
let home: string;
let org: string;
let stale: string;

function billvault(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/billvault.js', ...args], {
      env: {
        PATH: process.env.PATH,
        HOME: home,
        BILLVAULT_LOG_LEVEL: 'warn',
        DATABASE_URL: t.url,
        BILLVAULT_MASTER_KEY: randomBytes(32).toString('base64'),
        BILLVAULT_ERASURE_LOG: path.join(home, 'erasures.jsonl'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

const sessions = async () =>
  (
    await sql<{ id: string }>`SELECT id FROM sessions WHERE org_id = ${org} ORDER BY id`.execute(t.db)
  ).rows.map((r) => r.id);

before(async () => {
  t = await createTestDatabase();
  home = mkdtempSync(path.join(tmpdir(), 'bv-retention-'));
  org = (await createOrg(t.db, { name: 'CLI Retention', baseCurrency: 'EUR' })).id;
  const user = await addMember(t, org, 'owner', 'o');
  stale = newId('session');
  const old = new Date(Date.now() - 90 * 86_400_000);
  await sql`INSERT INTO sessions (org_id, id, user_id, token_hash, created_at, last_seen_at, authenticated_at,
      expires_at, idle_seconds, mfa)
    VALUES (${org}, ${stale}, ${user}, ${randomBytes(32).toString('hex')}, ${old}, ${old}, ${old}, ${old}, 900, false)`.execute(
    t.db,
  );
});
after(() => t.drop());

describe('billvault retention run', () => {
  it('--dry-run --json counts per class and changes nothing; a real run removes; both are audited', async () => {
    const dry = await billvault(['--json', 'retention', 'run', '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    const d = JSON.parse(dry.stdout);
    assert.equal(d.dry_run, true);
    const mine = d.orgs.find((o: { org: string }) => o.org === org);
    assert.equal(mine.classes.find((c: { class: string }) => c.class === 'sessions').count, 1);
    assert.deepEqual(await sessions(), [stale]);
    const human = await billvault(['retention', 'run', '--org', org]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /sessions\s+1\s+delete/);
    assert.match(human.stdout, /audit_events\s+\d+\s+report/);
    assert.deepEqual(await sessions(), []);
    const runs = await sql<{ n: string }>`SELECT count(*)::text AS n FROM audit_events
      WHERE org_id = ${org} AND action = 'retention.run'`.execute(t.db);
    assert.equal(runs.rows[0]?.n, '2');
    const bad = await billvault(['retention', 'run', '--org', 'org_nope']);
    assert.notEqual(bad.code, 0);
    assert.equal(bad.stderr.trim().split('\n').length, 1);
  });
});
