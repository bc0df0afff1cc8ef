import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { sql } from 'kysely';
import { orgContactsCrypto } from '../../src/adapters/crypto/encrypted-tables.js';
import { createFieldCipher } from '../../src/adapters/crypto/field-cipher.js';
import { loadKeyProvider } from '../../src/adapters/crypto/key-provider.js';
import { createOrg } from '../../src/app/orgs.js';
import { newId } from '../../src/domain/ids.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { inOrg } from '../helpers/dbexports.js';

const run = promisify(execFile);
const BIN = path.resolve('bin/billvault.js');

let t: TestDatabase;
let org: string;
let dir: string;
let keyFile: string;

async function cli(args: string[], extraEnv: Record<string, string> = {}) {
  try {
    const r = await run(process.execPath, [BIN, ...args], {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: dir,
        DATABASE_URL: t.url,
        BILLVAULT_DATA_DIR: path.join(dir, 'data'),
        BILLVAULT_MASTER_KEY_FILE: keyFile,
        BILLVAULT_LOG_LEVEL: 'silent',
        ...extraEnv,
      },
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

before(async () => {
  t = await createTestDatabase();
  org = (await createOrg(t.db, { name: 'Cli', baseCurrency: 'EUR' })).id;
  dir = mkdtempSync(path.join(tmpdir(), 'bv-keys-cli-'));
  keyFile = path.join(dir, 'secrets', 'master.key');
});
after(() => t.drop());

describe('billvault keys', () => {
  it('init creates the master key file 0600 and the KEKs', async () => {
    const r = await cli(['keys', 'init', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.master_key.created, true);
    assert.match(out.master_key.id, /^mk_[0-9a-f]{16}$/);
    assert.deepEqual(
      out.keks.map((k: { scope: string }) => k.scope),
      ['platform', org],
    );
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const keyLine = readFileSync(keyFile, 'utf8')
      .split('\n')
      .find((l) => l && !l.startsWith('#'))!;
    assert.ok(!r.stdout.includes(keyLine) && !r.stderr.includes(keyLine), 'no key material printed');
  });

  it('rotate, reencrypt and status work end to end, and the data stays readable', async () => {
    // Some encrypted data first, with the key file the CLI made.
    const kp = await loadKeyProvider({ masterKey: { source: 'file', path: keyFile } }, { create: false });
    const cipher = createFieldCipher(kp);
    const id = newId('contact');
    await inOrg(t.db, org, async (tx) => {
      const c = await orgContactsCrypto.seal(cipher, tx, { orgId: org }, id, { name: 'N', email: 'e@x.org' });
      await tx
        .insertInto('org_contacts')
        .values({
          org_id: org,
          id,
          kind: 'privacy',
          name_enc: c.name_enc!,
          email_enc: c.email_enc!,
          email_bidx: c.email_bidx!,
        })
        .execute();
    });

    const master = await cli(['keys', 'rotate', '--master', '--json']);
    assert.equal(master.code, 0, master.stderr);
    assert.equal(JSON.parse(master.stdout).destroyed_master_keys.length, 1);
    const orgRot = await cli(['keys', 'rotate', '--org', org, '--json']);
    assert.equal(orgRot.code, 0, orgRot.stderr);
    assert.equal(JSON.parse(orgRot.stdout).version, 2);
    const re = await cli(['keys', 'reencrypt', '--json', '--batch-size', '1']);
    assert.equal(re.code, 0, re.stderr);
    const reOut = JSON.parse(re.stdout);
    assert.equal(reOut.interrupted, false);
    assert.equal(reOut.reencrypted, 2);
    assert.equal(reOut.destroyed_keys, 1);
    const st = await cli(['keys', 'status', '--json']);
    assert.equal(st.code, 0, st.stderr);
    const status = JSON.parse(st.stdout);
    const orgStatus = status.scopes.find((s: { scope: string }) => s.scope === org);
    assert.deepEqual(orgStatus.values, { active: 2, decrypt_only: 0, destroyed: 0, unknown: 0 });
    const human = await cli(['keys', 'status']);
    assert.match(human.stdout, /KEK v1 destroyed/);
    assert.match(human.stdout, /KEK v2 active/);

    const fresh = createFieldCipher(await loadKeyProvider({ masterKey: { source: 'file', path: keyFile } }));
    const plain = await inOrg(t.db, org, async (tx) => {
      const row = await tx
        .selectFrom('org_contacts')
        .selectAll()
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      return orgContactsCrypto.open(fresh, tx, { orgId: org }, id, row);
    });
    assert.deepEqual(plain, { name: 'N', email: 'e@x.org' });
  });

  it('refuses ambiguous or wrong input with a one-line error', async () => {
    const none = await cli(['keys', 'rotate']);
    assert.equal(none.code, 1);
    assert.equal(none.stderr.trim().split('\n').length, 1);
    assert.match(none.stderr, /exactly one of --master/);
    const unknown = await cli(['keys', 'rotate', '--org', 'org_00000000000000000000000000000000']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no org/);
    const batch = await cli(['keys', 'reencrypt', '--batch-size', '0']);
    assert.equal(batch.code, 1);
    const env = await cli(['keys', 'rotate', '--master'], {
      BILLVAULT_MASTER_KEY: Buffer.alloc(32, 1).toString('base64'),
    });
    assert.equal(env.code, 1);
    assert.match(env.stderr, /--new-key-out/);
  });
});

describe('billvault keys reencrypt and Ctrl-C', () => {
  it('stops cleanly on SIGINT after the current batch and resumes on the next run', async () => {
    const kp = await loadKeyProvider({ masterKey: { source: 'file', path: keyFile } }, { create: false });
    const cipher = createFieldCipher(kp);
    const N = 1500;
    await inOrg(t.db, org, async (tx) => {
      const rows = [];
      for (let i = 0; i < N; i++) {
        const id = newId('contact');
        const c = await orgContactsCrypto.seal(cipher, tx, { orgId: org }, id, { name: `Name ${i}` });
        rows.push({ org_id: org, id, kind: 'billing' as const, name_enc: c.name_enc! });
      }
      await tx.insertInto('org_contacts').values(rows).execute();
    });
    const firstKey = (
      await sql<{ k: string }>`SELECT split_part(name_enc, ':', 2) AS k FROM org_contacts
        WHERE org_id = ${org} AND kind = 'billing' LIMIT 1`.execute(t.db)
    ).rows[0]!.k;
    const child = spawn(
      process.execPath,
      [BIN, 'keys', 'reencrypt', '--json', '--batch-size', '1', '--org', org],
      {
        env: {
          PATH: process.env.PATH ?? '',
          HOME: dir,
          DATABASE_URL: t.url,
          BILLVAULT_MASTER_KEY_FILE: keyFile,
          BILLVAULT_LOG_LEVEL: 'silent',
        },
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += String(d);
    });
    child.stderr.on('data', (d) => {
      stderr += String(d);
    });
    const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? -1)));
    // Wait until values are moving off the key they were written under, then press Ctrl-C.
    for (let i = 0; i < 1200; i++) {
      const moved = await sql<{ n: string }>`SELECT count(*)::text AS n FROM org_contacts
        WHERE org_id = ${org} AND kind = 'billing' AND split_part(name_enc, ':', 2) <> ${firstKey}`.execute(
        t.db,
      );
      if (Number(moved.rows[0]?.n) > 0) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    child.kill('SIGINT');
    const code = await exited;
    assert.equal(code, 130, stderr);
    assert.ok(stdout.trim(), `no output; stderr: ${stderr}`);
    const first = JSON.parse(stdout);
    assert.equal(first.interrupted, true);
    assert.ok(first.reencrypted > 0 && first.reencrypted < N + 2, `moved ${first.reencrypted}`);
    assert.equal(first.destroyed_keys, 0);

    const second = await cli(['keys', 'reencrypt', '--json', '--batch-size', '500', '--org', org]);
    assert.equal(second.code, 0, second.stderr);
    const out = JSON.parse(second.stdout);
    assert.equal(out.interrupted, false);
    assert.equal(out.retired_keys, 0, 'resumed, not restarted');
    assert.ok(out.destroyed_keys >= 1);
    const fresh = createFieldCipher(await loadKeyProvider({ masterKey: { source: 'file', path: keyFile } }));
    const names = await inOrg(t.db, org, async (tx) => {
      const rows = await tx.selectFrom('org_contacts').selectAll().where('kind', '=', 'billing').execute();
      const out: string[] = [];
      for (const r of rows)
        out.push((await orgContactsCrypto.open(fresh, tx, { orgId: org }, r.id, r)).name ?? '');
      return out;
    });
    assert.equal(names.length, N);
    assert.equal(new Set(names).size, N);
  });
});
