import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Kysely, sql } from 'kysely';
import type pg from 'pg';
import type { Db } from '../db/database.js';
import { MIGRATIONS_DIR, migrate, readMigrations } from '../db/migrate.js';
import type { DB } from '../db/schema.js';
import { ArchiveWriter, BackupFormatError, type BackupSecret, readArchive } from './archive.js';

/**
 * Logical backups: every table of the public schema, read in one REPEATABLE READ snapshot as
 * PostgreSQL's own text form of each value (lossless for every type, identical on every
 * server version), written as NDJSON records into the encrypted archive:
 *
 *   {"type":"header", format_version, created_at, source, schema}
 *   {"type":"table", name, columns:[{name,type}]}  then  {"r":[…]} per row  then
 *   {"type":"table_end", name, rows, sha256}                     …for every table
 *   {"type":"manifest", format_version, created_at, source, schema, tables:[{name,rows,sha256}]}
 *
 * Restore verifies the whole archive first, then writes everything in one transaction into an
 * empty database, verifying again as it goes; any mismatch rolls everything back.
 */
export const BACKUP_FORMAT_VERSION = 1;

export interface MigrationRef {
  version: number;
  name: string;
  checksum: string;
}

export interface TableSummary {
  name: string;
  rows: number;
  sha256: string;
}

export interface Manifest {
  type: 'manifest';
  format_version: number;
  created_at: string;
  source: { kind: string; server_version: string };
  schema: { version: number; migrations: MigrationRef[] };
  tables: TableSummary[];
}

interface Column {
  name: string;
  type: string;
}

type Conn = Kysely<DB>;

const FETCH = 2000;

async function listTables(conn: Conn): Promise<string[]> {
  const tables = await sql<{ name: string }>`
    SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
      AND c.relname <> 'schema_migrations'
    ORDER BY c.relname`.execute(conn);
  const deps = await sql<{ child: string; parent: string }>`
    SELECT ch.relname AS child, pa.relname AS parent FROM pg_constraint k
    JOIN pg_class ch ON ch.oid = k.conrelid JOIN pg_class pa ON pa.oid = k.confrelid
    JOIN pg_namespace n ON n.oid = k.connamespace
    WHERE k.contype = 'f' AND n.nspname = 'public'`.execute(conn);
  // Parents before children, so a restore that cannot defer checks still satisfies foreign keys.
  const names = tables.rows.map((r) => r.name);
  const parents = new Map(names.map((n) => [n, new Set<string>()]));
  for (const d of deps.rows) if (d.child !== d.parent) parents.get(d.child)?.add(d.parent);
  const out: string[] = [];
  const placed = new Set<string>();
  while (out.length < names.length) {
    const ready = names.filter(
      (n) => !placed.has(n) && [...(parents.get(n) ?? [])].every((p) => placed.has(p)),
    );
    const next = ready.length > 0 ? ready : names.filter((n) => !placed.has(n)).slice(0, 1); // a cycle: any order
    for (const n of next) {
      out.push(n);
      placed.add(n);
    }
  }
  return out;
}

async function tableOid(conn: Conn, table: string): Promise<number> {
  const r = await sql<{ oid: number }>`SELECT c.oid::int AS oid FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relname = ${table}`.execute(
    conn,
  );
  if (!r.rows[0]) throw new Error(`table ${table} does not exist`);
  return r.rows[0].oid;
}

async function columnsOf(conn: Conn, table: string): Promise<Column[]> {
  const oid = await tableOid(conn, table);
  const r = await sql<Column>`SELECT attname AS name, format_type(atttypid, atttypmod) AS type
    FROM pg_attribute WHERE attrelid = ${oid} AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
    ORDER BY attnum`.execute(conn);
  return r.rows;
}

