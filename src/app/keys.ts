import { randomBytes } from 'node:crypto';
import { type RawBuilder, sql } from 'kysely';
import type { EncryptedTable } from '../adapters/crypto/encrypted-columns.js';
import type { FieldCipherAdmin } from '../adapters/crypto/field-cipher.js';
import type { KeyProvider, LocalKeyProvider } from '../adapters/crypto/key-provider.js';
import {
  activeKek,
  countDataKeysUnderKek,
  destroyDataKeys,
  getKek,
  insertKek,
  type KekRow,
  kekContext,
  listDataKeys,
  listKeks,
  lockDataKeys,
  lockKek,
  retireDataKeys,
  rewrapDataKey,
  rewrapKek,
  setKekStatus,
  unwrapDataKey,
  wrapDataKey,
} from '../adapters/crypto/key-store.js';
import { type Db, inTransaction, type Tx } from '../adapters/db/index.js';
import { recordAudit } from './audit.js';
import { rewrapSigningKeys, signingKeyMasters } from './audit-chain.js';
import type { RequestMeta } from './context.js';

/**
 * Key administration (`billvault keys …`): the operator acting through the CLI. Every change
 * runs as the application role inside the org it touches (RLS applies) and is audited in the
 * same transaction. Org keys and platform keys (org null) are handled alike.
 */
export interface KeyAdminDeps {
  db: Db;
  keyProvider: KeyProvider;
  cipher: FieldCipherAdmin;
  /** Every table with encrypted columns (src/adapters/crypto/encrypted-tables.ts). */
  tables: readonly EncryptedTable<string>[];
  meta?: RequestMeta;
}

/** A key scope: an org, or the platform (null). */
export type Scope = string | null;

const SYSTEM = { kind: 'system', id: 'system' } as const;

/**
 * Every org id, read as the operator (owner connection) with row security off: a role that
 * cannot see every org must fail here rather than let a master rotation skip the orgs it
 * cannot see (and then drop the master key their KEKs still need).
 */
export async function allOrgIds(db: Db): Promise<string[]> {
  try {
    return await db.transaction().execute(async (tx) => {
      await sql`SET LOCAL row_security = off`.execute(tx);
      const rows = await tx.selectFrom('orgs').select('id').orderBy('id').execute();
      return rows.map((r) => r.id);
    });
  } catch (e) {
    throw new Error(
      `key administration needs a database role that sees every org (superuser or BYPASSRLS): ${(e as Error).message}`,
    );
  }
}

function inScope<T>(db: Db, scope: Scope, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return inTransaction(db, { orgId: scope }, async (tx) => {
    // The platform scope holds platform tables such as users (their TOTP secrets), which the
    // application role sees only in platform transactions.
    if (scope === null) await sql`SELECT set_config('app.platform', 'on', true)`.execute(tx);
    return fn(tx);
  });
}

async function scopes(deps: KeyAdminDeps, orgId?: Scope): Promise<Scope[]> {
  if (orgId !== undefined) return [orgId];
  return [null, ...(await allOrgIds(deps.db))];
}

function audit(tx: Tx, deps: KeyAdminDeps, scope: Scope, action: string, details: Record<string, unknown>) {
  return recordAudit(tx, {
    orgId: scope,
    actor: SYSTEM,
    action,
    target: { type: 'key', id: scope ?? 'platform' },
    outcome: 'success',
    meta: deps.meta ?? {},
    details,
  });
}

