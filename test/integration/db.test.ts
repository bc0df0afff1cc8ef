import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { recordAudit } from '../../src/app/audit.js';
import { createOrg } from '../../src/app/orgs.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import {
  inOrg,
  inTransaction,
  MIGRATIONS_DIR_FOR_TESTS,
  migrate,
  migrationStatus,
} from '../helpers/dbexports.js';

let t: TestDatabase;
let orgA: string;
let orgB: string;

before(async () => {
  t = await createTestDatabase();
  orgA = (await createOrg(t.db, { name: 'Org A', baseCurrency: 'EUR' })).id;
  orgB = (await createOrg(t.db, { name: 'Org B', baseCurrency: 'usd' })).id;
  for (const [org, key] of [
    [orgA, 'a.one'],
    [orgA, 'a.two'],
    [orgB, 'b.secret'],
  ] as const) {
    await inOrg(t.db, org, (tx) =>
      tx
        .insertInto('org_settings')
        .values({ org_id: org, key, value: JSON.stringify({ v: key }) })
        .execute(),
    );
  }
});
after(() => t.drop());

describe('row-level security', () => {
  it('a query that forgets its org filter still sees only its own org', async () => {
    const rows = await inOrg(t.db, orgA, (tx) => tx.selectFrom('org_settings').selectAll().execute());
    assert.deepEqual(rows.map((r) => r.key).sort(), ['a.one', 'a.two']);
    const orgs = await inOrg(t.db, orgA, (tx) => tx.selectFrom('orgs').select('id').execute());
    assert.deepEqual(orgs, [{ id: orgA }]);
  });

  it('an explicit read of another org returns nothing', async () => {
    const rows = await inOrg(t.db, orgA, (tx) =>
      tx.selectFrom('org_settings').selectAll().where('org_id', '=', orgB).execute(),
    );
    assert.deepEqual(rows, []);
  });

  it('no org context sees no rows at all', async () => {
    const rows = await inTransaction(t.db, {}, (tx) => tx.selectFrom('org_settings').selectAll().execute());
    assert.equal(rows.length, 0);
  });

  it('cannot write into another org, nor move a row there', async () => {
    await assert.rejects(
      inOrg(t.db, orgA, (tx) =>
        tx.insertInto('org_settings').values({ org_id: orgB, key: 'x.y', value: '1' }).execute(),
      ),
      /row-level security/,
    );
    await assert.rejects(
      inOrg(t.db, orgA, (tx) =>
        tx.updateTable('org_settings').set({ org_id: orgB }).where('key', '=', 'a.one').execute(),
      ),
      /row-level security/,
    );
    const updated = await inOrg(t.db, orgA, (tx) =>
      tx.updateTable('org_settings').set({ value: '"hacked"' }).where('org_id', '=', orgB).executeTakeFirst(),
    );
    assert.equal(updated.numUpdatedRows, 0n);
  });

  it('runs business transactions as the non-superuser application role', async () => {
    const who = await inOrg(t.db, orgA, (tx) =>
      sql<{ u: string; su: string }>`SELECT current_user AS u, current_setting('is_superuser') AS su`.execute(
        tx,
      ),
    );
    assert.deepEqual(who.rows[0], { u: 'billvault_app', su: 'off' });
  });
});

describe('audit table', () => {
  it('is append-only for the application role', async () => {
    const id = await inOrg(t.db, orgA, (tx) =>
      recordAudit(tx, {
        orgId: orgA,
        actor: { kind: 'system', id: 'system' },
        action: 'test.event',
        outcome: 'success',
      }),
    );
    for (const stmt of [
      sql`UPDATE audit_events SET outcome = 'failed' WHERE id = ${id}`,
      sql`DELETE FROM audit_events WHERE id = ${id}`,
      sql`TRUNCATE audit_events`,
    ]) {
      await assert.rejects(
        inOrg(t.db, orgA, (tx) => stmt.execute(tx)),
        /permission denied/,
      );
    }
  });

  it('refuses updates even from the owner connection', async () => {
    await assert.rejects(sql`UPDATE audit_events SET outcome = 'failed'`.execute(t.db), /append-only/);
    await assert.rejects(sql`DELETE FROM audit_events`.execute(t.db), /append-only/);
  });

  it('redacts secret-looking details and commits only with the change it records', async () => {
    await assert.rejects(
      inOrg(t.db, orgA, async (tx) => {
        await recordAudit(tx, {
          orgId: orgA,
          actor: { kind: 'system', id: 'system' },
          action: 'test.rolled_back',
          outcome: 'success',
        });
        throw new Error('business failure');
      }),
    );
    const evId = await inOrg(t.db, orgA, (tx) =>
      recordAudit(tx, {
        orgId: orgA,
        actor: { kind: 'system', id: 'system' },
        action: 'test.redacted',
        outcome: 'success',
        details: { nested: { password: 'hunter2hunter2', api_key: 'bv_live_x' }, count: 3 },
      }),
    );
    const rows = await inOrg(t.db, orgA, (tx) =>
      tx
        .selectFrom('audit_events')
        .selectAll()
        .where('action', 'in', ['test.rolled_back', 'test.redacted'])
        .execute(),
    );
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.id, evId);
    assert.deepEqual(rows[0]?.details, {
      nested: { password: '[redacted]', api_key: '[redacted]' },
      count: 3,
    });
  });

  it('another org cannot read the events', async () => {
    const rows = await inOrg(t.db, orgB, (tx) =>
      tx.selectFrom('audit_events').select('org_id').where('org_id', '=', orgA).execute(),
    );
    assert.equal(rows.length, 0);
  });
});

