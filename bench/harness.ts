import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { closeConnection, connect, type Db, migrate } from '../src/adapters/db/index.js';

/** What a scenario gets: the database server to use, and a way to make a fresh database on it. */
export interface BenchContext {
  dbKind: 'embedded' | 'external' | 'none';
  /** Superuser URL of the server (its `postgres` database). */
  serverUrl: string | undefined;
  /** A fresh migrated database; dropped when the scenario ends. */
  freshDatabase(): Promise<{ db: Db; pool: pg.Pool; url: string }>;
}

export interface Scenario {
  name: string;
  unit: string;
  /** Scenarios that need PostgreSQL run once per database kind available. */
  needsDb?: boolean;
  /** Returns the headline figure, or the figure plus named extras (e.g. p50/p99). */
  run(ctx: BenchContext): Promise<number | { value: number; extra?: Record<string, number | string> }>;
}

/** Times `fn` in a loop for about `ms` milliseconds; returns operations per second. */
export async function opsPerSecond(
  fn: () => unknown | Promise<unknown>,
  ms = 1000,
  warmup = 50,
): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const start = process.hrtime.bigint();
  const until = start + BigInt(ms) * 1_000_000n;
  let n = 0;
  let now = start;
  while (now < until) {
    await fn();
    n++;
    now = process.hrtime.bigint();
  }
  return (n * 1e9) / Number(now - start);
}

/** Percentile (0–100) of a list of numbers. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx] ?? Number.NaN;
}

/** Builds the context for one database server. */
export function makeContext(
  kind: BenchContext['dbKind'],
  serverUrl: string | undefined,
): BenchContext & {
  cleanup(): Promise<void>;
} {
  const made: { name: string; db: Db; pool: pg.Pool }[] = [];
  return {
    dbKind: kind,
    serverUrl,
    async freshDatabase() {
      if (!serverUrl) throw new Error('no database server for this scenario');
      const name = `bv_bench_${randomBytes(5).toString('hex')}`;
      const admin = new pg.Client({ connectionString: serverUrl });
      await admin.connect();
      await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)}`);
      await admin.end();
      const u = new URL(serverUrl);
      u.pathname = `/${name}`;
      const { db, pool } = connect(u.toString(), 20);
      await migrate(pool);
      made.push({ name, db, pool });
      return { db, pool, url: u.toString() };
    },
    async cleanup() {
      for (const m of made.splice(0)) {
        await closeConnection(m.db, m.pool);
        const admin = new pg.Client({ connectionString: serverUrl });
        await admin.connect();
        await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(m.name)} WITH (FORCE)`);
        await admin.end();
      }
    },
  };
}