/** Makes sure the platform and every org have an active KEK (`keys init`). */
export async function initKeys(deps: KeyAdminDeps): Promise<{ scope: Scope; version: number }[]> {
  const out: { scope: Scope; version: number }[] = [];
  for (const scope of await scopes(deps)) {
    const kek = await inScope(deps.db, scope, async (tx) => {
      const before = (await listKeks(tx, scope)).length;
      const k = await activeKek(tx, deps.keyProvider, scope);
      if (before === 0) await audit(tx, deps, scope, 'key.kek_created', { version: k.version });
      return k;
    });
    out.push({ scope, version: kek.version });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Master key rotation: re-wrap every KEK under the active master key version.

/**
 * Re-wraps every KEK that is not under the provider's active master key (after the operator
 * or `rotateMasterKeyFile` added a new version). Online: only the small KEK rows change.
 * Returns how many KEKs were re-wrapped and the master key ids still referenced.
 */
export async function rewrapUnderActiveMaster(
  deps: KeyAdminDeps,
): Promise<{ rewrapped: number; stillReferenced: string[] }> {
  const active = deps.keyProvider.activeKeyId();
  let rewrapped = 0;
  const referenced = new Set<string>();
  for (const scope of await scopes(deps)) {
    await inScope(deps.db, scope, async (tx) => {
      let here = 0;
      for (const kek of await listKeks(tx, scope)) {
        if (kek.status === 'destroyed' || !kek.wrapped_key) continue;
        if (kek.master_key_id === active) continue;
        const material = await deps.keyProvider.unwrap(
          { masterKeyId: kek.master_key_id, blob: kek.wrapped_key },
          kekContext(scope, kek.version),
        );
        const wrapped = await deps.keyProvider.wrap(material, kekContext(scope, kek.version));
        material.fill(0);
        await rewrapKek(tx, scope, kek.version, wrapped.masterKeyId, wrapped.blob);
        here++;
      }
      // The audit checkpoint signing seeds are platform keys under the master key too.
      const signing = scope === null ? await rewrapSigningKeys(tx, deps.keyProvider) : 0;
      if (here > 0 || signing > 0)
        await audit(tx, deps, scope, 'key.master_rotated', {
          rewrapped: here,
          ...(scope === null ? { signing_keys_rewrapped: signing } : {}),
          master_key_id: active,
        });
      rewrapped += here;
      for (const kek of await listKeks(tx, scope))
        if (kek.status !== 'destroyed' && kek.master_key_id !== active) referenced.add(kek.master_key_id);
      if (scope === null)
        for (const id of (await signingKeyMasters(tx)).keys()) if (id !== active) referenced.add(id);
    });
  }
  deps.cipher.forget();
  return { rewrapped, stillReferenced: [...referenced] };
}

/** Master key ids that KEKs still reference (a retired master may be dropped only when it is absent here). */
export async function referencedMasterKeys(deps: KeyAdminDeps): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const scope of await scopes(deps)) {
    const keks = await inScope(deps.db, scope, (tx) => listKeks(tx, scope));
    for (const k of keks)
      if (k.status !== 'destroyed') counts.set(k.master_key_id, (counts.get(k.master_key_id) ?? 0) + 1);
  }
  // A master key that still wraps an audit signing seed must not be dropped either.
  const signing = await inScope(deps.db, null, (tx) => signingKeyMasters(tx));
  for (const [id, n] of signing) counts.set(id, (counts.get(id) ?? 0) + n);
  return counts;
}

// ---------------------------------------------------------------------------------------------
// KEK rotation: a new KEK version, data keys re-wrapped (no data re-encryption needed).

export interface RotateKekResult {
  scope: Scope;
  newVersion: number;
  rewrapped: number;
  destroyedVersions: number[];
}

/** Rotates the KEK of one org (or the platform): new version active, data keys re-wrapped, old version destroyed. */
export async function rotateKek(deps: KeyAdminDeps, scope: Scope, batchSize = 500): Promise<RotateKekResult> {
  const newVersion = await inScope(deps.db, scope, async (tx) => {
    const current = await activeKek(tx, deps.keyProvider, scope);
    await setKekStatus(tx, scope, current.version, 'decrypt_only');
    const next = Math.max(...(await listKeks(tx, scope)).map((k) => k.version)) + 1;
    await insertKek(tx, deps.keyProvider, scope, next, 'active');
    await audit(tx, deps, scope, 'key.kek_rotated', { from_version: current.version, to_version: next });
    return next;
  });
  const rewrapped = await rewrapDataKeys(deps, scope, batchSize);
  const destroyedVersions = await destroyUnusedKeks(deps, scope);
  deps.cipher.forget();
  return { scope, newVersion, rewrapped, destroyedVersions };
}