async function primaryKey(conn: Conn, table: string): Promise<string[]> {
  const oid = await tableOid(conn, table);
  const r = await sql<{ name: string }>`SELECT a.attname AS name FROM pg_index i
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
    WHERE i.indrelid = ${oid} AND i.indisprimary
    ORDER BY array_position(i.indkey::int2[], a.attnum)`.execute(conn);
  return r.rows.map((x) => x.name);
}

async function appliedMigrations(conn: Conn): Promise<MigrationRef[]> {
  const exists = await sql<{
    ok: boolean;
  }>`SELECT to_regclass('public.schema_migrations') IS NOT NULL AS ok`.execute(conn);
  if (!exists.rows[0]?.ok) return [];
  const r =
    await sql<MigrationRef>`SELECT version, name, checksum FROM schema_migrations ORDER BY version`.execute(
      conn,
    );
  return r.rows;
}

/** Stable text output for every type, whatever the server's defaults. */
async function canonicalSession(conn: Conn): Promise<void> {
  await sql`SET LOCAL TimeZone = 'UTC'`.execute(conn);
  await sql`SET LOCAL DateStyle = 'ISO, YMD'`.execute(conn);
  await sql`SET LOCAL IntervalStyle = 'postgres'`.execute(conn);
  await sql`SET LOCAL extra_float_digits = 3`.execute(conn);
  await sql`SET LOCAL bytea_output = 'hex'`.execute(conn);
}

export interface BackupResult {
  manifest: Manifest;
  bytesWritten: number;
  plaintextBytes: number;
}

/**
 * Dumps the database into an encrypted archive at `file` (written to a temporary file and
 * renamed when complete). Reads with row security off, so a role that cannot see every row
 * fails loudly instead of producing a partial backup.
 */
