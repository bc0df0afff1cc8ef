import type { Writable } from 'node:stream';
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
  /**
   * The connection string, for `serve --workers` to hand its server processes (the embedded
   * server's holds its password): never logged, never put in an error.
   */
  url: string;
  /** A log-safe description: host, port and database, never the password. */
  describe: string;
  close(): Promise<void>;
}

export interface OpenOptions {
  databaseUrl?: string | undefined;
  /** The embedded server another process of this install started (a `serve --workers` worker). */
  sharedEmbeddedUrl?: string | undefined;
  dataDir: string;
  poolSize?: number;
  /** The embedded server's nice value (EmbeddedOptions.nice). */
  embeddedNice?: number;
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
    // Queries go out as soon as they are issued; see pipelineTransactions for the two that do
    // not wait for the one before.
    pipeline: true,
  });
  // An idle client's error (server restart) must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  pool.on('connect', prepareWrites);
  pool.on('release', (_err: Error | undefined, client: pg.PoolClient) => resetPipeline(client));
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
 * them once per connection instead of on every execution. Finalising an invoice was four such
 * statements when this came in (now one or two), and their planning was a large share of the
 * database's work (about 0.5 ms of its 3 ms per invoice). Reads
 * stay unnamed unless marked PREPARED: a report's plan should see its parameters (a generic plan
 * may not suit every org).
 * Values still travel as parameters; only the statement text names the prepared statement.
 *
 * The connection also pipelines the two round trips of a transaction that need no answer in
 * between (see pipelineTransactions).
 */
function prepareWrites(client: pg.PoolClient): void {
  const names = new Map<string, string>();
  // After a schema change, statements are prepared afresh under new names (the failing
  // statement's transaction is retried by inTransaction, see isRetryable).
  let generation = 0;
  // looked up on every call (the benchmarks count statements by wrapping the prototype's)
  const query = (...args: unknown[]): Promise<pg.QueryResult> =>
    (Object.getPrototypeOf(client).query as (...a: unknown[]) => Promise<pg.QueryResult>).apply(client, args);
  const send = (text: string, values: unknown[] | undefined): Promise<pg.QueryResult> => {
    if (values && (WRITE_STATEMENT.test(text) || MARKED_READ.test(text))) {
      let name = names.get(text);
      if (name === undefined && names.size < PREPARED_WRITES_PER_CONNECTION) {
        name = `bv_w${generation}_${names.size}`;
        names.set(text, name);
      }
      if (name !== undefined)
        return query({ name, text, values }).catch((e: unknown) => {
          if (isStalePreparedPlan(e)) {
            generation++;
            names.clear();
          }
          throw e;
        });
    }
    return query(text, values);
  };
  const pipelined = pipelineTransactions(client, send);
  Object.defineProperty(client, 'query', {
    configurable: true,
    writable: true,
    value(text: unknown, values?: unknown, callback?: unknown) {
      if (
        typeof text === 'string' &&
        callback === undefined &&
        (values === undefined || Array.isArray(values))
      )
        return pipelined(text, values as unknown[] | undefined);
      return query(text, values, callback);
    },
  });
}

/** Appended to a transaction's last statement (`modifyEnd`): COMMIT follows it on the wire. */
const THEN_COMMIT_MARK = '/* then commit */';
export const THEN_COMMIT = sql.raw(THEN_COMMIT_MARK);
/**
 * Put first in the statement that scopes a transaction (role, org): it is prepared like a marked
 * read and follows BEGIN on the wire.
 */
const SCOPE_MARK = `${PREPARED_MARK} /* scope */`;
export const SCOPE = sql.raw(SCOPE_MARK);
/** A read (what may follow an unconfirmed BEGIN: it writes nothing, whatever happened to BEGIN). */
export const READ = /^\s*(\/\* prepared \*\/\s*)?select\b/i;
/** BEGIN as Kysely sends it. */
const KYSELY_BEGIN = /^(begin|start transaction( isolation level [a-z ]+)?)$/;

interface PipelineState {
  /** BEGIN, sent and not yet confirmed. */
  begin?: Promise<pg.QueryResult> | undefined;
  /** The scope statement sent behind BEGIN, not yet confirmed. */
  scope?: Promise<pg.QueryResult> | undefined;
  /** COMMIT, sent right after the transaction's last statement. */
  commit?: Promise<pg.QueryResult> | undefined;
}
const pipelineStates = new WeakMap<pg.PoolClient, PipelineState>();

/** The answer handed back for a statement whose real answer is awaited later (or not needed). */
const answered = (command: string, rowCount: number | null = null): pg.QueryResult => ({
  command,
  rowCount,
  rows: [],
  oid: 0,
  fields: [],
});

/** p, marked handled: its rejection is thrown where it is awaited, never reported as unhandled. */
export const settled = <T>(p: Promise<T>): Promise<T> => {
  p.catch(() => {});
  return p;
};

/** The socket node-postgres writes a client's messages to (corked to send several in one write). */
function socketOf(client: pg.PoolClient): Partial<Writable> {
  return (client as unknown as { connection: { stream: Partial<Writable> } }).connection.stream;
}