/** Re-wraps every data key of a scope that is not under the active KEK, in batches (resumable). */
export async function rewrapDataKeys(deps: KeyAdminDeps, scope: Scope, batchSize = 500): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await inScope(deps.db, scope, async (tx) => {
      const kek = await activeKek(tx, deps.keyProvider, scope);
      const newKek = await deps.cipher.unwrapKek(tx, scope, kek);
      const rows = await listDataKeys(tx, scope, { kekVersionBelow: kek.version, limit: batchSize });
      let done = 0;
      for (const row of rows) {
        if (row.status === 'destroyed' || !row.wrapped_key) continue;
        const oldKekRow = await getKek(tx, scope, row.kek_version);
        if (!oldKekRow)
          throw new Error(`data key ${row.id} refers to a missing KEK version ${row.kek_version}`);
        const material = unwrapDataKey(await deps.cipher.unwrapKek(tx, scope, oldKekRow), scope, row);
        await rewrapDataKey(tx, scope, row.id, kek.version, wrapDataKey(newKek, scope, row, material));
        material.fill(0);
        done++;
      }
      return done;
    });
    total += n;
    if (n === 0) break;
  }
  return total;
}

/** Destroys retired KEK versions that no live data key references. */
export async function destroyUnusedKeks(deps: KeyAdminDeps, scope: Scope): Promise<number[]> {
  return inScope(deps.db, scope, async (tx) => {
    const destroyed: number[] = [];
    for (const kek of await listKeks(tx, scope)) {
      if (kek.status !== 'decrypt_only') continue;
      await lockKek(tx, scope, kek.version);
      if ((await countDataKeysUnderKek(tx, scope, kek.version)) > 0) continue;
      await setKekStatus(tx, scope, kek.version, 'destroyed');
      destroyed.push(kek.version);
    }
    if (destroyed.length > 0) await audit(tx, deps, scope, 'key.kek_destroyed', { versions: destroyed });
    return destroyed;
  });
}

// ---------------------------------------------------------------------------------------------
// Data re-encryption: move every value off retired data keys, then destroy those keys.

export interface ReencryptProgress {
  scope: Scope;
  table: string;
  column: string;
  done: number;
  total: number;
}

export interface ReencryptOptions {
  orgId?: Scope;
  batchSize?: number;
  /** Stops cleanly after the current batch (Ctrl-C); a later run resumes. */
  signal?: AbortSignal;
  onProgress?: (p: ReencryptProgress) => void;
  /** Called once per scope with the number of values to move (for a progress bar). */
  onPlan?: (scope: Scope, total: number) => void;
}

export interface ReencryptResult {
  interrupted: boolean;
  retiredKeys: number;
  reencrypted: number;
  destroyedKeys: number;
  /** Retired keys kept because something outside the registered tables still refers to them. */
  keptKeys: string[];
}

function keyIdOf(column: string): RawBuilder<string> {
  return sql<string>`split_part(${sql.ref(column)}, ':', 2)`;
}

function tablesFor(deps: KeyAdminDeps, scope: Scope) {
  return deps.tables.filter((t) => (scope === null) === (t.spec.orgColumn === null));
}

async function countUnder(
  tx: Tx,
  table: EncryptedTable<string>,
  column: string,
  ids: string[],
): Promise<number> {
  if (ids.length === 0) return 0;
  const r = await sql<{ n: string }>`SELECT count(*)::text AS n FROM ${sql.table(table.spec.table)}
    WHERE ${keyIdOf(column)} = ANY(${ids})`.execute(tx);
  return Number(r.rows[0]?.n ?? 0);
}

/**
 * `keys reencrypt`: retires the scope's current data keys (unless an earlier run is still
 * unfinished, which it then resumes), re-encrypts every registered encrypted value still under
 * a retired key in batches (each batch one transaction, rows locked), then destroys retired
 * keys that nothing references any more. Safe to interrupt and to run again.
 */
