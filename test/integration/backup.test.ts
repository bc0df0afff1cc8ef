import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import { BackupFormatError, readHeader } from '../../src/adapters/backup/archive.js';
import {
  createBackup,
  RestoreRefusedError,
  restoreBackup,
  verifyBackup,
} from '../../src/adapters/backup/dump.js';
import { orgContactsCrypto } from '../../src/adapters/crypto/encrypted-tables.js';
import { createFieldCipher } from '../../src/adapters/crypto/field-cipher.js';
import { connect, type Db, startEmbeddedPostgres } from '../../src/adapters/db/index.js';
import { recordAudit } from '../../src/app/audit.js';
import { systemCtx } from '../../src/app/context.js';
import { createOrg, putSetting } from '../../src/app/orgs.js';
import { newId } from '../../src/domain/ids.js';
import { testKeyProvider } from '../helpers/crypto.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { inOrg } from '../helpers/dbexports.js';

const PASS = { kind: 'passphrase' as const, passphrase: 'correct horse battery staple' };
const kp = testKeyProvider();
const cipher = createFieldCipher(kp);

let src: TestDatabase;
let dir: string;
let archive: string;
let orgA: string;
const contacts: { id: string; name: string; email: string }[] = [];

/** Every table (but schema_migrations) as sorted row texts, in UTC: equal means identical data. */
async function snapshot(db: Db): Promise<Record<string, string[]>> {
  return db.connection().execute(async (c) => {
    await sql`SET TimeZone = 'UTC'`.execute(c);
    const tables = await sql<{ name: string }>`SELECT tablename AS name FROM pg_tables
      WHERE schemaname = 'public' AND tablename <> 'schema_migrations' ORDER BY 1`.execute(c);
    const out: Record<string, string[]> = {};
    for (const { name } of tables.rows) {
      const rows = await sql<{ r: string }>`SELECT x::text AS r FROM ${sql.table(name)} AS x`.execute(c);
      out[name] = rows.rows.map((r) => r.r).sort();
    }
    return out;
  });
}

async function readContacts(db: Db, org: string) {
  const out: { id: string; name: string | null; email: string | null }[] = [];
  for (const c of contacts) {
    const plain = await inOrg(db, org, async (tx) => {
      const row = await tx
        .selectFrom('org_contacts')
        .selectAll()
        .where('id', '=', c.id)
        .executeTakeFirstOrThrow();
      return orgContactsCrypto.open(cipher, tx, { orgId: org }, c.id, row);
    });
    out.push({ id: c.id, ...plain });
  }
  return out;
}