describe('transactions', () => {
  it('retries serialization failures until the work commits once', async () => {
    let attempts = 0;
    const bump = () =>
      inOrg(
        t.db,
        orgA,
        async (tx) => {
          attempts++;
          const row = await tx
            .selectFrom('org_settings')
            .select('value')
            .where('key', '=', 'a.one')
            .executeTakeFirstOrThrow();
          const n = Number((row.value as { n?: number }).n ?? 0);
          await new Promise((r) => setTimeout(r, 5));
          await tx
            .updateTable('org_settings')
            .set({ value: JSON.stringify({ n: n + 1 }) })
            .where('key', '=', 'a.one')
            .execute();
        },
        { isolation: 'serializable', attempts: 50 },
      );
    await Promise.all(Array.from({ length: 8 }, bump));
    const row = await inOrg(t.db, orgA, (tx) =>
      tx.selectFrom('org_settings').select('value').where('key', '=', 'a.one').executeTakeFirstOrThrow(),
    );
    assert.deepEqual(row.value, { n: 8 }); // no lost update
    assert.ok(attempts > 8, `expected retries, saw ${attempts} attempts`);
  });

  it('does not retry other errors', async () => {
    let attempts = 0;
    await assert.rejects(
      inOrg(t.db, orgA, async (tx) => {
        attempts++;
        await sql`SELECT 1/0`.execute(tx);
      }),
      /division by zero/,
    );
    assert.equal(attempts, 1);
  });
});

describe('migrations', () => {
  it('are recorded and idempotent', async () => {
    assert.deepEqual(await migrate(t.pool), []);
    const status = await migrationStatus(t.pool);
    assert.equal(status.pending.length, 0);
    assert.ok(status.applied >= 1);
  });

  it('refuse a modified applied migration with a clear error', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bv-mig-'));
    copyFileSync(
      path.join(MIGRATIONS_DIR_FOR_TESTS, '0001_foundation.sql'),
      path.join(dir, '0001_foundation.sql'),
    );
    writeFileSync(path.join(dir, '0001_foundation.sql'), '-- edited\n', { flag: 'a' });
    await assert.rejects(migrate(t.pool, dir), /0001_foundation\.sql was changed after it was applied/);
    await assert.rejects(migrationStatus(t.pool, dir), /checksum mismatch/);
  });

  it('allow gaps in numbering but refuse a new migration numbered below an applied one', async () => {
    const fresh = await createTestDatabase({ migrate: false });
    try {
      const dir = mkdtempSync(path.join(tmpdir(), 'bv-mig-'));
      copyFileSync(
        path.join(MIGRATIONS_DIR_FOR_TESTS, '0001_foundation.sql'),
        path.join(dir, '0001_foundation.sql'),
      );
      writeFileSync(path.join(dir, '0005_later.sql'), 'CREATE TABLE mig_later (id int);');
      assert.deepEqual(await migrate(fresh.pool, dir), ['0001_foundation.sql', '0005_later.sql']);
      writeFileSync(path.join(dir, '0003_late.sql'), 'CREATE TABLE mig_late (id int);');
      await assert.rejects(
        migrate(fresh.pool, dir),
        /0003_late\.sql is numbered below migrations already applied/,
      );
      writeFileSync(path.join(dir, '0005_twin.sql'), 'SELECT 1;');
      await assert.rejects(migrate(fresh.pool, dir), /share a number/);
    } finally {
      await fresh.drop();
    }
  });

  it('apply in order, each in one transaction, and run concurrently without harm', async () => {
    const fresh = await createTestDatabase({ migrate: false });
    try {
      const dir = mkdtempSync(path.join(tmpdir(), 'bv-mig-'));
      copyFileSync(
        path.join(MIGRATIONS_DIR_FOR_TESTS, '0001_foundation.sql'),
        path.join(dir, '0001_foundation.sql'),
      );
      writeFileSync(path.join(dir, '0002_good.sql'), 'CREATE TABLE mig_probe (id int);');
      writeFileSync(
        path.join(dir, '0003_bad.sql'),
        'CREATE TABLE mig_half (id int); SELECT no_such_function();',
      );
      const results = await Promise.allSettled([migrate(fresh.pool, dir), migrate(fresh.pool, dir)]);
      for (const r of results) {
        assert.equal(r.status, 'rejected');
        assert.match(String((r as PromiseRejectedResult).reason), /0003_bad\.sql failed/);
      }
      const tables = await sql<{ t: string | null; h: string | null }>`
        SELECT to_regclass('mig_probe')::text AS t, to_regclass('mig_half')::text AS h`.execute(fresh.db);
      assert.deepEqual(tables.rows[0], { t: 'mig_probe', h: null }); // the failed one left nothing behind
      const status = await migrationStatus(fresh.pool, dir);
      assert.deepEqual(status.pending, ['0003_bad.sql']);
    } finally {
      await fresh.drop();
    }
  });
});