export async function reencrypt(deps: KeyAdminDeps, opts: ReencryptOptions = {}): Promise<ReencryptResult> {
  const batchSize = opts.batchSize ?? 200;
  const result: ReencryptResult = {
    interrupted: false,
    retiredKeys: 0,
    reencrypted: 0,
    destroyedKeys: 0,
    keptKeys: [],
  };
  for (const scope of await scopes(deps, opts.orgId)) {
    // 1. Start a pass, unless one is pending (registered values still sit under retired keys):
    //    then resume it. Retired keys kept alive only by unregistered columns do not count.
    const retired = await inScope(deps.db, scope, async (tx) => {
      const pending = (await listDataKeys(tx, scope, { status: 'decrypt_only', purpose: 'data' })).map(
        (k) => k.id,
      );
      let movable = 0;
      for (const t of tablesFor(deps, scope))
        for (const c of t.columns) movable += await countUnder(tx, t, c.column, pending);
      if (movable > 0) return pending;
      const n = await retireDataKeys(tx, scope, { purpose: 'data' });
      if (n > 0) await audit(tx, deps, scope, 'key.data_keys_retired', { count: n });
      result.retiredKeys += n;
      return (await listDataKeys(tx, scope, { status: 'decrypt_only', purpose: 'data' })).map((k) => k.id);
    });
    deps.cipher.forget();
    if (retired.length === 0) continue;

    // 2. Move the values.
    const tables = tablesFor(deps, scope);
    const total = await inScope(deps.db, scope, async (tx) => {
      let n = 0;
      for (const t of tables) for (const c of t.columns) n += await countUnder(tx, t, c.column, retired);
      return n;
    });
    opts.onPlan?.(scope, total);
    let moved = 0;
    for (const t of tables) {
      for (const c of t.columns) {
        for (;;) {
          if (opts.signal?.aborted) {
            result.interrupted = true;
            return result;
          }
          const n = await inScope(deps.db, scope, (tx) =>
            reencryptBatch(deps, tx, scope, t, c, retired, batchSize),
          );
          if (n === 0) break;
          moved += n;
          result.reencrypted += n;
          opts.onProgress?.({ scope, table: t.spec.table, column: c.column, done: moved, total });
        }
      }
    }

    // 3. Destroy what nothing references any more.
    const outcome = await inScope(deps.db, scope, async (tx) => {
      // Lock first (waits for writers still holding these keys), then look for references.
      await lockDataKeys(tx, scope, retired);
      const stillUsed = await referencedKeysEverywhere(deps.db, retired);
      if (!stillUsed) return { destroyed: 0, kept: retired };
      const free = retired.filter((id) => !stillUsed.has(id));
      const n = await destroyDataKeys(tx, scope, free);
      if (n > 0) await audit(tx, deps, scope, 'key.data_keys_destroyed', { count: n, reencrypted: moved });
      return { destroyed: n, kept: [...stillUsed] };
    });
    result.destroyedKeys += outcome.destroyed;
    result.keptKeys.push(...outcome.kept);
    deps.cipher.forget();
  }
  return result;
}

async function reencryptBatch(
  deps: KeyAdminDeps,
  tx: Tx,
  scope: Scope,
  table: EncryptedTable<string>,
  col: EncryptedTable<string>['columns'][number],
  retired: string[],
  batchSize: number,
): Promise<number> {
  const { spec } = table;
  const { column, subject } = col;
  const subjectCol = subject ? sql.ref(subject.column) : sql<null>`NULL`;
  const rows = await sql<{ row_id: string; subject_id: string | null; value: string }>`
    SELECT ${sql.ref(spec.idColumn)} AS row_id, ${subjectCol} AS subject_id, ${sql.ref(column)} AS value
    FROM ${sql.table(spec.table)}
    WHERE ${keyIdOf(column)} = ANY(${retired})
    ORDER BY ${sql.ref(spec.idColumn)}
    LIMIT ${batchSize}
    FOR UPDATE`.execute(tx);
  for (const row of rows.rows) {
    const cipherScope = {
      orgId: scope,
      ...(subject && row.subject_id ? { subject: { type: subject.type, id: row.subject_id } } : {}),
    };
    const field = { table: spec.table, column, rowId: row.row_id };
    const plain = await deps.cipher.decrypt(tx, cipherScope, field, row.value);
    const fresh = await deps.cipher.encrypt(tx, cipherScope, field, plain);
    await sql`UPDATE ${sql.table(spec.table)} SET ${sql.ref(column)} = ${fresh}
      WHERE ${sql.ref(spec.idColumn)} = ${row.row_id}`.execute(tx);
  }
  return rows.rows.length;
}

