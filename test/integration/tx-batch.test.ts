// Shared transactions (src/app/tx-batch.ts): callers of an org who queue share one transaction,
// and each caller's outcome must still be exactly its own — a refused caller writes nothing, a
// failing statement takes nobody else's work with it, and nothing is committed twice.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import type { Tx } from '../../src/adapters/db/index.js';
import { createOrg } from '../../src/app/orgs.js';
import { OrgTxBatcher, type Stage } from '../../src/app/tx-batch.js';
import { DomainError } from '../../src/domain/errors.js';
import { newId } from '../../src/domain/ids.js';
import { standardRateRow } from '../helpers/billing.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { deferred } from '../helpers/wait.js';

let t: TestDatabase;
let org: string;
let other: string;
before(async () => {
  t = await createTestDatabase();
  org = (await createOrg(t.db, { name: 'Batch', baseCurrency: 'EUR' })).id;
  other = (await createOrg(t.db, { name: 'Other', baseCurrency: 'EUR' })).id;
});
after(() => t.drop());

/** A tax rate row named `name` in the caller's org (an org-scoped table under Row-Level Security). */
const insertRate = (tx: Tx, orgId: string, name: string) =>
  tx
    .insertInto('tax_rates')
    .values(standardRateRow(orgId, newId('tax_rate'), name, '1'))
    .returning(['id', 'name']);

const selectOne = (tx: Tx) => ({
  execute: async () => (await sql<{ one: number }>`SELECT 1 AS one`.execute(tx)).rows,
});

async function ratesNamed(prefix: string): Promise<string[]> {
  const r = await sql<{
    name: string;
  }>`SELECT name FROM tax_rates WHERE name LIKE ${`${prefix}%`} ORDER BY name`.execute(t.db);
  return r.rows.map((x) => x.name);
}

/** A stage that reads (the org's rates, as a caller would) and then writes one row. */
const writer =
  (name: string, orgId = org): Stage<string> =>
  async (tx) => {
    await tx.selectFrom('tax_rates').select('id').limit(1).execute();
    return {
      order: 'x',
      statement: () => insertRate(tx, orgId, name),
      answer: (rows) => (rows[0] as { name: string }).name,
    };
  };

/**
 * Holds the org's first transaction in its stage until released, so that the callers started
 * meanwhile queue and then share the next transaction.
 */
function blocker(b: OrgTxBatcher, name: string) {
  const release = deferred();
  const done = b.run(org, async (tx) => {
    await release.promise;
    return writer(name)(tx);
  });
  return { release: release.resolve, done };
}

