import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { copyOut } from '../../src/adapters/db/copy-out.js';
import { withReadSnapshot } from '../../src/adapters/db/snapshot.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let t: TestDatabase;
before(async () => {
  t = await createTestDatabase({ migrate: false });
});
after(async () => {
  await t.drop();
});

/** The int4 values of a binary COPY of one int4 column. */
function ints(buf: Buffer): number[] {
  assert.equal(buf.subarray(0, 11).toString('latin1'), 'PGCOPY\n\xff\r\n\0');
  const out: number[] = [];
  let o = 19 + buf.readInt32BE(15);
  for (;;) {
    const n = buf.readInt16BE(o);
    o += 2;
    if (n === -1) break;
    assert.equal(n, 1);
    assert.equal(buf.readInt32BE(o), 4);
    out.push(buf.readInt32BE(o + 4));
    o += 8;
  }
  assert.equal(o, buf.length, 'nothing after the trailer');
  return out;
}

describe('copyOut: COPY … TO STDOUT collected whole', () => {
  it('returns every row, across many socket chunks, and the client goes on as usual', async () => {
    const client = await t.pool.connect();
    try {
      const buf = await copyOut(
        client,
        'COPY (SELECT g::int4 FROM generate_series(1, 200000) g) TO STDOUT (FORMAT binary)',
      );
      const got = ints(buf);
      assert.equal(got.length, 200000);
      assert.equal(got[0], 1);
      assert.equal(got.at(-1), 200000);
      assert.ok(got.every((v, i) => v === i + 1));
      const after = await client.query<{ one: number }>('SELECT 1 AS one');
      assert.equal(after.rows[0]?.one, 1);
    } finally {
      client.release();
    }
  });

  it('an empty result, notices on the way, and two COPYs queued on one client', async () => {
    const client = await t.pool.connect();
    try {
      await client.query(`CREATE TEMP TABLE n (v int4)`);
      await client.query(`INSERT INTO n SELECT generate_series(1, 3)`);
      // A function that raises a NOTICE per row: NoticeResponse messages among the CopyData.
      await client.query(`CREATE FUNCTION pg_temp.loud(v int4) RETURNS int4 LANGUAGE plpgsql AS
        $$ BEGIN RAISE NOTICE 'row %', v; RETURN v; END $$`);
      const [a, b, empty] = await Promise.all([
        copyOut(client, 'COPY (SELECT pg_temp.loud(v) FROM n ORDER BY v) TO STDOUT (FORMAT binary)'),
        copyOut(client, 'COPY (SELECT v * 10 FROM n ORDER BY v) TO STDOUT (FORMAT binary)'),
        copyOut(client, 'COPY (SELECT v FROM n WHERE false) TO STDOUT (FORMAT binary)'),
      ]);
      assert.deepEqual(ints(a), [1, 2, 3]);
      assert.deepEqual(ints(b), [10, 20, 30]);
      assert.deepEqual(ints(empty), []);
    } finally {
      client.release();
    }
  });

  it('a failing COPY rejects with the server error, and the client stays usable', async () => {
    const client = await t.pool.connect();
    try {
      await assert.rejects(
        copyOut(client, 'COPY (SELECT no_such_column) TO STDOUT (FORMAT binary)'),
        /no_such_column/,
      );
      // An error in the middle of the rows, after data has been sent.
      await assert.rejects(
        copyOut(
          client,
          'COPY (SELECT (100 / (50000 - g))::int4 FROM generate_series(1, 60000) g) TO STDOUT (FORMAT binary)',
        ),
        /division by zero/,
      );
      const after = await client.query<{ two: number }>('SELECT 2 AS two');
      assert.equal(after.rows[0]?.two, 2);
    } finally {
      client.release();
    }
  });

  it('a statement that is not COPY … TO STDOUT is refused, and the client stays usable', async () => {
    const client = await t.pool.connect();
    try {
      await assert.rejects(copyOut(client, 'SELECT 1'), /not a COPY/);
      const after = await client.query<{ three: number }>('SELECT 3 AS three');
      assert.equal(after.rows[0]?.three, 3);
    } finally {
      client.release();
    }
  });
});

describe('withReadSnapshot: two backends, one point in time', () => {
  it("the twin sees the first session's snapshot, not a row committed after it", async () => {
    await t.db.schema.createTable('snap_rows').addColumn('v', 'integer').execute();
    await t.pool.query('INSERT INTO snap_rows VALUES (1)');
    const seen = await withReadSnapshot(
      t.db,
      async () => {},
      async (main, openTwin) => {
        const before = await main.copyOut(
          'COPY (SELECT v FROM snap_rows ORDER BY v) TO STDOUT (FORMAT binary)',
        );
        await t.pool.query('INSERT INTO snap_rows VALUES (2)');
        const twin = await openTwin();
        assert.ok(twin, 'a pool of eight has a second connection');
        const fromTwin = await twin.copyOut(
          'COPY (SELECT v FROM snap_rows ORDER BY v) TO STDOUT (FORMAT binary)',
        );
        return [ints(before), ints(fromTwin)];
      },
    );
    assert.deepEqual(seen, [[1], [1]]);
  });
});
