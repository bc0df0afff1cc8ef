import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { registeredTables } from '../../src/adapters/crypto/encrypted-columns.js';
import { orgContactsCrypto } from '../../src/adapters/crypto/encrypted-tables.js';
import { createFieldCipher, parseCiphertext } from '../../src/adapters/crypto/field-cipher.js';
import {
  LocalKeyProvider,
  loadKeyProvider,
  parseKeyFile,
  writeKeyFile,
} from '../../src/adapters/crypto/key-provider.js';
import { connect } from '../../src/adapters/db/index.js';
import {
  allOrgIds,
  initKeys,
  type KeyAdminDeps,
  keyStatus,
  reencrypt,
  rotateKek,
  rotateMaster,
} from '../../src/app/keys.js';
import { createOrg } from '../../src/app/orgs.js';
import { newId } from '../../src/domain/ids.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { inOrg, inTransaction } from '../helpers/dbexports.js';

let t: TestDatabase;
let orgA: string;
let orgB: string;
let keyFile: string;
let kp: LocalKeyProvider;
let deps: KeyAdminDeps & { keyProvider: LocalKeyProvider };
const written: { org: string; id: string; name: string; email: string }[] = [];

async function addContact(org: string, i: number) {
  const id = newId('contact');
  const name = `Person ${i} of ${org.slice(-4)}`;
  const email = `person${i}@example.org`;
  await inOrg(t.db, org, async (tx) => {
    const cols = await orgContactsCrypto.seal(deps.cipher, tx, { orgId: org }, id, { name, email });
    await tx
      .insertInto('org_contacts')
      .values({
        org_id: org,
        id,
        kind: 'billing',
        name_enc: cols.name_enc!,
        email_enc: cols.email_enc!,
        email_bidx: cols.email_bidx!,
      })
      .execute();
  });
  written.push({ org, id, name, email });
}

/** Reads every contact back with a brand-new cipher on a provider loaded from the key file. */
async function checkAllDecrypt(label: string) {
  const fresh = createFieldCipher(await loadKeyProvider({ masterKey: { source: 'file', path: keyFile } }));
  for (const w of written) {
    const got = await inOrg(t.db, w.org, async (tx) => {
      const row = await tx
        .selectFrom('org_contacts')
        .selectAll()
        .where('id', '=', w.id)
        .executeTakeFirstOrThrow();
      return orgContactsCrypto.open(fresh, tx, { orgId: w.org }, w.id, row);
    });
    assert.deepEqual(got, { name: w.name, email: w.email }, `${label}: ${w.id}`);
  }
}

before(async () => {
  t = await createTestDatabase();
  orgA = (await createOrg(t.db, { name: 'A', baseCurrency: 'EUR' })).id;
  orgB = (await createOrg(t.db, { name: 'B', baseCurrency: 'EUR' })).id;
  keyFile = path.join(mkdtempSync(path.join(tmpdir(), 'bv-keys-')), 'conf', 'master.key');
  kp = await loadKeyProvider({ masterKey: { source: 'file', path: keyFile } });
  deps = { db: t.db, keyProvider: kp, cipher: createFieldCipher(kp), tables: registeredTables() };
  for (let i = 0; i < 20; i++) await addContact(orgA, i);
  for (let i = 0; i < 5; i++) await addContact(orgB, i);
});
after(() => t.drop());

describe('key file', () => {
  it('is created with mode 0600 in a 0700 directory when missing, and refused when others can read it', async () => {
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    assert.equal(statSync(path.dirname(keyFile)).mode & 0o777, 0o700);
    const other = path.join(path.dirname(keyFile), 'open.key');
    await writeKeyFile(other, [Buffer.alloc(32, 7)]);
    const { chmodSync } = await import('node:fs');
    chmodSync(other, 0o644);
    await assert.rejects(
      loadKeyProvider({ masterKey: { source: 'file', path: other } }),
      /readable by other users/,
    );
    await assert.rejects(
      loadKeyProvider(
        { masterKey: { source: 'file', path: path.join(path.dirname(keyFile), 'nope.key') } },
        { create: false },
      ),
      /keys init/,
    );
  });
});

