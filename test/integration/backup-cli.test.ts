import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { sql } from 'kysely';
import pg from 'pg';
import { connect } from '../../src/adapters/db/index.js';
import { systemCtx } from '../../src/app/context.js';
import { createOrg, putSetting } from '../../src/app/orgs.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const run = promisify(execFile);
const BIN = path.resolve('bin/billvault.js');
const PASSPHRASE = 'a long enough backup passphrase';

let src: TestDatabase;
let dir: string;
let org: string;

async function cli(args: string[], env: Record<string, string | undefined>) {
  try {
    const r = await run(process.execPath, [BIN, ...args], {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: dir,
        BILLVAULT_LOG_LEVEL: 'silent',
        BILLVAULT_MASTER_KEY: Buffer.alloc(32, 3).toString('base64'),
        ...Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined)),
      } as NodeJS.ProcessEnv,
      timeout: 120_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

async function emptyDb() {
  const name = `bv_cli_restore_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)}`);
  await admin.end();
  const u = new URL(process.env.TEST_DATABASE_URL!);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      const a = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${a.escapeIdentifier(name)} WITH (FORCE)`);
      await a.end();
    },
  };
}

async function orgNames(url: string): Promise<string[]> {
  const { db } = connect(url, 1);
  try {
    const r = await sql<{ name: string }>`SELECT name FROM orgs ORDER BY name`.execute(db);
    return r.rows.map((x) => x.name);
  } finally {
    await db.destroy();
  }
}

before(async () => {
  src = await createTestDatabase();
  org = (await createOrg(src.db, { name: 'CLI Backup Org', baseCurrency: 'EUR' })).id;
  await putSetting(src.db, systemCtx(org), 'a.b', { hello: 'world' });
  dir = mkdtempSync(path.join(tmpdir(), 'bv-backup-cli-'));
  chmodSync(dir, 0o711); // as root, the embedded server runs as postgres and must traverse it
});
after(async () => {
  await src.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe('billvault backup (CLI)', () => {
  const file = () => path.join(dir, 'cli.bvbak');

  it('create → verify → restore into an empty database', async () => {
    const made = await cli(['backup', 'create', file(), '--json'], {
      DATABASE_URL: src.url,
      BILLVAULT_BACKUP_PASSPHRASE: PASSPHRASE,
    });
    assert.equal(made.code, 0, made.stderr);
    const out = JSON.parse(made.stdout);
    assert.ok(out.rows >= 3);
    assert.ok(out.mb_per_s > 0);
    assert.equal(statSync(file()).mode & 0o777, 0o600);
    assert.ok(!made.stdout.includes(PASSPHRASE) && !made.stderr.includes(PASSPHRASE));

    const again = await cli(['backup', 'create', file()], {
      DATABASE_URL: src.url,
      BILLVAULT_BACKUP_PASSPHRASE: PASSPHRASE,
    });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /never overwrite/);

    const ok = await cli(['backup', 'verify', file(), '--json'], { BILLVAULT_BACKUP_PASSPHRASE: PASSPHRASE });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).ok, true);

    const target = await emptyDb();
    try {
      const restored = await cli(['backup', 'restore', file(), '--json'], {
        DATABASE_URL: target.url,
        BILLVAULT_BACKUP_PASSPHRASE: PASSPHRASE,
      });
      assert.equal(restored.code, 0, restored.stderr);
      assert.equal(JSON.parse(restored.stdout).restored, true);
      assert.deepEqual(await orgNames(target.url), ['CLI Backup Org']);
      const twice = await cli(['backup', 'restore', file()], {
        DATABASE_URL: target.url,
        BILLVAULT_BACKUP_PASSPHRASE: PASSPHRASE,
      });
      assert.equal(twice.code, 1);
      assert.match(twice.stderr, /not empty/);
    } finally {
      await target.drop();
    }
  });

  it('a corrupted archive fails verify, and restore writes nothing', async () => {
    const bad = path.join(dir, 'bad.bvbak');
    const bytes = readFileSync(file());
    bytes[bytes.length - 5]! ^= 0x04;
    writeFileSync(bad, bytes);
    const v = await cli(['backup', 'verify', bad], { BILLVAULT_BACKUP_PASSPHRASE: PASSPHRASE });
    assert.equal(v.code, 1);
    assert.match(v.stderr, /damaged|tampered/);
    assert.equal(v.stderr.trim().split('\n').length, 1);
    const target = await emptyDb();
    try {
      const r = await cli(['backup', 'restore', bad], {
        DATABASE_URL: target.url,
        BILLVAULT_BACKUP_PASSPHRASE: PASSPHRASE,
      });
      assert.equal(r.code, 1);
      const { db } = connect(target.url, 1);
      const n = await sql<{
        n: string;
      }>`SELECT count(*)::text AS n FROM pg_tables WHERE schemaname = 'public'`.execute(db);
      await db.destroy();
      assert.equal(n.rows[0]?.n, '0');
    } finally {
      await target.drop();
    }
  });

  it('refuses weak, wrong or missing secrets', async () => {
    const short = await cli(['backup', 'create', path.join(dir, 'short.bvbak')], {
      DATABASE_URL: src.url,
      BILLVAULT_BACKUP_PASSPHRASE: 'too short',
    });
    assert.equal(short.code, 1);
    assert.match(short.stderr, /at least 12 characters/);
    const none = await cli(['backup', 'verify', file()], {});
    assert.equal(none.code, 1);
    assert.match(none.stderr, /BILLVAULT_BACKUP_PASSPHRASE/);
    const wrong = await cli(['backup', 'verify', file()], {
      BILLVAULT_BACKUP_PASSPHRASE: 'not the right passphrase',
    });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /wrong passphrase/);
  });

  it('works with a backup key file', async () => {
    const keyFile = path.join(dir, 'backup.key');
    const kg = await cli(['backup', 'keygen', keyFile, '--json'], {});
    assert.equal(kg.code, 0, kg.stderr);
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const archive = path.join(dir, 'keyed.bvbak');
    const made = await cli(['backup', 'create', archive, '--key-file', keyFile], { DATABASE_URL: src.url });
    assert.equal(made.code, 0, made.stderr);
    const noKey = await cli(['backup', 'verify', archive], { BILLVAULT_BACKUP_PASSPHRASE: PASSPHRASE });
    assert.equal(noKey.code, 1);
    assert.match(noKey.stderr, /--key-file/);
    const ok = await cli(['backup', 'verify', archive, '--key-file', keyFile], {});
    assert.equal(ok.code, 0, ok.stderr);
  });

  it('restores into the embedded store; --force moves a used data dir aside', async () => {
    const dataDir = path.join(dir, 'data');
    const env = { BILLVAULT_DATA_DIR: dataDir, BILLVAULT_BACKUP_PASSPHRASE: PASSPHRASE };
    const first = await cli(['backup', 'restore', file(), '--json'], env);
    assert.equal(first.code, 0, first.stderr);
    const second = await cli(['backup', 'restore', file()], env);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /not empty/);
    const forced = await cli(['backup', 'restore', file(), '--force', '--json'], env);
    assert.equal(forced.code, 0, forced.stderr);
    const moved = JSON.parse(forced.stdout).moved_aside as string;
    assert.ok(existsSync(path.join(moved, 'pg')), 'the old data dir is kept, not deleted');
    assert.ok(readdirSync(dataDir).includes('pg'));
    const withUrl = await cli(['backup', 'restore', file(), '--force'], { ...env, DATABASE_URL: src.url });
    assert.equal(withUrl.code, 1);
    assert.match(withUrl.stderr, /embedded store only/);
  });
});
