import { sql } from 'kysely';
import type pg from 'pg';
import { type Db, onClient, poolOf, READ, sendTogether, settled } from './database.js';
import { scopeTransaction, type Tx } from './tx.js';

/** The transaction handed to a shared transaction's callback, and what else it may do with it. */
export interface SharedTx {
  /** Statements on it may be issued concurrently: they are pipelined, not queued behind each other. */
  tx: Tx;
  /** Statements issued until the event loop next turns leave in one write. */
  together(): void;
  /** True when the transaction has written (or locked) anything so far: it has a transaction id. */
  hasWritten(): Promise<boolean>;
  /**
   * Sends COMMIT right behind the next `statements` statements issued on `tx`, in the same write,
   * without waiting for their answers (a failed one turns the COMMIT into a ROLLBACK). Resolves
   * true when the transaction committed, false when the server rolled it back. Nothing may be
   * issued after them.
   */
  commitAfter(statements: number): Promise<boolean>;
}

/**
 * An org-scoped transaction (as the application role, like inOrg) whose statements several
 * callers may issue at once. Kysely runs a transaction's statements one after the other; here
 * they go to the connection as they are issued and node-postgres pipelines them, so N callers'
 * reads (or writes) cost one round trip instead of N.
 *
 * BEGIN, the scope and a read that checks the scope go out with the callers' first statements.
 * Until the check has answered, a read's rows are held back (and its error is the check's if
 * the check failed) and any other statement waits: nothing fn issues can write outside the
 * transaction or unscoped. Commits when fn returns (unless fn had COMMIT sent with commitAfter),
 * rolls back when it throws; there is no retry (the caller decides what to run again). A failed
 * statement aborts the whole transaction, every caller's statements with it.
 */
export async function inSharedOrgTransaction<T>(
  db: Db,
  orgId: string,
  fn: (shared: SharedTx) => Promise<T>,
): Promise<T> {
  const client: pg.PoolClient = await poolOf(db).connect();
  // A connection whose ROLLBACK failed is not handed to anyone else.
  let destroy: Error | undefined;
  let commit: Promise<pg.QueryResult> | undefined;
  try {
    const raw = onClient(client);
    sendTogether(client);
    await client.query('begin');
    await scopeTransaction(raw, orgId);
    const scoped = settled(
      sql<{ org: string }>`SELECT current_setting('app.org_id', true) AS org`.execute(raw).then((r) => {
        if (r.rows[0]?.org !== orgId) throw new Error('the shared transaction is not scoped to its org');
      }),
    );
    let issued = 0;
    let commitAt: { count: number; sent: (p: Promise<pg.QueryResult>) => void } | undefined;
    const send = (text: string, values?: unknown[]) => {
      if (commit)
        return Promise.reject(new Error('a statement was sent after its transaction had been committed'));
      const p = client.query(text, values);
      issued++;
      if (commitAt && issued >= commitAt.count) {
        commit = client.query('commit');
        commitAt.sent(commit);
        commitAt = undefined;
      }
      return p;
    };
    const session = onClient(client, (text, values) => {
      if (READ.test(text)) {
        const read = settled(send(text, values));
        return scoped.then(() => read);
      }
      return scoped.then(() => send(text, values));
    });
    const result = await fn({
      tx: session as unknown as Tx,
      together: () => sendTogether(client),
      hasWritten: async () => {
        const r = await sql<{
          xid: string | null;
        }>`SELECT pg_current_xact_id_if_assigned()::text AS xid`.execute(session);
        return r.rows[0]?.xid != null;
      },
      commitAfter: (statements) =>
        new Promise<pg.QueryResult>((sent) => {
          if (statements > 0) {
            commitAt = { count: issued + statements, sent };
            return;
          }
          commit = client.query('commit');
          sent(commit);
        }).then((r) => r.command === 'COMMIT'),
    });
    await scoped;
    if (!commit) {
      const done = await client.query('commit');
      if (done.command !== 'COMMIT') throw new Error('the transaction was rolled back at commit');
    }
    return result;
  } catch (e) {
    // (after a COMMIT, committed or turned into a rollback, this ROLLBACK only draws a warning)
    await (commit ?? Promise.resolve()).catch(() => {});
    await client.query('rollback').catch((re: Error) => {
      destroy = re;
    });
    throw e;
  } finally {
    client.release(destroy);
  }
}