describe('rotation round trip', () => {
  it('keys init gives the platform and every org an active KEK, audited', async () => {
    const res = await initKeys(deps);
    assert.deepEqual(
      res.map((r) => r.scope),
      [null, ...[orgA, orgB].sort()],
    );
    const platform = await sql<{ status: string }>`SELECT status FROM platform_key_versions`.execute(t.db);
    assert.deepEqual(platform.rows, [{ status: 'active' }]);
    const again = await initKeys(deps);
    assert.deepEqual(again, res, 'idempotent');
  });

  it('rotating the master key re-wraps every KEK and destroys the old master key', async () => {
    const oldIds = [...kp.keyIds()];
    const oldProvider = new LocalKeyProvider(parseKeyFile(readFileSync(keyFile, 'utf8'), keyFile), 'old');
    const res = await rotateMaster(deps, (keys) => writeKeyFile(keyFile, keys));
    assert.ok(res.rewrapped >= 3, `re-wrapped ${res.rewrapped}`);
    assert.deepEqual(res.dropped, oldIds);
    assert.deepEqual(kp.keyIds(), [res.masterKeyId]);
    assert.equal(
      parseKeyFile(readFileSync(keyFile, 'utf8'), keyFile).length,
      1,
      'old key gone from the file',
    );
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const status = await keyStatus(deps);
    assert.deepEqual(Object.keys(status.master_keys_referenced), [res.masterKeyId]);
    await checkAllDecrypt('after master rotation');
    // The old master key alone opens nothing any more.
    const oldCipher = createFieldCipher(oldProvider);
    const w = written[0]!;
    await assert.rejects(
      inOrg(t.db, w.org, async (tx) => {
        const row = await tx
          .selectFrom('org_contacts')
          .selectAll()
          .where('id', '=', w.id)
          .executeTakeFirstOrThrow();
        return orgContactsCrypto.open(oldCipher, tx, { orgId: w.org }, w.id, row);
      }),
      /does not hold/,
    );
  });

  it('rotating an org KEK re-wraps its data keys and destroys the old version; other orgs untouched', async () => {
    const beforeB = await inOrg(t.db, orgB, (tx) =>
      tx.selectFrom('org_key_versions').select(['version', 'status']).execute(),
    );
    const res = await rotateKek(deps, orgA);
    assert.equal(res.newVersion, 2);
    assert.ok(res.rewrapped >= 2, `data + blind index keys re-wrapped: ${res.rewrapped}`);
    assert.deepEqual(res.destroyedVersions, [1]);
    const keks = await inOrg(t.db, orgA, (tx) =>
      tx
        .selectFrom('org_key_versions')
        .select(['version', 'status', 'wrapped_key'])
        .orderBy('version')
        .execute(),
    );
    assert.deepEqual(
      keks.map((k) => [k.version, k.status, k.wrapped_key === null]),
      [
        [1, 'destroyed', true],
        [2, 'active', false],
      ],
    );
    const afterB = await inOrg(t.db, orgB, (tx) =>
      tx.selectFrom('org_key_versions').select(['version', 'status']).execute(),
    );
    assert.deepEqual(afterB, beforeB);
    await checkAllDecrypt('after KEK rotation');
    // Blind indexes survive a KEK rotation (the index key is re-wrapped, not replaced).
    const found = await inOrg(t.db, orgA, async (tx) => {
      const idx = await orgContactsCrypto.index(deps.cipher, tx, orgA, 'email', 'person3@example.org');
      return tx.selectFrom('org_contacts').select('id').where('email_bidx', '=', idx).execute();
    });
    assert.equal(found.length, 1);
  });

  it('re-encryption can be interrupted halfway and resumed; old data keys are destroyed at the end', async () => {
    const oldKeys = new Set(
      (await sql<{ id: string }>`SELECT id FROM org_data_keys WHERE purpose = 'data'`.execute(t.db)).rows.map(
        (r) => r.id,
      ),
    );
    const controller = new AbortController();
    let batches = 0;
    const first = await reencrypt(deps, {
      orgId: orgA,
      batchSize: 3,
      signal: controller.signal,
      onProgress: () => {
        if (++batches === 2) controller.abort();
      },
    });
    assert.equal(first.interrupted, true);
    assert.equal(first.reencrypted, 6);
    assert.equal(first.destroyedKeys, 0);
    const mid = await keyStatus(deps, orgA);
    assert.equal(mid.scopes[0]!.values.decrypt_only, 40 - 6, 'the rest waits under the retired key');
    await checkAllDecrypt('interrupted halfway');

    // A write between the runs goes under the new key, not the retired one.
    await addContact(orgA, 99);
    const last = written.at(-1)!;
    const ct = (
      await sql<{ name_enc: string }>`SELECT name_enc FROM org_contacts WHERE id = ${last.id}`.execute(t.db)
    ).rows[0]!.name_enc;
    assert.ok(!oldKeys.has(parseCiphertext(ct)!.keyId));

    const second = await reencrypt(deps, { orgId: orgA, batchSize: 3 });
    assert.equal(second.interrupted, false);
    assert.equal(second.retiredKeys, 0, 'resumed the pending pass instead of starting a new one');
    assert.equal(second.reencrypted, 34);
    assert.equal(second.destroyedKeys, 1);
    const done = await keyStatus(deps, orgA);
    assert.deepEqual(done.scopes[0]!.values, { active: 42, decrypt_only: 0, destroyed: 0, unknown: 0 });
    const statuses = await sql<{ id: string; status: string; wrapped: boolean }>`
      SELECT id, status, wrapped_key IS NOT NULL AS wrapped FROM org_data_keys
      WHERE org_id = ${orgA} AND purpose = 'data'`.execute(t.db);
    for (const k of statuses.rows) {
      if (oldKeys.has(k.id)) assert.deepEqual([k.status, k.wrapped], ['destroyed', false]);
      else assert.equal(k.status, 'active');
    }
    await checkAllDecrypt('after re-encryption');
    // Org B was not part of this run.
    const b = await keyStatus(deps, orgB);
    assert.equal(b.scopes[0]!.values.active, 10);

    const events = await inOrg(t.db, orgA, (tx) =>
      tx.selectFrom('audit_events').select('action').where('action', 'like', 'key.%').execute(),
    );
    const actions = new Set(events.map((e) => e.action));
    for (const a of [
      'key.master_rotated',
      'key.kek_rotated',
      'key.kek_destroyed',
      'key.data_keys_retired',
      'key.data_keys_destroyed',
    ])
      assert.ok(actions.has(a), `audited ${a}`);
  });

  it('a retired key still referenced by an unregistered column is kept, not shredded', async () => {
    await sql`CREATE TABLE scratch_secrets (org_id text NOT NULL, id text NOT NULL, v text NOT NULL)`.execute(
      t.db,
    );
    await sql`GRANT SELECT, INSERT ON scratch_secrets TO billvault_app`.execute(t.db);
    const ct = await inOrg(t.db, orgB, (tx) =>
      deps.cipher.encrypt(
        tx,
        { orgId: orgB },
        { table: 'scratch_secrets', column: 'v', rowId: 's1' },
        'keep me',
      ),
    );
    await inOrg(t.db, orgB, (tx) =>
      sql`INSERT INTO scratch_secrets (org_id, id, v) VALUES (${orgB}, 's1', ${ct})`.execute(tx),
    );
    const res = await reencrypt(deps, { orgId: orgB });
    assert.equal(res.reencrypted, 10);
    assert.deepEqual(res.keptKeys, [parseCiphertext(ct)!.keyId]);
    assert.equal(res.destroyedKeys, 0);
    const plain = await inOrg(t.db, orgB, (tx) =>
      deps.cipher.decrypt(tx, { orgId: orgB }, { table: 'scratch_secrets', column: 'v', rowId: 's1' }, ct),
    );
    assert.equal(plain, 'keep me');
    await checkAllDecrypt('after the partial pass in org B');
    // A kept key does not block the next rotation: the next run starts a new pass.
    const next = await reencrypt(deps, { orgId: orgB });
    assert.ok(next.retiredKeys >= 1, 'a new pass retired the current keys');
    assert.equal(next.reencrypted, 10);
    assert.deepEqual(next.keptKeys, [parseCiphertext(ct)!.keyId]);
    await checkAllDecrypt('after the second pass in org B');
  });
});

