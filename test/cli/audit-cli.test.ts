import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { inOrg } from '../../src/adapters/db/index.js';
import { recordAudit } from '../../src/app/audit.js';
import { createOrg } from '../../src/app/orgs.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let t: TestDatabase;
let org: string;
const masterKey = randomBytes(32).toString('base64');
const dir = mkdtempSync(path.join(tmpdir(), 'bv-audit-cli-'));

function billvault(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/billvault.js', ...args], {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        DATABASE_URL: t.url,
        BILLVAULT_MASTER_KEY: masterKey,
        BILLVAULT_LOG_LEVEL: 'warn',
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

before(async () => {
  t = await createTestDatabase();
  org = (await createOrg(t.db, { name: 'CLI Audit', baseCurrency: 'EUR' })).id;
  for (const [i, target] of ['=HYPERLINK("http://evil")', '+1', 'plain', '@SUM(A1)', '-2'].entries())
    await inOrg(t.db, org, (tx) =>
      recordAudit(tx, {
        orgId: org,
        actor: { kind: 'user', id: `usr_${i}` },
        action: 'invoice.created',
        target: { type: 'invoice', id: target },
        outcome: 'success',
        details: { note: 'a, "quoted" value' },
      }),
    );
});
after(() => t.drop());

describe('billvault audit', () => {
  it('seals, exports a checkpoint file, verifies, and detects a truncated tail with the file', async () => {
    const seal = await billvault(['--json', 'audit', 'seal']);
    assert.equal(seal.code, 0, seal.stderr);
    assert.equal(JSON.parse(seal.stdout).sealed, 6);
    const file = path.join(dir, 'checkpoints.json');
    const cp = await billvault(['audit', 'checkpoint', 'export', '--file', file]);
    assert.equal(cp.code, 0, cp.stderr);
    const exported = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(exported.format, 'billvault.audit-checkpoints.v1');
    assert.ok(
      exported.checkpoints.some((c: { chain_id: string; seq: number }) => c.chain_id === org && c.seq === 6),
    );
    const ok = await billvault(['--json', 'audit', 'verify', '--checkpoints', file]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const report = JSON.parse(ok.stdout);
    assert.equal(report.ok, true);
    assert.equal(report.keys_authenticated, true);

    await sql`ALTER TABLE audit_chain DISABLE TRIGGER USER`.execute(t.db);
    await sql`ALTER TABLE audit_checkpoints DISABLE TRIGGER USER`.execute(t.db);
    try {
      await sql`DELETE FROM audit_checkpoints WHERE chain_id = ${org} AND seq > 4`.execute(t.db);
      await sql`DELETE FROM audit_chain WHERE chain_id = ${org} AND seq > 4`.execute(t.db);
    } finally {
      await sql`ALTER TABLE audit_chain ENABLE TRIGGER USER`.execute(t.db);
      await sql`ALTER TABLE audit_checkpoints ENABLE TRIGGER USER`.execute(t.db);
    }
    const bad = await billvault(['audit', 'verify', '--org', org, '--checkpoints', file]);
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /FAILED at seq 5/);
    assert.match(bad.stdout, /truncated/);
  });

  it('exports CSV with formula cells neutralised, and JSON Lines', async () => {
    const csv = await billvault(['audit', 'export', '--format', 'csv', '--org', org]);
    assert.equal(csv.code, 0, csv.stderr);
    const lines = csv.stdout.trim().split('\n');
    assert.equal(lines[0]?.split(',')[0], 'id');
    assert.ok(lines.length >= 7);
    assert.ok(csv.stdout.includes(`"'=HYPERLINK(""http://evil"")"`), csv.stdout);
    assert.ok(csv.stdout.includes(",'+1,"));
    assert.ok(csv.stdout.includes(",'@SUM(A1),"));
    assert.ok(csv.stdout.includes(",'-2,"));
    assert.ok(!/,[=+@-]/.test(csv.stdout.replaceAll(/"[^"]*"/g, '')), 'no bare formula cell');
    const jsonl = await billvault([
      'audit',
      'export',
      '--format',
      'jsonl',
      '--org',
      org,
      '--from',
      '2000-01-01',
    ]);
    assert.equal(jsonl.code, 0, jsonl.stderr);
    const events = jsonl.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.ok(events.length >= 6);
    assert.ok(events.every((e: { org_id: string }) => e.org_id === org));
    const none = await billvault(['audit', 'export', '--org', org, '--to', '2000-01-01']);
    assert.equal(none.stdout, '');
    const badFormat = await billvault(['audit', 'export', '--format', 'xml']);
    assert.equal(badFormat.code, 1);
  });
});
