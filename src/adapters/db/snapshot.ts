import type pg from 'pg';
import { copyOut } from './copy-out.js';
import { type Db, onClient, poolOf } from './database.js';

/** A read-only session inside one repeatable-read snapshot. */
export interface SnapshotSession {
  /** Queries built with Kysely run on this session, in its transaction. */
  db: Db;
  /** Runs `COPY (…) TO STDOUT` here and resolves with every byte it sent. */
  copyOut(text: string): Promise<Buffer>;
}

function sessionOn(client: pg.PoolClient): SnapshotSession {
  return {
    db: onClient(client),
    copyOut: (text) => copyOut(client, text),
  };
}

/** Ends a checked-out client's transaction and gives it back (dropped if anything went wrong). */
async function giveBack(client: pg.PoolClient, failed: boolean): Promise<void> {
  let broken = failed;
  await client.query('ROLLBACK').catch(() => {
    broken = true;
  });
  client.release(broken);
}

/** A client from the pool, or null when none comes within waitMs (one that comes later goes straight back). */
async function connectWithin(pool: pg.Pool, waitMs: number): Promise<pg.PoolClient | null> {
  let abandoned = false;
  const pending = pool.connect().then((c) => {
    if (!abandoned) return c;
    c.release();
    return null;
  });
  let timer: NodeJS.Timeout | undefined;
  const got = await Promise.race([
    pending,
    new Promise<'busy'>((resolve) => {
      timer = setTimeout(() => resolve('busy'), waitMs);
    }),
  ]);
  clearTimeout(timer);
  if (got !== 'busy') return got;
  abandoned = true;
  pending.then(
    (c) => c?.release(),
    () => undefined,
  );
  return null;
}

/**
 * Runs fn in a read-only repeatable-read transaction on a client of its own from db's pool,
 * scoped by `scope`. fn may ask for a twin: a second client whose transaction sees exactly the
 * same snapshot (pg_export_snapshot, SET TRANSACTION SNAPSHOT), scoped the same way, so one
 * reader can use two database backends and still see one point in time. The twin is null when
 * the pool has no second connection to give within a moment (a pool of one, a busy server).
 */
export async function withReadSnapshot<T>(
  db: Db,
  scope: (session: Db) => Promise<void>,
  fn: (main: SnapshotSession, twin: () => Promise<SnapshotSession | null>) => Promise<T>,
): Promise<T> {
  const pool = poolOf(db);
  const client = await pool.connect();
  let twin: pg.PoolClient | null = null;
  let failed = true;
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const main = sessionOn(client);
    await scope(main.db);
    const result = await fn(main, async () => {
      if (twin) throw new Error('one twin per snapshot');
      const snap = await client.query<{ id: string }>('SELECT pg_export_snapshot() AS id');
      const id = snap.rows[0]?.id ?? '';
      if (!/^[0-9A-F]+-[0-9A-F]+-[0-9]+$/i.test(id)) throw new Error('unexpected snapshot id');
      const other = await connectWithin(pool, 250);
      if (!other) return null;
      twin = other;
      await other.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await other.query(`SET TRANSACTION SNAPSHOT '${id}'`);
      const session = sessionOn(other);
      await scope(session.db);
      return session;
    });
    failed = false;
    return result;
  } finally {
    if (twin) await giveBack(twin, failed);
    await giveBack(client, failed);
  }
}
