// Waiting in tests without sleeping for a fixed time: a promise settled from outside, a condition
// polled until it holds, a promise that must settle in time, and the numbering queue's waiters.
import assert from 'node:assert/strict';
import { NUMBERING_QUEUE_LOCK } from '../../src/app/invoices.js';
import type { TestDatabase } from './db.js';

/** A promise and the function that resolves it. */
export function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Polls `what` every 10 ms until it holds; fails the test after 30 s. */
export async function until(what: () => Promise<boolean> | boolean, label: string): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    if (await what()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting: ${label}`);
}

/** A promise that must settle within 30 s (a wrong order of waiters would wait forever). */
export function soon<T>(p: Promise<T>, label: string): Promise<T> {
  return Promise.race([
    p,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`timed out: ${label}`)), 30_000).unref(),
    ),
  ]);
}

/** Transactions of the test database waiting in a numbering queue (a series scope's advisory lock) right now. */
export async function numberingWaiters(t: TestDatabase): Promise<number> {
  const r = await t.pool.query(
    `SELECT count(*)::int AS n FROM pg_locks
      WHERE locktype = 'advisory' AND NOT granted AND classid = $1::bigint::oid AND objsubid = 2
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [NUMBERING_QUEUE_LOCK],
  );
  return r.rows[0].n;
}
