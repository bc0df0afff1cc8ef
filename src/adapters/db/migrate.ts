import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../../migrations', import.meta.url));

export interface MigrationFile {
  version: number;
  name: string;
  checksum: string;
  sql: string;
}

export class MigrationError extends Error {
  override name = 'MigrationError';
}

const FILE_PATTERN = /^(\d{4})_[a-z0-9_]+\.sql$/;
// Any constant works; it only has to be the same for every Billvault process.
const MIGRATION_LOCK = 7_193_022_411;

/** Reads the numbered migration files in order, refusing duplicate numbers. */
export function readMigrations(dir = MIGRATIONS_DIR): MigrationFile[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort();
  const out: MigrationFile[] = [];
  for (const name of files) {
    const m = FILE_PATTERN.exec(name);
    if (!m) throw new MigrationError(`migration file ${name} is not named NNNN_description.sql`);
    const version = Number(m[1]);
    const prev = out.at(-1);
    if (prev && version === prev.version)
      throw new MigrationError(`migrations ${prev.name} and ${name} share a number`);
    const sql = readFileSync(path.join(dir, name), 'utf8');
    out.push({ version, name, sql, checksum: createHash('sha256').update(sql).digest('hex') });
  }
  return out;
}

interface AppliedRow {
  version: number;
  name: string;
  checksum: string;
}

async function applied(client: pg.PoolClient): Promise<AppliedRow[]> {
  const exists = await client.query("SELECT to_regclass('public.schema_migrations') IS NOT NULL AS ok");
  if (!exists.rows[0]?.ok) return [];
  const res = await client.query<AppliedRow>(
    'SELECT version, name, checksum FROM schema_migrations ORDER BY version',
  );
  return res.rows;
}

function checkApplied(files: MigrationFile[], rows: AppliedRow[]): void {
  const byVersion = new Map(files.map((f) => [f.version, f]));
  for (const row of rows) {
    const file = byVersion.get(row.version);
    if (!file) {
      throw new MigrationError(
        `the database has migration ${row.name}, which this Billvault does not know: the schema is newer than the code`,
      );
    }
    if (file.checksum !== row.checksum) {
      throw new MigrationError(
        `migration ${row.name} was changed after it was applied (checksum mismatch); applied migrations are frozen, add a new one instead`,
      );
    }
  }
  // A new migration numbered below one already applied would run out of order: refuse it.
  const highest = rows.reduce((max, r) => Math.max(max, r.version), 0);
  const late = files.find((f) => f.version < highest && !rows.some((r) => r.version === f.version));
  if (late) {
    throw new MigrationError(
      `migration ${late.name} is numbered below migrations already applied; renumber it after ${highest}`,
    );
  }
}

function pendingOf(files: MigrationFile[], rows: AppliedRow[]): MigrationFile[] {
  return files.filter((f) => !rows.some((r) => r.version === f.version));
}

export interface MigrationStatus {
  applied: number;
  pending: string[];
}

/** Compares the files with the database without changing anything. */
export async function migrationStatus(pool: pg.Pool, dir = MIGRATIONS_DIR): Promise<MigrationStatus> {
  const files = readMigrations(dir);
  const client = await pool.connect();
  try {
    const rows = await applied(client);
    checkApplied(files, rows);
    return { applied: rows.length, pending: pendingOf(files, rows).map((f) => f.name) };
  } finally {
    client.release();
  }
}

/**
 * Applies pending migrations, each in its own transaction, under an advisory lock so that
 * concurrent starters do not race. Refuses to run if an applied migration was modified.
 */
export async function migrate(pool: pg.Pool, dir = MIGRATIONS_DIR): Promise<string[]> {
  const files = readMigrations(dir);
  const done: string[] = [];
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
         version integer PRIMARY KEY,
         name text NOT NULL,
         checksum text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    await client.query('COMMIT');
    for (const file of files) {
      await client.query('BEGIN');
      try {
        await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
        const rows = await applied(client);
        checkApplied(files, rows);
        if (rows.some((r) => r.version === file.version)) {
          await client.query('ROLLBACK');
          continue;
        }
        await client.query(file.sql);
        await client.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
          file.version,
          file.name,
          file.checksum,
        ]);
        await client.query('COMMIT');
        done.push(file.name);
      } catch (e) {
        await client.query('ROLLBACK').catch(() => {});
        if (e instanceof MigrationError) throw e;
        throw new MigrationError(`migration ${file.name} failed: ${(e as Error).message}`);
      }
    }
  } catch (e) {
    if (e instanceof MigrationError) throw e;
    throw new MigrationError(`migration failed: ${(e as Error).message}`);
  } finally {
    client.release();
  }
  return done;
}
