import { Kysely, PostgresDialect } from 'kysely';
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
  return { db: new Kysely<DB>({ dialect: new PostgresDialect({ pool }) }), pool };
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