describe('rotation racing a first write', () => {
  it('a KEK is not destroyed under a transaction that is wrapping a new data key with it', async () => {
    const org = (await createOrg(t.db, { name: 'Race', baseCurrency: 'EUR' })).id;
    const f = (rowId: string) => ({ table: 'org_contacts', column: 'name_enc', rowId });
    await inOrg(t.db, org, (tx) => deps.cipher.encrypt(tx, { orgId: org }, f('warm'), 'warm'));
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let wrapped!: () => void;
    const started = new Promise<void>((r) => {
      wrapped = r;
    });
    const scope = { orgId: org, subject: { type: 'customer' as const, id: 'cus_new' } };
    let ct = '';
    const writer = inOrg(t.db, org, async (tx) => {
      ct = await deps.cipher.encrypt(tx, scope, f('cus_new'), 'first write');
      wrapped();
      await gate;
    });
    await started;
    const state: { rotated?: Awaited<ReturnType<typeof rotateKek>> } = {};
    const rotation = rotateKek(deps, org).then((r) => {
      state.rotated = r;
    });
    await new Promise((r) => setTimeout(r, 300));
    const finished = () => state.rotated !== undefined;
    assert.equal(finished(), false, 'the rotation waits for the open writer before destroying');
    release();
    await writer;
    await rotation;
    assert.deepEqual(state.rotated?.destroyedVersions, [], 'v1 still wraps the new key, so it is kept');
    const fresh = createFieldCipher(kp);
    assert.equal(await inOrg(t.db, org, (tx) => fresh.decrypt(tx, scope, f('cus_new'), ct)), 'first write');
    // The next rotation re-wraps it and can destroy both old versions.
    const again = await rotateKek(deps, org);
    assert.deepEqual(again.destroyedVersions, [1, 2]);
    assert.equal(
      await inOrg(t.db, org, (tx) => createFieldCipher(kp).decrypt(tx, scope, f('cus_new'), ct)),
      'first write',
    );
  });
});

