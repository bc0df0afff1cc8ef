import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { closeConnection, connect, type Db, migrate } from '../../src/adapters/db/index.js';

export interface TestDatabase {
  db: Db;
  pool: pg.Pool;
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** The server every DB test runs on: `npm test` always sets it (embedded or external). */
export function serverUrl(): string {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) throw new Error('TEST_DATABASE_URL is not set: run the tests through `npm test`');
  return url;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: serverUrl() });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A fresh, migrated database of its own for one test file, dropped afterwards. */
export async function createTestDatabase(opts: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const name = `bv_test_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${c.escapeIdentifier(name)}`));
  const u = new URL(serverUrl());
  u.pathname = `/${name}`;
  const url = u.toString();
  const { db, pool } = connect(url, 8);
  if (opts.migrate !== false) await migrate(pool);
  return {
    db,
    pool,
    url,
    name,
    async drop() {
      await closeConnection(db, pool);
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`));
    },
  };
}
