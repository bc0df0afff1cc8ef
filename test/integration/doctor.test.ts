import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { sql } from 'kysely';
import { registeredTables } from '../../src/adapters/crypto/encrypted-columns.js';
import { createFieldCipher } from '../../src/adapters/crypto/field-cipher.js';
import { loadKeyProvider } from '../../src/adapters/crypto/key-provider.js';
import { initKeys } from '../../src/app/keys.js';
import { createOrg } from '../../src/app/orgs.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { MIGRATIONS_DIR_FOR_TESTS, migrate } from '../helpers/dbexports.js';

const run = promisify(execFile);
const BIN = path.resolve('bin/billvault.js');

let t: TestDatabase;
let old: TestDatabase;
let dir: string;
let keyFile: string;

interface DoctorReport {
  ok: boolean;
  problems: string[];
  notes: string[];
}

async function doctor(env: Record<string, string>): Promise<{ code: number; report: DoctorReport }> {
  const base = {
    PATH: process.env.PATH ?? '',
    HOME: dir,
    DATABASE_URL: t.url,
    BILLVAULT_DATA_DIR: path.join(dir, 'data'),
    BILLVAULT_MASTER_KEY_FILE: keyFile,
    BILLVAULT_LOG_LEVEL: 'silent',
  };
  try {
    const r = await run(process.execPath, [BIN, 'doctor', '--json'], { env: { ...base, ...env } });
    return { code: 0, report: JSON.parse(r.stdout) as DoctorReport };
  } catch (e) {
    const err = e as { code: number; stdout: string };
    return { code: err.code, report: JSON.parse(err.stdout) as DoctorReport };
  }
}

before(async () => {
  t = await createTestDatabase();
  dir = mkdtempSync(path.join(tmpdir(), 'bv-doctor-'));
  keyFile = path.join(dir, 'keys', 'master.key');
  const kp = await loadKeyProvider({ masterKey: { source: 'file', path: keyFile } });
  await createOrg(t.db, { name: 'Doc', baseCurrency: 'EUR' });
  await initKeys({ db: t.db, keyProvider: kp, cipher: createFieldCipher(kp), tables: registeredTables() });
  // A database one migration behind.
  old = await createTestDatabase({ migrate: false });
  const oneDir = mkdtempSync(path.join(tmpdir(), 'bv-doctor-mig-'));
  copyFileSync(
    path.join(MIGRATIONS_DIR_FOR_TESTS, '0001_foundation.sql'),
    path.join(oneDir, '0001_foundation.sql'),
  );
  await migrate(old.pool, oneDir);
});
after(async () => {
  await t.drop();
  await old.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe('billvault doctor', () => {
  it('reports no problem for a sound configuration', async () => {
    const { code, report } = await doctor({});
    assert.deepEqual(report.problems, []);
    assert.equal(report.ok, true);
    assert.equal(code, 0);
    assert.ok(report.notes.some((n) => /master key: .*mk_[0-9a-f]{16}/.test(n)));
  });

  it('reports a world-readable master key file', async () => {
    chmodSync(keyFile, 0o644);
    try {
      const { code, report } = await doctor({});
      assert.equal(code, 1);
      assert.ok(
        report.problems.some((p) => /readable by other users \(mode 644\)/.test(p)),
        report.problems.join('; '),
      );
    } finally {
      chmodSync(keyFile, 0o600);
    }
  });

  it('reports a missing master key, and one kept inside the data dir', async () => {
    const missing = await doctor({ BILLVAULT_MASTER_KEY_FILE: path.join(dir, 'nope.key') });
    assert.equal(missing.code, 1);
    assert.ok(missing.report.problems.some((p) => /nope\.key is missing/.test(p)));
    const dataDir = path.join(dir, 'data');
    mkdirSync(dataDir, { recursive: true });
    const inside = path.join(dataDir, 'master.key');
    copyFileSync(keyFile, inside);
    chmodSync(inside, 0o600);
    const r = await doctor({ BILLVAULT_MASTER_KEY_FILE: inside });
    assert.ok(
      r.report.problems.some((p) => /inside the data dir/.test(p)),
      r.report.problems.join('; '),
    );
  });

  it('reports keys wrapped under a master key that is not configured', async () => {
    const r = await doctor({ BILLVAULT_MASTER_KEY: Buffer.alloc(32, 9).toString('base64') });
    assert.equal(r.code, 1);
    assert.ok(
      r.report.problems.some((p) =>
        /KEK\(s\) are wrapped under master key mk_[0-9a-f]{16}, which is not configured/.test(p),
      ),
    );
  });

  it('reports TLS off on a public address', async () => {
    const r = await doctor({ HOST: '0.0.0.0' });
    assert.equal(r.code, 1);
    assert.ok(r.report.problems.includes('TLS is off on the public address 0.0.0.0'));
    const proxied = await doctor({ HOST: '0.0.0.0', BILLVAULT_BEHIND_TLS_PROXY: 'true' });
    assert.ok(!proxied.report.problems.some((p) => /TLS/.test(p)));
  });

  it('reports more database connections than the server allows (serve --workers × pool size)', async () => {
    const ok = await doctor({});
    assert.ok(ok.report.notes.some((n) => /^database connections: serve may open 10 of \d+ free$/.test(n)));
    const r = await doctor({ BILLVAULT_WORKERS: '8', BILLVAULT_DB_POOL_SIZE: '200' });
    assert.equal(r.code, 1);
    assert.ok(
      r.report.problems.some((p) =>
        /^serve may open 1800 database connections \(9 process\(es\) × BILLVAULT_DB_POOL_SIZE 200\) but the server has \d+ free/.test(
          p,
        ),
      ),
      r.report.problems.join('; '),
    );
  });

  it('reports an outdated schema', async () => {
    const r = await doctor({ DATABASE_URL: old.url });
    assert.equal(r.code, 1);
    assert.ok(r.report.problems.some((p) => /schema is outdated: \d+ migration\(s\) pending/.test(p)));
  });

  it('reports keys overdue for rotation', async () => {
    await sql`UPDATE org_key_versions SET created_at = now() - interval '400 days'`.execute(t.db);
    const r = await doctor({});
    assert.equal(r.code, 1);
    assert.ok(
      r.report.problems.some((p) => /KEK org_[0-9a-z]+ v1 is 400 days old: rotate it/.test(p)),
      r.report.problems.join('; '),
    );
  });
});