async function emptyDatabaseOn(serverUrl: string) {
  const name = `bv_restore_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)}`);
  await admin.end();
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  const { db, pool } = connect(u.toString(), 4);
  return {
    db,
    pool,
    async drop() {
      await db.destroy();
      const a = new pg.Client({ connectionString: serverUrl });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${a.escapeIdentifier(name)} WITH (FORCE)`);
      await a.end();
    },
  };
}

async function tableCount(db: Db): Promise<number> {
  const r = await sql<{
    n: string;
  }>`SELECT count(*)::text AS n FROM pg_tables WHERE schemaname = 'public'`.execute(db);
  return Number(r.rows[0]?.n);
}

before(async () => {
  src = await createTestDatabase();
  dir = mkdtempSync(path.join(tmpdir(), 'bv-backup-'));
  archive = path.join(dir, 'full.bvbak');
  orgA = (await createOrg(src.db, { name: 'Backup Org', baseCurrency: 'EUR' })).id;
  const orgB = (await createOrg(src.db, { name: 'Ωmega "quoted", {braces}', baseCurrency: 'JPY' })).id;
  await putSetting(src.db, systemCtx(orgA), 'invoice.footer', {
    text: 'Thanks!\n\t"quoted" \\ back',
    n: 12345678901234,
  });
  await putSetting(src.db, systemCtx(orgB), 'x.y', [1, null, true, 'ü']);
  for (let i = 0; i < 120; i++) {
    const id = newId('contact');
    const name = `Contact ${i} ✓`;
    const email = `c${i}@example.org`;
    await inOrg(src.db, orgA, async (tx) => {
      const cols = await orgContactsCrypto.seal(cipher, tx, { orgId: orgA }, id, { name, email });
      await tx
        .insertInto('org_contacts')
        .values({
          org_id: orgA,
          id,
          kind: 'billing',
          name_enc: cols.name_enc!,
          email_enc: cols.email_enc!,
          email_bidx: cols.email_bidx!,
        })
        .execute();
    });
    contacts.push({ id, name, email });
  }
  await inOrg(src.db, orgA, (tx) =>
    recordAudit(tx, {
      orgId: orgA,
      actor: { kind: 'system', id: 'system' },
      action: 'test.backup_seed',
      outcome: 'success',
      details: { nested: { list: [1, 2, 3] } },
    }),
  );
});
after(async () => {
  await src.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe('backup create and verify', () => {
  it('writes an encrypted, authenticated archive with a manifest, mode 0600, no plaintext inside', async () => {
    const res = await createBackup(src.db, archive, PASS, { kind: 'test' });
    assert.equal(statSync(archive).mode & 0o777, 0o600);
    assert.equal(res.manifest.format_version, 1);
    assert.ok(res.manifest.schema.version >= 2);
    assert.equal(res.manifest.schema.migrations[1]?.name, '0002_key_management.sql');
    const byName = Object.fromEntries(res.manifest.tables.map((t) => [t.name, t]));
    assert.equal(byName.org_contacts?.rows, 120);
    assert.equal(byName.orgs?.rows, 2);
    assert.match(byName.orgs?.sha256 ?? '', /^[0-9a-f]{64}$/);
    assert.ok(!('schema_migrations' in byName));
    const bytes = readFileSync(archive);
    for (const needle of ['Backup Org', 'invoice.footer', 'org_contacts', 'Thanks', orgA])
      assert.ok(!bytes.includes(Buffer.from(needle)), `archive holds ${needle} in clear`);
    const header = await readHeader(archive);
    assert.equal(header.kdf.name, 'argon2id');
    assert.deepEqual(readdirSync(dir), ['full.bvbak'], 'no temporary file left behind');
    const verified = await verifyBackup(archive, PASS);
    assert.deepEqual(verified.tables, res.manifest.tables);
  });

  it('refuses a wrong passphrase', async () => {
    await assert.rejects(
      verifyBackup(archive, { kind: 'passphrase', passphrase: 'wrong horse battery staple' }),
      /wrong passphrase/,
    );
    await assert.rejects(verifyBackup(archive, { kind: 'key_file', key: randomBytes(32) }), /passphrase/);
  });

  it('works with a backup key file instead of a passphrase', async () => {
    const key = randomBytes(32);
    const file = path.join(dir, 'keyed.bvbak');
    await createBackup(src.db, file, { kind: 'key_file', key }, { kind: 'test' });
    const m = await verifyBackup(file, { kind: 'key_file', key });
    assert.ok(m.tables.length > 0);
    await assert.rejects(
      verifyBackup(file, { kind: 'key_file', key: randomBytes(32) }),
      /needs the backup key file bk_/,
    );
    await assert.rejects(verifyBackup(file, PASS), /key file/);
    rmSync(file);
  });

  it('a failed backup leaves nothing at the target', async () => {
    const target = path.join(dir, 'nodir', 'x.bvbak');
    await assert.rejects(createBackup(src.db, target, PASS, { kind: 'test' }));
    assert.equal(existsSync(target), false);
  });
});

describe('corruption', () => {
  const positions = (size: number) => [0, 9, 20, 200, Math.floor(size / 2), size - 17, size - 1];

  it('one changed byte anywhere fails verification', async () => {
    const original = readFileSync(archive);
    for (const pos of positions(original.length)) {
      const copy = Buffer.from(original);
      copy[pos]! ^= 0x01;
      const bad = path.join(dir, `bad-${pos}.bvbak`);
      writeFileSync(bad, copy);
      await assert.rejects(verifyBackup(bad, PASS), BackupFormatError, `byte ${pos}`);
      rmSync(bad);
    }
  });

  it('truncation and appended bytes fail verification', async () => {
    const original = readFileSync(archive);
    for (const [label, data] of [
      ['truncated by one byte', original.subarray(0, original.length - 1)],
      ['truncated to the header', original.subarray(0, 300)],
      ['one byte appended', Buffer.concat([original, Buffer.from([0])])],
    ] as const) {
      const bad = path.join(dir, 'bad.bvbak');
      writeFileSync(bad, data);
      await assert.rejects(verifyBackup(bad, PASS), BackupFormatError, label);
    }
  });

  it('restore of a corrupted archive writes nothing at all', async () => {
    const copy = readFileSync(archive);
    copy[Math.floor(copy.length * 0.7)]! ^= 0x80; // late in the stream: most chunks are fine
    const bad = path.join(dir, 'late-corruption.bvbak');
    writeFileSync(bad, copy);
    const target = await emptyDatabaseOn(process.env.TEST_DATABASE_URL!);
    try {
      await assert.rejects(restoreBackup(target.db, target.pool, bad, PASS), BackupFormatError);
      assert.equal(await tableCount(target.db), 0, 'not even the schema was created');
    } finally {
      await target.drop();
    }
  });
});

describe('restore', () => {
  it('restores identical data into an empty database; encrypted fields still decrypt', async () => {
    const target = await emptyDatabaseOn(process.env.TEST_DATABASE_URL!);
    try {
      const res = await restoreBackup(target.db, target.pool, archive, PASS);
      assert.ok(res.rowsWritten > 120);
      assert.deepEqual(await snapshot(target.db), await snapshot(src.db));
      assert.deepEqual(await readContacts(target.db, orgA), await readContacts(src.db, orgA));
      // The restored system works: new writes and blind-index lookups.
      const found = await inOrg(target.db, orgA, async (tx) => {
        const idx = await orgContactsCrypto.index(cipher, tx, orgA, 'email', 'c7@example.org');
        return tx.selectFrom('org_contacts').select('id').where('email_bidx', '=', idx).execute();
      });
      assert.deepEqual(found, [{ id: contacts[7]!.id }]);
      // Restoring again into the now non-empty database is refused, and changes nothing.
      const before = await snapshot(target.db);
      await assert.rejects(restoreBackup(target.db, target.pool, archive, PASS), RestoreRefusedError);
      assert.deepEqual(await snapshot(target.db), before);
    } finally {
      await target.drop();
    }
  });

  it('refuses a database that holds other tables', async () => {
    const target = await emptyDatabaseOn(process.env.TEST_DATABASE_URL!);
    try {
      await sql`CREATE TABLE unrelated (id int)`.execute(target.db);
      await assert.rejects(restoreBackup(target.db, target.pool, archive, PASS), /not empty/);
      assert.equal(await tableCount(target.db), 1);
    } finally {
      await target.drop();
    }
  });

  it('restores across database kinds: embedded → external → embedded', async () => {
    const embDir = mkdtempSync(path.join(tmpdir(), 'bv-backup-emb-'));
    const embedded = await startEmbeddedPostgres({ dataDir: embDir });
    const external = 'postgres://postgres@127.0.0.1:5432/postgres';
    try {
      const e1 = await emptyDatabaseOn(embedded.adminUrl);
      await restoreBackup(e1.db, e1.pool, archive, PASS);
      const fromEmbedded = path.join(dir, 'from-embedded.bvbak');
      const made = await createBackup(e1.db, fromEmbedded, PASS, { kind: 'embedded' });
      assert.match(made.manifest.source.server_version, /^17\./, 'the embedded server is PostgreSQL 17');
      const x = await emptyDatabaseOn(external);
      await restoreBackup(x.db, x.pool, fromEmbedded, PASS);
      const fromExternal = path.join(dir, 'from-external.bvbak');
      await createBackup(x.db, fromExternal, PASS, { kind: 'external' });
      const e2 = await emptyDatabaseOn(embedded.adminUrl);
      await restoreBackup(e2.db, e2.pool, fromExternal, PASS);
      const expected = await snapshot(src.db);
      assert.deepEqual(await snapshot(e1.db), expected);
      assert.deepEqual(await snapshot(x.db), expected);
      assert.deepEqual(await snapshot(e2.db), expected);
      assert.deepEqual(await readContacts(e2.db, orgA), await readContacts(src.db, orgA));
      await e1.drop();
      await x.drop();
      await e2.drop();
    } finally {
      await embedded.stop();
      rmSync(embDir, { recursive: true, force: true });
    }
  });
});