/**
 * Which of the given keys any text column of any table still refers to: the registered
 * tables, and, as a safety net, every other text column (so a column someone forgot to
 * register keeps its key alive instead of being shredded by accident). Read as the owner
 * connection with row security off, so no policy can hide a row (the users table, say, is
 * visible to the application role only in platform transactions). When the connection may
 * not read every row, the answer is undefined and nothing is destroyed.
 */
async function referencedKeysEverywhere(db: Db, ids: string[]): Promise<Set<string> | undefined> {
  try {
    return await db.transaction().execute(async (tx) => {
      await sql`SET LOCAL row_security = off`.execute(tx);
      return await referencedKeys(tx, ids);
    });
  } catch {
    return undefined;
  }
}

async function referencedKeys(tx: Tx, ids: string[]): Promise<Set<string>> {
  const used = new Set<string>();
  if (ids.length === 0) return used;
  const cols = await sql<{ table_name: string; column_name: string }>`
    SELECT c.table_name, c.column_name FROM information_schema.columns c
    JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
    WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
      AND c.data_type IN ('text', 'character varying')
    ORDER BY c.table_name, c.column_name`.execute(tx);
  for (const { table_name, column_name } of cols.rows) {
    const r = await sql<{ k: string }>`SELECT DISTINCT ${keyIdOf(column_name)} AS k
      FROM ${sql.table(table_name)}
      WHERE ${sql.ref(column_name)} LIKE 'bv1:%' AND ${keyIdOf(column_name)} = ANY(${ids})`.execute(tx);
    for (const row of r.rows) used.add(row.k);
  }
  return used;
}

// ---------------------------------------------------------------------------------------------
// Status.

export interface ScopeStatus {
  scope: Scope;
  keks: { version: number; status: string; master_key_id: string; created_at: string; data_keys: number }[];
  data_keys: { purpose: string; status: string; count: number }[];
  /** Encrypted values in the registered tables, by the status of the key they are under. */
  values: { active: number; decrypt_only: number; destroyed: number; unknown: number };
}

export interface KeyStatus {
  provider: { kind: string; source: string; active_master_key_id: string; master_key_ids: readonly string[] };
  master_keys_referenced: Record<string, number>;
  scopes: ScopeStatus[];
}

/** `keys status`: versions, statuses and how much each one still protects. */
export async function keyStatus(deps: KeyAdminDeps, orgId?: Scope): Promise<KeyStatus> {
  const out: ScopeStatus[] = [];
  const masters: Record<string, number> = {};
  for (const scope of await scopes(deps, orgId)) {
    out.push(
      await inScope(deps.db, scope, async (tx) => {
        const keks = await listKeks(tx, scope);
        const dks = await listDataKeys(tx, scope);
        const statusById = new Map(dks.map((d) => [d.id, d.status]));
        const values = { active: 0, decrypt_only: 0, destroyed: 0, unknown: 0 };
        for (const t of tablesFor(deps, scope)) {
          for (const c of t.columns) {
            const r = await sql<{
              k: string;
              n: string;
            }>`SELECT ${keyIdOf(c.column)} AS k, count(*)::text AS n
              FROM ${sql.table(t.spec.table)} WHERE ${sql.ref(c.column)} IS NOT NULL GROUP BY 1`.execute(tx);
            for (const row of r.rows) {
              const st = statusById.get(row.k) ?? 'unknown';
              values[st] += Number(row.n);
            }
          }
        }
        const grouped = new Map<string, number>();
        for (const d of dks)
          grouped.set(`${d.purpose}|${d.status}`, (grouped.get(`${d.purpose}|${d.status}`) ?? 0) + 1);
        for (const k of keks)
          if (k.status !== 'destroyed') masters[k.master_key_id] = (masters[k.master_key_id] ?? 0) + 1;
        return {
          scope,
          keks: keks.map((k: KekRow) => ({
            version: k.version,
            status: k.status,
            master_key_id: k.master_key_id,
            created_at: k.created_at.toISOString(),
            data_keys: dks.filter((d) => d.kek_version === k.version && d.status !== 'destroyed').length,
          })),
          data_keys: [...grouped].map(([k, count]) => {
            const [purpose, status] = k.split('|') as [string, string];
            return { purpose, status, count };
          }),
          values,
        };
      }),
    );
  }
  return {
    provider: {
      kind: deps.keyProvider.kind,
      source: deps.keyProvider.source,
      active_master_key_id: deps.keyProvider.activeKeyId(),
      master_key_ids: deps.keyProvider.keyIds(),
    },
    master_keys_referenced: masters,
    scopes: out,
  };
}

