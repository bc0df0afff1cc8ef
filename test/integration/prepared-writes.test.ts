import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { closeConnection, connect, PREPARED_WRITES_PER_CONNECTION } from '../../src/adapters/db/database.js';
import { inTransaction } from '../../src/adapters/db/tx.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let t: TestDatabase;
before(async () => {
  t = await createTestDatabase({ migrate: false });
  await t.pool.query('CREATE TABLE pw (k int PRIMARY KEY, v text)');
});
after(async () => {
  await t.drop();
});

describe('write statements run as named prepared statements', () => {
  it('a write is prepared once per connection and runs again with new values; reads are not prepared', async () => {
    await t.db.connection().execute(async (conn) => {
      for (let k = 1; k <= 3; k++)
        await conn
          .insertInto('pw' as never)
          .values({ k, v: `v${k}` } as never)
          .execute();
      await sql`SELECT v FROM pw WHERE k = ${1}`.execute(conn);
      const prepared = await sql<{ name: string; statement: string }>`
        SELECT name, statement FROM pg_prepared_statements ORDER BY name`.execute(conn);
      assert.equal(prepared.rows.length, 1, JSON.stringify(prepared.rows));
      assert.match(prepared.rows[0]?.statement ?? '', /^insert into "pw"/);
      assert.match(prepared.rows[0]?.statement ?? '', /\$1/, 'values stay parameters');
    });
    const rows = await t.pool.query('SELECT k, v FROM pw ORDER BY k');
    assert.deepEqual(rows.rows, [
      { k: 1, v: 'v1' },
      { k: 2, v: 'v2' },
      { k: 3, v: 'v3' },
    ]);
  });

  it('a failed write and a rolled-back transaction leave the prepared statement usable', async () => {
    await t.db.connection().execute(async (conn) => {
      const insert = (k: number) =>
        conn
          .insertInto('pw' as never)
          .values({ k, v: 'x' } as never)
          .execute();
      await insert(10);
      await assert.rejects(insert(10), /duplicate key/);
      await assert.rejects(
        conn.transaction().execute(async (tx) => {
          await tx
            .insertInto('pw' as never)
            .values({ k: 11, v: 'x' } as never)
            .execute();
          throw new Error('abort');
        }),
        /abort/,
      );
      await insert(12);
    });
    const rows = await t.pool.query('SELECT k FROM pw WHERE k >= 10 ORDER BY k');
    assert.deepEqual(
      rows.rows.map((r) => r.k),
      [10, 12],
    );
  });

  it(`past ${PREPARED_WRITES_PER_CONNECTION} distinct writes a connection runs further ones unnamed`, async () => {
    await t.db.connection().execute(async (conn) => {
      const before = await sql<{ n: string }>`SELECT count(*)::text AS n FROM pg_prepared_statements`.execute(
        conn,
      );
      // Distinct texts: a different number of rows in each VALUES list.
      for (let n = 1; n <= PREPARED_WRITES_PER_CONNECTION + 5; n++) {
        const rows = Array.from({ length: n }, (_, i) => ({ k: 1000 * n + i, v: 'bulk' }));
        await conn
          .insertInto('pw' as never)
          .values(rows as never)
          .execute();
      }
      const prepared = await sql<{
        n: string;
      }>`SELECT count(*)::text AS n FROM pg_prepared_statements`.execute(conn);
      assert.equal(Number(prepared.rows[0]?.n), PREPARED_WRITES_PER_CONNECTION);
      assert.ok(Number(before.rows[0]?.n) <= PREPARED_WRITES_PER_CONNECTION);
    });
    const count = await t.pool.query(`SELECT count(*)::int AS n FROM pw WHERE v = 'bulk'`);
    const n = PREPARED_WRITES_PER_CONNECTION + 5;
    assert.equal(count.rows[0].n, (n * (n + 1)) / 2);
  });

  it('a schema change under a prepared statement: the statement fails once, is prepared afresh, and a transaction is retried', async () => {
    const one = connect(t.url, 1);
    try {
      await one.pool.query('CREATE TABLE pw_schema (k int PRIMARY KEY, v text)');
      await one.pool.query('GRANT ALL ON pw_schema TO billvault_app');
      const insert = (k: number) =>
        sql<Record<string, unknown>>`INSERT INTO pw_schema (k, v) VALUES (${k}, 'x') RETURNING *`.execute(
          one.db,
        );
      assert.deepEqual((await insert(1)).rows, [{ k: 1, v: 'x' }]);
      // Another process migrates: the prepared statement's result type is now out of date.
      await t.pool.query('ALTER TABLE pw_schema ADD COLUMN w text');
      await assert.rejects(insert(2), /cached plan must not change result type/);
      assert.deepEqual((await insert(3)).rows, [{ k: 3, v: 'x', w: null }]);
      // In a transaction the same happens unseen: the attempt fails, the retry prepares afresh.
      await t.pool.query('ALTER TABLE pw_schema ADD COLUMN z text');
      const inTx = await inTransaction(one.db, {}, (tx) =>
        sql<Record<string, unknown>>`INSERT INTO pw_schema (k, v) VALUES (${4}, 'x') RETURNING *`.execute(tx),
      );
      assert.deepEqual(inTx.rows, [{ k: 4, v: 'x', w: null, z: null }]);
    } finally {
      await closeConnection(one.db, one.pool);
    }
  });
});