describe('shared transactions', () => {
  it('callers who queue share one transaction and each gets its own answer', async () => {
    const b = new OrgTxBatcher(t.db, { maxBatch: 16, maxInFlight: 2 });
    const block = blocker(b, 'ok-0');
    const callers = Array.from({ length: 5 }, (_, i) => b.run(org, writer(`ok-${i + 1}`)));
    block.release();
    assert.deepEqual(await Promise.all([block.done, ...callers]), [
      'ok-0',
      'ok-1',
      'ok-2',
      'ok-3',
      'ok-4',
      'ok-5',
    ]);
    assert.deepEqual(b.counts, { transactions: 2, shared: 1, sharedCallers: 5, reruns: 0 });
    assert.deepEqual(await ratesNamed('ok-'), ['ok-0', 'ok-1', 'ok-2', 'ok-3', 'ok-4', 'ok-5']);
  });

  it('a caller refused in its stage fails alone; the others are written', async () => {
    const b = new OrgTxBatcher(t.db, { maxBatch: 16, maxInFlight: 2 });
    const block = blocker(b, 'ref-0');
    const refused = b.run(org, async () => {
      throw new DomainError('validation_failed', 'refused on purpose', 'x');
    });
    const callers = [b.run(org, writer('ref-1')), refused, b.run(org, writer('ref-2'))];
    block.release();
    const results = await Promise.allSettled(callers);
    assert.equal(results[0]?.status, 'fulfilled');
    assert.equal(results[2]?.status, 'fulfilled');
    assert.equal(results[1]?.status, 'rejected');
    assert.equal(((results[1] as PromiseRejectedResult).reason as DomainError).message, 'refused on purpose');
    await block.done;
    assert.equal(b.counts.shared, 1);
    assert.equal(b.counts.reruns, 0, 'a refusal that wrote nothing keeps the shared transaction');
    assert.deepEqual(await ratesNamed('ref-'), ['ref-0', 'ref-1', 'ref-2']);
  });

  it('a refused caller that had written is never committed: everyone runs alone, the refused one rolls back', async () => {
    const b = new OrgTxBatcher(t.db, { maxBatch: 16, maxInFlight: 2 });
    const block = blocker(b, 'wr-0');
    const sneaky = b.run(org, async (tx) => {
      await insertRate(tx, org, 'wr-refused').execute();
      throw new DomainError('validation_failed', 'refused after writing', 'x');
    });
    const callers = [b.run(org, writer('wr-1')), sneaky, b.run(org, writer('wr-2'))];
    block.release();
    const results = await Promise.allSettled(callers);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    await block.done;
    assert.equal(b.counts.reruns, 3);
    assert.deepEqual(await ratesNamed('wr-'), ['wr-0', 'wr-1', 'wr-2']);
  });

  it('a failing statement takes nobody else’s work with it, and nothing is written twice', async () => {
    const b = new OrgTxBatcher(t.db, { maxBatch: 16, maxInFlight: 2 });
    const block = blocker(b, 'fail-0');
    // Writes into another org's rows: Row-Level Security refuses the statement (a database error).
    const failing = writer('fail-bad', other);
    const callers = [b.run(org, writer('fail-1')), b.run(org, failing), b.run(org, writer('fail-2'))];
    block.release();
    const results = await Promise.allSettled(callers);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    assert.match(String((results[1] as PromiseRejectedResult).reason), /row-level security/);
    await block.done;
    assert.equal(b.counts.shared, 1);
    assert.equal(b.counts.reruns, 3);
    assert.deepEqual(await ratesNamed('fail-'), ['fail-0', 'fail-1', 'fail-2']);
    const everywhere = await sql<{
      n: number;
    }>`SELECT count(*)::int AS n FROM tax_rates WHERE name = 'fail-bad'`.execute(t.db);
    assert.equal(everywhere.rows[0]?.n, 0);
  });

  it('a database error in a stage sends everyone to run alone', async () => {
    const b = new OrgTxBatcher(t.db, { maxBatch: 16, maxInFlight: 2 });
    const block = blocker(b, 'st-0');
    const broken: Stage<string> = async (tx) => {
      await sql`SELECT 1 / 0`.execute(tx);
      return { order: 'x', statement: () => ({ execute: async () => [] }), answer: () => 'never' };
    };
    const callers = [b.run(org, writer('st-1')), b.run(org, broken), b.run(org, writer('st-2'))];
    block.release();
    const results = await Promise.allSettled(callers);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    assert.match(String((results[1] as PromiseRejectedResult).reason), /division by zero/);
    await block.done;
    assert.equal(b.counts.reruns, 3);
    assert.deepEqual(await ratesNamed('st-'), ['st-0', 'st-1', 'st-2']);
  });

  it('a COMMIT that goes unanswered (the connection is lost) fails every caller and runs nobody again', async () => {
    const b = new OrgTxBatcher(t.db, { maxBatch: 16, maxInFlight: 2 });
    const block = blocker(b, 'lost-0');
    // The connection is ended while its statement runs and COMMIT waits behind it: nobody can
    // know what the server did with the COMMIT, so running the callers again could write their
    // work twice.
    const cut: Stage<string> = async (tx) => {
      const r = await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(tx);
      const pid = r.rows[0]?.pid;
      return {
        order: 'y',
        statement: () => ({
          execute: async () => {
            const slow = sql`SELECT pg_sleep(10)`.execute(tx);
            setTimeout(() => void t.pool.query('SELECT pg_terminate_backend($1)', [pid]), 200);
            return (await slow).rows;
          },
        }),
        answer: () => 'never',
      };
    };
    const callers = [b.run(org, writer('lost-1')), b.run(org, cut), b.run(org, writer('lost-2'))];
    block.release();
    const results = await Promise.allSettled(callers);
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected', 'rejected'],
    );
    await block.done;
    assert.equal(b.counts.shared, 1);
    assert.equal(b.counts.reruns, 0);
    // (here the server died before it read COMMIT: nothing of the shared transaction was written)
    assert.deepEqual(await ratesNamed('lost-'), ['lost-0']);
  });

  it('a shared transaction sees only its org, like any other', async () => {
    const b = new OrgTxBatcher(t.db, { maxBatch: 16, maxInFlight: 2 });
    await inOtherOrg();
    const seen: string[][] = [];
    const reader: Stage<void> = async (tx) => {
      const r = await tx.selectFrom('tax_rates').select('org_id').execute();
      seen.push([...new Set(r.map((x) => x.org_id))]);
      // (a statement that writes nothing: the shared transaction still commits)
      return { order: 'x', statement: () => selectOne(tx), answer: () => {} };
    };
    const block = blocker(b, 'iso-0');
    const callers = [b.run(org, reader), b.run(org, reader), b.run(org, reader)];
    block.release();
    await Promise.all([block.done, ...callers]);
    assert.equal(b.counts.shared, 1);
    assert.deepEqual(seen, [[org], [org], [org]]);
  });

  it('one caller alone when nobody queues; maxBatch 1 never shares', async () => {
    const b = new OrgTxBatcher(t.db, { maxBatch: 16, maxInFlight: 2 });
    assert.equal(await b.run(org, writer('solo-1')), 'solo-1');
    assert.deepEqual(b.counts, { transactions: 1, shared: 0, sharedCallers: 0, reruns: 0 });
    const never = new OrgTxBatcher(t.db, { maxBatch: 1, maxInFlight: 2 });
    await Promise.all([1, 2, 3, 4].map((i) => never.run(org, writer(`solo-n${i}`))));
    assert.equal(never.counts.shared, 0);
    assert.equal(never.counts.transactions, 4);
    assert.equal((await ratesNamed('solo-n')).length, 4);
  });
});

/** A rate of the other org, which no transaction of `org` may see. */
async function inOtherOrg() {
  const b = new OrgTxBatcher(t.db, { maxBatch: 1, maxInFlight: 1 });
  await b.run(other, writer('iso-other', other));
}
