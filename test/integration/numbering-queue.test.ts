import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { inOrg } from '../../src/adapters/db/index.js';
import { takeSequence } from '../../src/app/invoices.js';
import { createOrg } from '../../src/app/orgs.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { deferred, numberingWaiters, soon, until } from '../helpers/wait.js';

// Numbers of a series scope are taken under the counter row's lock, with a transaction-scoped
// advisory lock of the scope in front of it as the waiters' queue (src/app/invoices.ts,
// nextSequenceValue). What must hold: waiters queue there, a rolled-back number is the next
// waiter's, and other scopes and other orgs do not wait.
let t: TestDatabase;
before(async () => {
  t = await createTestDatabase();
});
after(() => t.drop());

/** Every transaction a test opened, so that a failing test still ends them (and can drop its database). */
const open = new Set<(how: 'commit' | 'rollback') => void>();
afterEach(() => {
  for (const release of open) release('rollback');
  open.clear();
});

/** Takes a number in its own transaction and keeps the transaction open until `release`. */
function holdNumber(org: string, scope: string) {
  const taken = deferred<bigint>();
  const release = deferred<'commit' | 'rollback'>();
  open.add(release.resolve);
  const done = inOrg(t.db, org, async (tx) => {
    taken.resolve(await takeSequence(tx, org, 'credit_note', scope));
    if ((await release.promise) === 'rollback') throw new Error('rolled back on purpose');
  }).catch((e: Error) => {
    if (e.message !== 'rolled back on purpose') throw e;
  });
  return {
    taken: soon(taken.promise, `a number of ${scope}`),
    release(how: 'commit' | 'rollback') {
      open.delete(release.resolve);
      release.resolve(how);
    },
    done: soon(done, 'the end of a transaction'),
  };
}

describe('numbering queue', () => {
  it('waiters queue on the scope’s advisory lock; a rolled-back number goes to the next; nothing is skipped', async () => {
    const org = (await createOrg(t.db, { name: 'Queue', baseCurrency: 'EUR' })).id;
    const a = holdNumber(org, '2026');
    assert.equal(await a.taken, 1n);
    // one after the other, so that the queue's order is known
    const b = holdNumber(org, '2026');
    await until(async () => (await numberingWaiters(t)) === 1, 'the second transaction queues');
    const c = holdNumber(org, '2026');
    await until(async () => (await numberingWaiters(t)) === 2, 'the third queues behind it');

    a.release('rollback');
    await a.done;
    assert.equal(await b.taken, 1n, 'the rolled-back number is the next waiter’s');
    await until(async () => (await numberingWaiters(t)) === 1, 'the third still queues');
    b.release('commit');
    await b.done;
    assert.equal(await c.taken, 2n);
    c.release('commit');
    await c.done;
    assert.equal(await numberingWaiters(t), 0);

    const d = holdNumber(org, '2026');
    assert.equal(await d.taken, 3n);
    d.release('commit');
    await d.done;
  });

  it('another scope or another org does not wait behind a held number', async () => {
    const org = (await createOrg(t.db, { name: 'Scopes', baseCurrency: 'EUR' })).id;
    const other = (await createOrg(t.db, { name: 'Other', baseCurrency: 'EUR' })).id;
    const held = holdNumber(org, '2027');
    assert.equal(await held.taken, 1n);
    const nextYear = holdNumber(org, '2028');
    assert.equal(await nextYear.taken, 1n, 'another scope of the same series');
    const otherOrg = holdNumber(other, '2027');
    assert.equal(await otherOrg.taken, 1n, 'the same scope of another org');
    assert.equal(await numberingWaiters(t), 0);
    for (const h of [held, nextYear, otherOrg]) h.release('commit');
    await Promise.all([held.done, nextYear.done, otherOrg.done]);
  });
});
