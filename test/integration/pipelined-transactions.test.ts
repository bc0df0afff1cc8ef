import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import { closeConnection, connect, type Db, SCOPE, THEN_COMMIT } from '../../src/adapters/db/database.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

// A transaction's BEGIN travels with its scope statement, and its COMMIT with its last statement
// when that one is marked THEN_COMMIT (src/adapters/db/database.ts). What must not change:
// atomicity, the statement's own error on failure, and a connection fit for its next user.
let t: TestDatabase;
// one connection, so every test also shows that the connection is clean for the next one
let one: { db: Db; pool: pg.Pool };
before(async () => {
  t = await createTestDatabase({ migrate: false });
  await t.pool.query(`CREATE TABLE pt (k int PRIMARY KEY, v text NOT NULL);
    CREATE FUNCTION pt_no_bad() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.v = 'bad at commit' THEN RAISE EXCEPTION 'refused at commit'; END IF; RETURN NULL; END $$;
    CREATE CONSTRAINT TRIGGER pt_deferred AFTER INSERT ON pt DEFERRABLE INITIALLY DEFERRED
      FOR EACH ROW EXECUTE FUNCTION pt_no_bad();`);
  one = connect(t.url, 1);
});
after(async () => {
  await closeConnection(one.db, one.pool);
  await t.drop();
});

const insert = (db: Db, k: number, v: string) =>
  db
    .insertInto('pt' as never)
    .values({ k, v } as never)
    .returning(sql<number>`k`.as('k'));
const rows = async () => (await t.pool.query('SELECT k, v FROM pt ORDER BY k')).rows;
const scope = (db: Db, value: string) =>
  sql<{ v: string }>`${SCOPE} SELECT set_config('app.pt', ${value}, true) AS v`.execute(db);