export async function createBackup(
  db: Db,
  file: string,
  secret: BackupSecret,
  opts: { kind: string; now?: Date; onTable?: (name: string, rows: number) => void } = { kind: 'unknown' },
): Promise<BackupResult> {
  const writer = await ArchiveWriter.create(file, secret);
  try {
    const manifest = await db.connection().execute(async (conn) => {
      await sql`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`.execute(conn);
      try {
        await canonicalSession(conn);
        try {
          await sql`SET LOCAL row_security = off`.execute(conn);
        } catch {
          throw new Error('backup needs a PostgreSQL role that may read every row (superuser or BYPASSRLS)');
        }
        const version = await sql<{ v: string }>`SELECT current_setting('server_version') AS v`.execute(conn);
        const migrations = await appliedMigrations(conn);
        const header = {
          type: 'header',
          format_version: BACKUP_FORMAT_VERSION,
          created_at: (opts.now ?? new Date()).toISOString(),
          source: { kind: opts.kind, server_version: version.rows[0]?.v ?? 'unknown' },
          schema: { version: migrations.length, migrations },
        };
        await writer.write(`${JSON.stringify(header)}\n`);
        const tables: TableSummary[] = [];
        for (const table of await listTables(conn)) {
          const columns = await columnsOf(conn, table);
          const pk = await primaryKey(conn, table);
          await writer.write(`${JSON.stringify({ type: 'table', name: table, columns })}\n`);
          const hash = createHash('sha256');
          let rows = 0;
          const order =
            pk.length > 0
              ? sql.join(pk.map((c) => sql.ref(c)))
              : sql.join(columns.map((c) => sql`${sql.ref(c.name)}::text`));
          const select = sql.join(
            columns.map((c, i) => sql`${sql.ref(c.name)}::text AS ${sql.ref(`c${i}`)}`),
          );
          await sql`DECLARE bv_dump NO SCROLL CURSOR FOR SELECT ${select} FROM ${sql.table(table)} ORDER BY ${order}`.execute(
            conn,
          );
          for (;;) {
            const batch = await sql<
              Record<string, string | null>
            >`FETCH ${sql.raw(String(FETCH))} FROM bv_dump`.execute(conn);
            if (batch.rows.length === 0) break;
            let text = '';
            for (const row of batch.rows) {
              const line = `${JSON.stringify({ r: columns.map((_c, i) => row[`c${i}`] ?? null) })}\n`;
              hash.update(line);
              text += line;
            }
            rows += batch.rows.length;
            await writer.write(text);
          }
          await sql`CLOSE bv_dump`.execute(conn);
          const summary = { name: table, rows, sha256: hash.digest('hex') };
          tables.push(summary);
          await writer.write(`${JSON.stringify({ type: 'table_end', ...summary })}\n`);
          opts.onTable?.(table, rows);
        }
        const manifest: Manifest = {
          type: 'manifest',
          format_version: BACKUP_FORMAT_VERSION,
          created_at: header.created_at,
          source: header.source,
          schema: header.schema,
          tables,
        };
        await writer.write(`${JSON.stringify(manifest)}\n`);
        await sql`COMMIT`.execute(conn);
        return manifest;
      } catch (e) {
        await sql`ROLLBACK`.execute(conn).catch(() => {});
        throw e;
      }
    });
    const plaintextBytes = writer.bytesIn;
    const bytesWritten = await writer.finish();
    return { manifest, bytesWritten, plaintextBytes };
  } catch (e) {
    await writer.abort();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Reading: one parser for verify and restore.

interface TableSink {
  begin(name: string, columns: Column[]): Promise<void>;
  rows(name: string, rows: (string | null)[][]): Promise<void>;
  end(name: string, rows: number): Promise<void>;
}

type AnyRecord = { type?: string; r?: unknown } & Record<string, unknown>;

function fail(message: string): never {
  throw new BackupFormatError(message);
}

/**
 * Decrypts and checks the whole archive: structure, row arity, per-table row counts and
 * SHA-256, and the manifest against what was actually read. Feeds rows to `sink` if given.
 */
export async function scanBackup(
  file: string,
  secret: BackupSecret,
  sink?: TableSink,
  onBytes?: (read: number, total: number) => void,
): Promise<Manifest> {
  let header: AnyRecord | undefined;
  let manifest: Manifest | undefined;
  let current:
    | { name: string; columns: Column[]; rows: number; hash: ReturnType<typeof createHash> }
    | undefined;
  let pending: (string | null)[][] = [];
  const seen: TableSummary[] = [];
  let rest = '';

  const flush = async () => {
    if (current && pending.length > 0 && sink) await sink.rows(current.name, pending);
    pending = [];
  };

  const handle = async (line: string) => {
    if (manifest) fail('the backup has data after its manifest');
    let rec: AnyRecord;
    try {
      rec = JSON.parse(line) as AnyRecord;
    } catch {
      fail('the backup holds a damaged record');
    }
    if (!header) {
      if (rec.type !== 'header') fail('the backup does not start with its header');
      if (rec.format_version !== BACKUP_FORMAT_VERSION)
        fail(`unsupported backup format version ${String(rec.format_version)}`);
      header = rec;
      return;
    }
    if (Array.isArray(rec.r)) {
      if (!current) fail('the backup holds a row outside a table');
      if (rec.r.length !== current.columns.length || !rec.r.every((v) => v === null || typeof v === 'string'))
        fail(`a row of ${current.name} has the wrong shape`);
      current.hash.update(`${line}\n`);
      current.rows++;
      pending.push(rec.r as (string | null)[]);
      if (pending.length >= 1000) await flush();
      return;
    }
    switch (rec.type) {
      case 'table': {
        if (current) fail('the backup starts a table inside another');
        const name = String(rec.name);
        const columns = rec.columns as Column[];
        if (!Array.isArray(columns) || columns.length === 0) fail(`table ${name} has no columns`);
        current = { name, columns, rows: 0, hash: createHash('sha256') };
        await sink?.begin(name, columns);
        return;
      }
      case 'table_end': {
        if (!current || rec.name !== current.name) fail('the backup ends a table it did not start');
        await flush();
        const sha = current.hash.digest('hex');
        if (rec.rows !== current.rows)
          fail(`table ${current.name}: ${current.rows} rows read, ${String(rec.rows)} recorded`);
        if (rec.sha256 !== sha) fail(`table ${current.name}: checksum mismatch`);
        await sink?.end(current.name, current.rows);
        seen.push({ name: current.name, rows: current.rows, sha256: sha });
        current = undefined;
        return;
      }
      case 'manifest': {
        if (current) fail('the backup ends inside a table');
        const m = rec as unknown as Manifest;
        if (JSON.stringify(m.tables) !== JSON.stringify(seen))
          fail('the manifest does not match the tables in the backup');
        if (JSON.stringify(m.schema) !== JSON.stringify(header.schema))
          fail('the manifest schema does not match the header');
        manifest = m;
        return;
      }
      default:
        fail('the backup holds an unknown record');
    }
  };

  for await (const chunk of readArchive(file, secret, onBytes)) {
    const text = rest + chunk.toString('utf8');
    const lines = text.split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) if (line) await handle(line);
  }
  if (rest) await handle(rest);
  if (!manifest) fail('the backup has no manifest (incomplete)');
  return manifest;
}

/** Checks an archive without restoring it. */
export function verifyBackup(
  file: string,
  secret: BackupSecret,
  onBytes?: (read: number, total: number) => void,
) {
  return scanBackup(file, secret, undefined, onBytes);
}

// ---------------------------------------------------------------------------------------------
// Restore.

/** The target is not empty, or its schema does not fit the backup: nothing was written. */
export class RestoreRefusedError extends Error {
  override name = 'RestoreRefusedError';
}

function sameMigrations(a: MigrationRef[], b: MigrationRef[]): boolean {
  return (
    a.length === b.length &&
    a.every((m, i) => m.version === b[i]?.version && m.name === b[i]?.name && m.checksum === b[i]?.checksum)
  );
}

/** Brings an empty target to exactly the backup's schema version (a new database gets the backup's migrations). */
async function prepareSchema(
  db: Db,
  pool: pg.Pool,
  manifest: Manifest,
  migrationsDir: string,
): Promise<void> {
  const files = readMigrations(migrationsDir);
  const wanted = manifest.schema.migrations;
  for (const m of wanted) {
    const f = files.find((x) => x.version === m.version);
    if (!f || f.name !== m.name || f.checksum !== m.checksum)
      throw new RestoreRefusedError(
        `the backup's schema (${m.name}) is not one this Billvault knows: restore it with the Billvault version that made it`,
      );
  }
  const applied = await db.connection().execute((c) => appliedMigrations(c));
  if (applied.length === 0) {
    const stray = await sql<{ n: string }>`SELECT count(*)::text AS n FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')`.execute(db);
    if (Number(stray.rows[0]?.n) > 0)
      throw new RestoreRefusedError(
        'the target database is not empty (it has tables but no Billvault schema)',
      );
    const dir = mkdtempSync(path.join(tmpdir(), 'bv-restore-mig-'));
    try {
      for (const m of wanted) copyFileSync(path.join(migrationsDir, m.name), path.join(dir, m.name));
      await migrate(pool, dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    return;
  }
  if (!sameMigrations(applied, wanted))
    throw new RestoreRefusedError(
      `the target database has schema version ${applied.length}, the backup ${wanted.length}: restore into a new, empty database`,
    );
}

export interface RestoreResult {
  manifest: Manifest;
  rowsWritten: number;
  triggersDisabled: boolean;
}

/**
 * Restores an archive into an empty database: verifies the whole archive first (nothing is
 * written if it fails), prepares the schema, then inserts every row in one transaction while
 * re-verifying, checks the row counts, and commits. Any error rolls back all the data.
 */
export async function restoreBackup(
  db: Db,
  pool: pg.Pool,
  file: string,
  secret: BackupSecret,
  opts: { migrationsDir?: string; onTable?: (name: string, rows: number) => void } = {},
): Promise<RestoreResult> {
  const manifest = await verifyBackup(file, secret);
  await prepareSchema(db, pool, manifest, opts.migrationsDir ?? MIGRATIONS_DIR);
  let rowsWritten = 0;
  let triggersDisabled = false;
  await db.connection().execute(async (conn) => {
    await sql`BEGIN`.execute(conn);
    try {
      await canonicalSession(conn);
      try {
        await sql`SET LOCAL row_security = off`.execute(conn);
      } catch {
        throw new RestoreRefusedError(
          'restore needs a PostgreSQL role that may write every row (superuser or BYPASSRLS)',
        );
      }
      // Replica mode skips triggers (e.g. hash-chain triggers must not re-stamp restored rows).
      await sql`SAVEPOINT bv_replica`.execute(conn);
      try {
        await sql`SET LOCAL session_replication_role = replica`.execute(conn);
        triggersDisabled = true;
      } catch {
        await sql`ROLLBACK TO SAVEPOINT bv_replica`.execute(conn);
      }
      for (const t of manifest.tables) {
        await tableOid(conn, t.name).catch(() => {
          throw new RestoreRefusedError(`the target has no table ${t.name}`);
        });
        const any = await sql<{
          ok: boolean;
        }>`SELECT EXISTS (SELECT 1 FROM ${sql.table(t.name)}) AS ok`.execute(conn);
        if (any.rows[0]?.ok)
          throw new RestoreRefusedError(`the target database is not empty (${t.name} has rows)`);
      }
      let columns: string[] = [];
      await scanBackup(file, secret, {
        async begin(name, cols) {
          const target = (await columnsOf(conn, name)).map((c) => c.name);
          if (JSON.stringify(target) !== JSON.stringify(cols.map((c) => c.name)))
            throw new RestoreRefusedError(`table ${name} has other columns in the target than in the backup`);
          columns = target;
        },
        async rows(name, rows) {
          const per = Math.max(1, Math.min(1000, Math.floor(30_000 / columns.length)));
          for (let i = 0; i < rows.length; i += per) {
            const slice = rows.slice(i, i + per);
            await sql`INSERT INTO ${sql.table(name)} (${sql.join(columns.map((c) => sql.ref(c)))})
              OVERRIDING SYSTEM VALUE VALUES ${sql.join(slice.map((r) => sql`(${sql.join(r)})`))}`.execute(
              conn,
            );
          }
          rowsWritten += rows.length;
        },
        async end(name, rows) {
          const n = await sql<{ n: string }>`SELECT count(*)::text AS n FROM ${sql.table(name)}`.execute(
            conn,
          );
          if (Number(n.rows[0]?.n) !== rows)
            throw new BackupFormatError(`table ${name}: row count differs after restore`);
          await resetSequences(conn, name);
          opts.onTable?.(name, rows);
        },
      });
      await sql`COMMIT`.execute(conn);
    } catch (e) {
      await sql`ROLLBACK`.execute(conn).catch(() => {});
      throw e;
    }
  });
  return { manifest, rowsWritten, triggersDisabled };
}

/** Moves serial and identity sequences past the restored values. */
async function resetSequences(conn: Conn, table: string): Promise<void> {
  const seqs = await sql<{ col: string; seq: string }>`
    SELECT a.attname AS col, pg_get_serial_sequence(quote_ident(c.relname), a.attname) AS seq
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relname = ${table} AND a.attnum > 0 AND NOT a.attisdropped
      AND pg_get_serial_sequence(quote_ident(c.relname), a.attname) IS NOT NULL`.execute(conn);
  for (const s of seqs.rows) {
    await sql`SELECT setval(${s.seq}::regclass, coalesce((SELECT max(${sql.ref(s.col)}) FROM ${sql.table(table)}), 1),
      (SELECT count(*) > 0 FROM ${sql.table(table)}))`.execute(conn);
  }
}