/** Active KEKs older than `maxAgeDays` (doctor: keys overdue for rotation). */
export async function overdueKeks(
  deps: Pick<KeyAdminDeps, 'db'>,
  now: Date,
  maxAgeDays = 365,
): Promise<{ scope: Scope; version: number; age_days: number }[]> {
  const out: { scope: Scope; version: number; age_days: number }[] = [];
  const all: Scope[] = [null, ...(await allOrgIds(deps.db))];
  for (const scope of all) {
    const keks = await inScope(deps.db, scope, (tx) => listKeks(tx, scope));
    for (const k of keks) {
      if (k.status !== 'active') continue;
      const age = Math.floor((now.getTime() - k.created_at.getTime()) / 86_400_000);
      if (age > maxAgeDays) out.push({ scope, version: k.version, age_days: age });
    }
  }
  return out;
}

/** A new random master key (for `keys rotate --master`). */
export function newMasterKey(): Buffer {
  return randomBytes(32);
}

/**
 * `keys rotate --master` with the local provider: adds a new master key version (persisted
 * first, by `persist`, so a crash cannot lose it), re-wraps every KEK under it, then forgets
 * the old versions that nothing references any more (and persists again).
 */
export async function rotateMaster(
  deps: KeyAdminDeps & { keyProvider: LocalKeyProvider },
  persist: (keys: Buffer[]) => Promise<void>,
  newKey: Buffer = newMasterKey(),
): Promise<{ masterKeyId: string; rewrapped: number; dropped: string[] }> {
  const kp = deps.keyProvider;
  await allOrgIds(deps.db); // fails fast, before anything changes, if some org is out of sight
  const masterKeyId = kp.addKey(newKey);
  await persist(kp.exportKeys());
  const { rewrapped } = await rewrapUnderActiveMaster(deps);
  const referenced = await referencedMasterKeys(deps);
  const dropped: string[] = [];
  for (const id of kp.keyIds()) {
    if (id === masterKeyId || referenced.has(id)) continue;
    kp.dropKey(id);
    dropped.push(id);
  }
  await persist(kp.exportKeys());
  return { masterKeyId, rewrapped, dropped };
}

/**
 * Crypto-shredding (for erasure): destroys every data key of one subject inside the caller's
 * transaction, after waiting for transactions still writing under them. Whatever those keys
 * encrypted becomes unreadable for good. The caller audits the erasure it is part of.
 */
export async function shredSubjectKeys(
  tx: Tx,
  cipher: Pick<FieldCipherAdmin, 'forget'>,
  orgId: Scope,
  subject: { type: 'customer' | 'user' | 'retention'; id: string },
): Promise<number> {
  const t = orgId === null ? sql.table('platform_data_keys') : sql.table('org_data_keys');
  const org = orgId === null ? sql`true` : sql`org_id = ${orgId}`;
  const ids = await sql<{ id: string }>`SELECT id FROM ${t}
    WHERE ${org} AND subject_type = ${subject.type} AND subject_id = ${subject.id} AND status <> 'destroyed'
    ORDER BY id`.execute(tx);
  const n = await destroyDataKeys(
    tx,
    orgId,
    ids.rows.map((r) => r.id),
  );
  cipher.forget();
  return n;
}