describe('pipelined transactions', () => {
  it('BEGIN and the scope statement: one transaction, its setting local to it', async () => {
    const seen = await one.db.transaction().execute(async (tx) => {
      await scope(tx, 'scoped');
      await insert(tx, 1, 'a').execute();
      const r = await sql<{ v: string; same: boolean }>`
        SELECT current_setting('app.pt') AS v, now() = statement_timestamp() AS same`.execute(tx);
      return r.rows[0];
    });
    assert.equal(seen?.v, 'scoped');
    assert.equal(seen?.same, false, 'the later statement runs inside the transaction BEGIN opened');
    const after = await sql<{ v: string | null }>`SELECT current_setting('app.pt', true) AS v`.execute(
      one.db,
    );
    assert.ok(!after.rows[0]?.v, 'the setting ended with the transaction');
    assert.deepEqual(await rows(), [{ k: 1, v: 'a' }]);
  });

  it('a transaction whose first statement is not the scope statement waits for BEGIN, and rolls back whole', async () => {
    await assert.rejects(
      one.db.transaction().execute(async (tx) => {
        await insert(tx, 2, 'b').execute();
        throw new Error('abort');
      }),
      /abort/,
    );
    assert.deepEqual(await rows(), [{ k: 1, v: 'a' }]);
  });

  it('THEN_COMMIT: the statement and its COMMIT leave together; its result comes back committed', async () => {
    const r = await one.db.transaction().execute(async (tx) => {
      await scope(tx, 'x');
      await insert(tx, 3, 'c').execute();
      return insert(tx, 4, 'd').modifyEnd(THEN_COMMIT).executeTakeFirstOrThrow();
    });
    assert.deepEqual(r, { k: 4 });
    assert.deepEqual(await rows(), [
      { k: 1, v: 'a' },
      { k: 3, v: 'c' },
      { k: 4, v: 'd' },
    ]);
  });

  it('a failing THEN_COMMIT statement throws its own error and writes nothing of the transaction', async () => {
    await assert.rejects(
      one.db.transaction().execute(async (tx) => {
        await scope(tx, 'x');
        await insert(tx, 5, 'e').execute();
        await insert(tx, 1, 'duplicate').modifyEnd(THEN_COMMIT).execute();
      }),
      (e: unknown) => (e as { code?: string }).code === '23505',
    );
    assert.equal((await rows()).length, 3, 'row 5 rolled back with the failed statement');
  });

  it('a deferred constraint that fails at the pipelined COMMIT throws, and nothing is written', async () => {
    await assert.rejects(
      one.db.transaction().execute(async (tx) => {
        await scope(tx, 'x');
        await insert(tx, 6, 'f').execute();
        await insert(tx, 7, 'bad at commit').modifyEnd(THEN_COMMIT).execute();
      }),
      /refused at commit/,
    );
    assert.equal((await rows()).length, 3);
  });

  it('a statement after the pipelined COMMIT is refused, not run outside the transaction', async () => {
    await assert.rejects(
      one.db.transaction().execute(async (tx) => {
        await insert(tx, 8, 'h').modifyEnd(THEN_COMMIT).execute();
        await insert(tx, 9, 'i').execute();
      }),
      /after its transaction had been committed/,
    );
    const ks = (await rows()).map((r) => r.k);
    assert.ok(ks.includes(8), 'the committed statement stays');
    assert.ok(!ks.includes(9), 'the refused one never ran');
    // and the connection serves its next user normally
    await one.db.transaction().execute(async (tx) => {
      await scope(tx, 'y');
      await insert(tx, 10, 'j').execute();
    });
    assert.ok((await rows()).some((r) => r.k === 10));
  });

  it('a read right after the scope rides with BEGIN, and sees the scope’s settings', async () => {
    const r = await one.db.transaction().execute(async (tx) => {
      await scope(tx, 'read-along');
      return (await sql<{ v: string }>`SELECT current_setting('app.pt') AS v`.execute(tx)).rows[0]?.v;
    });
    assert.equal(r, 'read-along');
  });

  it('if the scope statement fails, the read behind it hands back the error, not rows; nothing is written', async () => {
    await assert.rejects(
      one.db.transaction().execute(async (tx) => {
        // a scope statement that fails on the server (division by zero), then a read, then a write
        await sql`${SCOPE} SELECT set_config('app.pt', (1 / ${0}::int)::text, true)`.execute(tx);
        await sql`SELECT k FROM pt`.execute(tx);
        await insert(tx, 40, 'never').execute();
      }),
      /division by zero/,
    );
    assert.ok(!(await rows()).some((r) => r.k === 40));
    // and the connection is fine for its next user
    await one.db.transaction().execute(async (tx) => {
      await scope(tx, 'after');
      await sql`SELECT 1`.execute(tx);
    });
  });

  it('on the wire: six statements, three round trips (BEGIN, the scope and a read together; the last with COMMIT)', async () => {
    const proto = pg.Client.prototype as unknown as { query: (...a: unknown[]) => unknown };
    const original = proto.query;
    let statements = 0;
    let roundTrips = 0;
    proto.query = function (this: { _activeQuery?: unknown; _sentQueryQueue?: unknown[] }, ...a: unknown[]) {
      statements++;
      if (!this._activeQuery && !this._sentQueryQueue?.length) roundTrips++;
      return original.apply(this, a);
    };
    try {
      await one.db.transaction().execute(async (tx) => {
        await scope(tx, 'x');
        await sql`SELECT count(*) FROM pt`.execute(tx);
        await insert(tx, 11, 'k').execute();
        await insert(tx, 12, 'l').modifyEnd(THEN_COMMIT).execute();
      });
    } finally {
      proto.query = original;
    }
    assert.deepEqual({ statements, roundTrips }, { statements: 6, roundTrips: 3 });
  });

  it('serialisation failures and retries still see the failing statement’s SQLSTATE', async () => {
    const other = new pg.Client({ connectionString: t.url });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query(`UPDATE pt SET v = 'locked' WHERE k = 1`);
      const attempt = one.db
        .transaction()
        .setIsolationLevel('repeatable read')
        .execute(async (tx) => {
          await scope(tx, 'x');
          await sql`SELECT count(*) FROM pt`.execute(tx);
          return sql`UPDATE pt SET v = 'mine' WHERE k = 1 ${THEN_COMMIT}`.execute(tx);
        });
      // the outcome is awaited from the start: the rejection may arrive before COMMIT's answer
      const outcome = assert.rejects(attempt, (e: unknown) => (e as { code?: string }).code === '40001');
      await new Promise((r) => setTimeout(r, 100));
      await other.query('COMMIT');
      await outcome;
    } finally {
      await other.end();
    }
    assert.equal((await rows()).find((r) => r.k === 1)?.v, 'locked');
  });
});