/**
 * Two round trips of every transaction carry nothing the client must read before the next
 * statement, so the connection (in node-postgres' pipeline mode) sends them without waiting:
 *
 * - BEGIN goes out with the statement that scopes the transaction (marked SCOPE) and, when the
 *   transaction's first statement after them is a read, with that read: Kysely's BEGIN and the
 *   scope statement return at once, and their answers are awaited with the read's. A write never
 *   follows an unconfirmed BEGIN (it waits for BEGIN and the scope), so none can run outside its
 *   transaction or unscoped if either failed; a read that ran so has its rows dropped and the
 *   failure thrown instead (the scope statement itself changes nothing past its own end).
 * - COMMIT goes out right behind the statement marked THEN_COMMIT, so the transaction's locks
 *   (an invoice series' counter row) are held for the server's time only, not for a round trip
 *   through a busy event loop as well. If that statement fails, the server answers COMMIT with
 *   ROLLBACK: the statement's error is thrown and nothing is written. Kysely's own COMMIT then
 *   only collects the answer; a statement after it is refused (the transaction is over).
 */
function pipelineTransactions(
  client: pg.PoolClient,
  send: (text: string, values: unknown[] | undefined) => Promise<pg.QueryResult>,
) {
  const state: PipelineState = {};
  pipelineStates.set(client, state);
  // Statements sent together leave in one write (one system call, one wake-up of the server).
  const stream = socketOf(client);
  let corked: NodeJS.Immediate | undefined;
  const cork = () => {
    if (corked || !stream.cork || !stream.uncork) return;
    stream.cork();
    // whatever happens, the bytes leave before the event loop waits for I/O again
    corked = setImmediate(uncork);
  };
  const uncork = () => {
    if (!corked) return;
    clearImmediate(corked);
    corked = undefined;
    stream.uncork?.();
  };
  return async (text: string, values: unknown[] | undefined): Promise<pg.QueryResult> => {
    if (state.commit) {
      const commit = state.commit;
      if (text === 'commit' || text === 'rollback') {
        state.commit = undefined;
        // rollback after an early COMMIT: the statement failed (and the server rolled back), or
        // the code after it threw; either way there is nothing left to roll back.
        return text === 'commit' ? commit : answered('ROLLBACK');
      }
      throw new Error('a statement was sent after its transaction had been committed');
    }
    if (KYSELY_BEGIN.test(text) && !values?.length && !state.begin) {
      cork();
      state.begin = settled(send(text, values));
      return answered('BEGIN');
    }
    if (state.begin) {
      if (text.startsWith(SCOPE_MARK) && !state.scope) {
        // its answer (the settings it made) is not read: confirmed with the next statement's
        state.scope = settled(send(text, values));
        return answered('SELECT', 0);
      }
      const pending = [state.begin, state.scope];
      state.begin = undefined;
      state.scope = undefined;
      const confirm = async () => {
        for (const p of pending) await p;
      };
      if (READ.test(text)) {
        // A read rides along too: should BEGIN or the scope have failed, its rows are dropped
        // and their error thrown instead (nothing is written by a read).
        const read = settled(send(text, values));
        uncork();
        await confirm();
        return read;
      }
      uncork();
      if (text === 'rollback') await confirm().catch(() => {});
      else await confirm();
    }
    if (text.endsWith(THEN_COMMIT_MARK)) {
      cork();
      const last = send(text, values);
      const commit = settled(send('COMMIT', undefined));
      uncork();
      state.commit = commit;
      const result = await last.catch(async (e: unknown) => {
        await commit;
        throw e;
      });
      const done = await commit;
      if (done.command !== 'COMMIT') throw new Error('the transaction was rolled back at commit');
      return result;
    }
    return send(text, values);
  };
}

/** Forgets what a client had pipelined (the pool hands it to someone else next). */
function resetPipeline(client: pg.PoolClient): void {
  const state = pipelineStates.get(client);
  if (state) {
    state.begin = undefined;
    state.scope = undefined;
    state.commit = undefined;
  }
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
export function onClient(
  client: pg.PoolClient,
  query: (text: string, values?: unknown[]) => Promise<pg.QueryResult> = client.query.bind(client),
): Db {
  // Kysely's Postgres connection calls only query() and release() on what the pool hands out.
  const lent = { query, release: () => {} };
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
  let url = opts.sharedEmbeddedUrl ?? opts.databaseUrl;
  if (!url) {
    embedded = await startEmbeddedPostgres({
      dataDir: opts.dataDir,
      ...(opts.embeddedNice !== undefined ? { nice: opts.embeddedNice } : {}),
      ...(opts.log ? { log: opts.log } : {}),
    });
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
  const isEmbedded = Boolean(embedded || opts.sharedEmbeddedUrl);
  return {
    db,
    pool,
    kind: isEmbedded ? 'embedded' : 'external',
    url,
    describe: isEmbedded
      ? `embedded PostgreSQL (${describeUrl(url)})`
      : `external PostgreSQL (${describeUrl(url)})`,
    async close() {
      await closeConnection(db, pool);
      await embedded?.stop();
    },
  };
}

/**
 * Statements issued from now until the event loop next turns (every caller's, in every
 * microtask) leave in one write: one system call, one wake-up of the server.
 */
export function sendTogether(client: pg.PoolClient): void {
  const stream = socketOf(client);
  if (!stream.cork || !stream.uncork) return;
  stream.cork();
  setImmediate(() => stream.uncork?.());
}
