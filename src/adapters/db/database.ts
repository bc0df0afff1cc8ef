import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import {
  DatabaseStartError,
  type EmbeddedServer,
  ensureDatabase,
  startEmbeddedPostgres,
} from './embedded.js';
import type { DB } from './schema.js';

// bigint columns come back as JS bigint, never as a lossy number or a string.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => BigInt(v));
// Calendar dates stay ISO strings (YYYY-MM-DD): no time zone can shift an invoice's due date.
pg.types.setTypeParser(pg.types.builtins.DATE, (v) => v);
// numeric stays a string (exact decimal); timestamps become Date.

export type Db = Kysely<DB>;

export interface Database {
  db: Db;
  pool: pg.Pool;
  kind: 'embedded' | 'external';
  /** A log-safe description: host, port and database, never the password. */
  describe: string;
  close(): Promise<void>;
}

export interface OpenOptions {
  databaseUrl?: string | undefined;
  dataDir: string;
  poolSize?: number;
  log?: (line: string) => void;
}

/** Log-safe form of a PostgreSQL URL (credentials dropped). */
export function describeUrl(url: string): string {
  const u = new URL(url);
  return `postgres://${u.hostname}:${u.port || 5432}${u.pathname}`;
}

/** Closes Kysely and its pool (Kysely ends the pool only if it ever used it itself). */
export async function closeConnection(db: Db, pool: pg.Pool): Promise<void> {
  await db.destroy();
  if (!pool.ended) await pool.end();
}

/** Wraps a connection string in a Kysely instance with its pool. */
export function connect(url: string, poolSize = 10): { db: Db; pool: pg.Pool } {
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 10_000,
    application_name: 'billvault',
  });
  // An idle client's error (server restart) must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  pool.on('connect', prepareWrites);
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  pools.set(db, pool);
  return { db, pool };
}

const pools = new WeakMap<Db, pg.Pool>();

/**
 * What PostgreSQL says when a prepared statement's result columns changed under it (a migration
 * added a column to a table it returns `*` of, while this process kept running).
 */
export function isStalePreparedPlan(e: unknown): boolean {
  return (
    typeof e === 'object' &&
    e !== null &&
    (e as { code?: unknown }).code === '0A000' &&
    /cached plan must not change result type/.test(String((e as { message?: unknown }).message))
  );
}

/** Distinct write statements a connection keeps prepared; later ones run unnamed. */
export const PREPARED_WRITES_PER_CONNECTION = 128;
const WRITE_STATEMENT = /^\s*(insert|update|delete|with)\b/i;
const PREPARED_MARK = '/* prepared */';
const MARKED_READ = /^\s*(select\s+)?\/\* prepared \*\//i;

/**
 * Marks a read to be prepared like the writes: put it first in a `sql` template, or pass it to
 * a select builder's `modifyFront`. For the hot reads whose plan does not depend on their
 * parameters (a row by its key): planning them was a good part of their cost.
 */
export const PREPARED = sql.raw(PREPARED_MARK);

/**
 * Runs the connection's parameterised write statements (INSERT, UPDATE, DELETE, WITH …) as
 * named prepared statements, one per distinct text, so the server parses and plans each of
 * them once per connection instead of on every execution. Finalising an invoice is four such
 * statements (draft with lines and audit event, ledger entry, number and webhook), and their
 * planning was a large share of the database's work (about 0.5 ms of its 3 ms per invoice). Reads
 * stay unnamed unless marked PREPARED: a report's plan should see its parameters (a generic plan
 * may not suit every org).
 * Values still travel as parameters; only the statement text names the prepared statement.
 */
function prepareWrites(client: pg.PoolClient): void {
  const names = new Map<string, string>();
  // After a schema change, statements are prepared afresh under new names (the failing
  // statement's transaction is retried by inTransaction, see isRetryable).
  let generation = 0;
  Object.defineProperty(client, 'query', {
    configurable: true,
    writable: true,
    value(this: pg.PoolClient, text: unknown, values?: unknown, callback?: unknown) {
      const query = Object.getPrototypeOf(this).query as (...args: unknown[]) => unknown;
      if (
        typeof text === 'string' &&
        Array.isArray(values) &&
        callback === undefined &&
        (WRITE_STATEMENT.test(text) || MARKED_READ.test(text))
      ) {
        let name = names.get(text);
        if (name === undefined && names.size < PREPARED_WRITES_PER_CONNECTION) {
          name = `bv_w${generation}_${names.size}`;
          names.set(text, name);
        }
        if (name !== undefined)
          return (query.call(this, { name, text, values }) as Promise<unknown>).catch((e: unknown) => {
            if (isStalePreparedPlan(e)) {
              generation++;
              names.clear();
            }
            throw e;
          });
      }
      return query.call(this, text, values, callback);
    },
  });
}

/**
 * The pool behind a Kysely instance made by connect(), for the few readers that need what the
 * query builder cannot do (binary COPY in `audit verify`).
 */
export function poolOf(db: Db): pg.Pool {
  const pool = pools.get(db);
  if (!pool) throw new Error('this database handle was not made by connect()');
  return pool;
}

/**
 * A Kysely instance over one client already checked out of a pool: queries built with the
 * query builder or `sql` run on that client's session (its open transaction, its settings).
 * The caller keeps ownership of the client; destroying the instance does not release it.
 */
export function onClient(client: pg.PoolClient): Db {
  // Kysely's Postgres connection calls only query() and release() on what the pool hands out.
  const lent = { query: client.query.bind(client), release: () => {} };
  return new Kysely<DB>({
    dialect: new PostgresDialect({
      pool: { connect: async () => lent, end: async () => {} } as unknown as pg.Pool,
    }),
  });
}

/**
 * Opens the configured database: the external server named by DATABASE_URL, or the embedded
 * server in the data dir (started here, stopped by close()).
 */
export async function openDatabase(opts: OpenOptions): Promise<Database> {
  let embedded: EmbeddedServer | undefined;
  let url = opts.databaseUrl;
  if (!url) {
    embedded = await startEmbeddedPostgres({ dataDir: opts.dataDir, log: opts.log });
    url = await ensureDatabase(embedded.adminUrl, 'billvault');
  }
  const { db, pool } = connect(url, opts.poolSize);
  try {
    await pool.query('SELECT 1');
  } catch (e) {
    await closeConnection(db, pool).catch(() => {});
    await embedded?.stop();
    throw new DatabaseStartError(
      `cannot connect to PostgreSQL at ${describeUrl(url)}: ${(e as Error).message}`,
    );
  }
  return {
    db,
    pool,
    kind: embedded ? 'embedded' : 'external',
    describe: embedded
      ? `embedded PostgreSQL (${describeUrl(url)})`
      : `external PostgreSQL (${describeUrl(url)})`,
    async close() {
      await closeConnection(db, pool);
      await embedded?.stop();
    },
  };
}