describe('re-encryption never shreds what a row-level policy hides', () => {
  it('keeps a platform key referenced from a table the application role cannot see outside platform transactions', async () => {
    await sql`CREATE TABLE hidden_secrets (id text PRIMARY KEY, secret_enc text NOT NULL)`.execute(t.db);
    await sql`ALTER TABLE hidden_secrets ENABLE ROW LEVEL SECURITY`.execute(t.db);
    await sql`ALTER TABLE hidden_secrets FORCE ROW LEVEL SECURITY`.execute(t.db);
    await sql`CREATE POLICY only_platform ON hidden_secrets
      USING (current_setting('app.platform', true) = 'on')`.execute(t.db);
    await sql`GRANT SELECT ON hidden_secrets TO billvault_app`.execute(t.db);
    const scope = { orgId: null, subject: { type: 'user' as const, id: 'usr_hidden' } };
    const f = { table: 'hidden_secrets', column: 'secret_enc', rowId: 'usr_hidden' };
    const ct = await inTransaction(t.db, {}, (tx) => deps.cipher.encrypt(tx, scope, f, 'JBSWY3DPEHPK3PXP'));
    await sql`INSERT INTO hidden_secrets (id, secret_enc) VALUES ('usr_hidden', ${ct})`.execute(t.db);
    // The application role indeed sees nothing there.
    const visible = await inTransaction(t.db, {}, (tx) => sql`SELECT * FROM hidden_secrets`.execute(tx));
    assert.equal(visible.rows.length, 0);

    const res = await reencrypt(deps, { orgId: null });
    assert.ok(res.keptKeys.includes(parseCiphertext(ct)!.keyId), 'the key is kept');
    const fresh = createFieldCipher(kp);
    assert.equal(await inTransaction(t.db, {}, (tx) => fresh.decrypt(tx, scope, f, ct)), 'JBSWY3DPEHPK3PXP');
  });
});

describe('key administration as a role that cannot see every org', () => {
  it('refuses instead of silently skipping the orgs it cannot see', async () => {
    const role = `bv_limited_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(12).toString('hex');
    await sql`CREATE ROLE ${sql.id(role)} LOGIN PASSWORD ${sql.lit(password)}`.execute(t.db);
    await sql`GRANT SELECT ON orgs TO ${sql.id(role)}`.execute(t.db);
    const u = new URL(t.url);
    u.username = role;
    u.password = password;
    const limited = connect(u.toString(), 1);
    try {
      await assert.rejects(allOrgIds(limited.db), /sees every org \(superuser or BYPASSRLS\)/);
      const limitedDeps = { ...deps, db: limited.db };
      const before = [...kp.keyIds()];
      await assert.rejects(
        rotateMaster(limitedDeps, async () => {}),
        /superuser or BYPASSRLS/,
      );
      assert.deepEqual(kp.keyIds(), before, 'no new master key was even created');
    } finally {
      await limited.db.destroy();
      await sql`REVOKE ALL ON orgs FROM ${sql.id(role)}`.execute(t.db);
      await sql`DROP ROLE ${sql.id(role)}`.execute(t.db);
    }
  });
});
