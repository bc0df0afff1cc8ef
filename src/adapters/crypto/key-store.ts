import { randomBytes } from 'node:crypto';
import { type RawBuilder, sql } from 'kysely';
import { newId } from '../../domain/ids.js';
import { PREPARED } from '../db/database.js';
import type { KeyStatus } from '../db/schema.js';
import type { Tx } from '../db/tx.js';
import { KEY_BYTES, open, seal } from './aead.js';
import type { KeyProvider } from './key-provider.js';

/**
 * Wrapped keys in the database. Org keys live in RLS-protected org tables (the caller's
 * transaction must be scoped to that org); platform keys (orgId null) in the platform tables.
 * One code path serves both: the table names are constants chosen here, never input.
 */

export type KeyPurpose = 'data' | 'blind_index';

export interface KeySubject {
  type: string;
  id: string;
}

export interface KekRow {
  version: number;
  status: KeyStatus;
  master_key_id: string;
  wrapped_key: Buffer | null;
  created_at: Date;
}

export interface DataKeyRow {
  id: string;
  purpose: KeyPurpose;
  subject_type: string;
  subject_id: string;
  kek_version: number;
  status: KeyStatus;
  wrapped_key: Buffer | null;
  usage_count: bigint;
  created_at: Date;
}

/** A key that was destroyed (crypto-shredded): what it encrypted is gone for good. */
export class KeyDestroyedError extends Error {
  override name = 'KeyDestroyedError';
  constructor() {
    super('the data key for this value was destroyed; the value is no longer recoverable');
  }
}

const tables = (orgId: string | null) =>
  orgId === null
    ? { kek: sql.table('platform_key_versions'), dk: sql.table('platform_data_keys') }
    : { kek: sql.table('org_key_versions'), dk: sql.table('org_data_keys') };

const orgFilter = (orgId: string | null): RawBuilder<unknown> =>
  orgId === null ? sql`true` : sql`org_id = ${orgId}`;

/** The subject a scope's data key belongs to: the subject, else the org (or the platform) itself. */
export function subjectOf(orgId: string | null, subject?: KeySubject): KeySubject {
  if (subject) return subject;
  return orgId === null ? { type: 'platform', id: 'platform' } : { type: 'org', id: orgId };
}

/** What a KEK's wrap is bound to. */
export function kekContext(orgId: string | null, version: number): string {
  return `kek|${orgId ?? 'platform'}|v${version}`;
}

function dataKeyAad(
  orgId: string | null,
  row: Pick<DataKeyRow, 'id' | 'purpose' | 'subject_type' | 'subject_id'>,
) {
  return Buffer.from(
    JSON.stringify(['billvault/dk/v1', orgId ?? '', row.id, row.purpose, row.subject_type, row.subject_id]),
  );
}

/** Wraps a data key under a KEK. */
export function wrapDataKey(
  kek: Buffer,
  orgId: string | null,
  row: Pick<DataKeyRow, 'id' | 'purpose' | 'subject_type' | 'subject_id'>,
  key: Uint8Array,
): Buffer {
  return seal(kek, key, dataKeyAad(orgId, row));
}

/** Unwraps a data key with its KEK. */
export function unwrapDataKey(
  kek: Buffer,
  orgId: string | null,
  row: Pick<DataKeyRow, 'id' | 'purpose' | 'subject_type' | 'subject_id' | 'wrapped_key'>,
): Buffer {
  if (!row.wrapped_key) throw new KeyDestroyedError();
  return open(kek, row.wrapped_key, dataKeyAad(orgId, row));
}

const KEK_COLUMNS = sql`version, status, master_key_id, wrapped_key, created_at`;
const DK_COLUMNS = sql`id, purpose, subject_type, subject_id, kek_version, status, wrapped_key, usage_count, created_at`;

export async function listKeks(tx: Tx, orgId: string | null): Promise<KekRow[]> {
  const t = tables(orgId);
  const r =
    await sql<KekRow>`SELECT ${KEK_COLUMNS} FROM ${t.kek} WHERE ${orgFilter(orgId)} ORDER BY version`.execute(
      tx,
    );
  return r.rows;
}

export async function getKek(tx: Tx, orgId: string | null, version: number): Promise<KekRow | undefined> {
  const t = tables(orgId);
  const r = await sql<KekRow>`${PREPARED} SELECT ${KEK_COLUMNS} FROM ${t.kek}
    WHERE ${orgFilter(orgId)} AND version = ${version}`.execute(tx);
  return r.rows[0];
}

/** Inserts a new KEK version (fresh key material wrapped under the active master key). */
export async function insertKek(
  tx: Tx,
  kp: KeyProvider,
  orgId: string | null,
  version: number,
  status: KeyStatus,
): Promise<boolean> {
  const t = tables(orgId);
  kekInTx.get(tx)?.delete(orgId ?? '-');
  const material = randomBytes(KEY_BYTES);
  const wrapped = await kp.wrap(material, kekContext(orgId, version));
  material.fill(0);
  const r =
    orgId === null
      ? await sql`INSERT INTO ${t.kek} (version, status, master_key_id, wrapped_key)
          VALUES (${version}, ${status}, ${wrapped.masterKeyId}, ${wrapped.blob}) ON CONFLICT DO NOTHING`.execute(
          tx,
        )
      : await sql`INSERT INTO ${t.kek} (org_id, version, status, master_key_id, wrapped_key)
          VALUES (${orgId}, ${version}, ${status}, ${wrapped.masterKeyId}, ${wrapped.blob}) ON CONFLICT DO NOTHING`.execute(
          tx,
        );
  return (r.numAffectedRows ?? 0n) > 0n;
}

/** The active KEK of an org (or the platform), created as the next version when there is none. */
// The active KEK each transaction already holds (key-share-locked), so a batch of new subjects
// in one transaction looks it up once. Changing a KEK's status in a transaction forgets it.
const kekInTx = new WeakMap<Tx, Map<string, KekRow>>();

export async function activeKek(tx: Tx, kp: KeyProvider, orgId: string | null): Promise<KekRow> {
  const t = tables(orgId);
  const memo = kekInTx.get(tx)?.get(orgId ?? '-');
  if (memo) return memo;
  for (let attempt = 0; attempt < 3; attempt++) {
    // KEY SHARE: a KEK destruction (FOR UPDATE) waits until a data key wrapped under it here is committed and counted.
    const r = await sql<KekRow>`${PREPARED} SELECT ${KEK_COLUMNS} FROM ${t.kek}
      WHERE ${orgFilter(orgId)} AND status = 'active' FOR KEY SHARE`.execute(tx);
    if (r.rows[0]) {
      let m = kekInTx.get(tx);
      if (!m) {
        m = new Map();
        kekInTx.set(tx, m);
      }
      m.set(orgId ?? '-', r.rows[0]);
      return r.rows[0];
    }
    const max = await sql<{
      v: number | null;
    }>`SELECT max(version) AS v FROM ${t.kek} WHERE ${orgFilter(orgId)}`.execute(tx);
    await insertKek(tx, kp, orgId, (max.rows[0]?.v ?? 0) + 1, 'active');
  }
  throw new Error('could not establish an active key-encryption key');
}

export async function getDataKey(tx: Tx, orgId: string | null, id: string): Promise<DataKeyRow | undefined> {
  const t = tables(orgId);
  const r = await sql<DataKeyRow>`SELECT ${DK_COLUMNS} FROM ${t.dk}
    WHERE ${orgFilter(orgId)} AND id = ${id}`.execute(tx);
  return r.rows[0];
}

/**
 * The active data key of a subject, locked for the rest of the transaction so that a
 * concurrent retirement waits until this transaction's ciphertexts are committed (and so are
 * seen by the re-encryption that follows). Created when the subject has none. With an
 * `initialUsage`, that many encryptions are reserved on it (created or found) in the same step.
 */
export async function activeDataKey(
  tx: Tx,
  kp: KeyProvider,
  orgId: string | null,
  purpose: KeyPurpose,
  subject: KeySubject,
  unwrapKek: (row: KekRow) => Promise<Buffer>,
  initialUsage: number,
): Promise<{ row: DataKeyRow; created: boolean; material?: Buffer }> {
  const t = tables(orgId);
  const usage = BigInt(purpose === 'data' ? initialUsage : 0);
  const tryCreate = async (): Promise<{ row: DataKeyRow; created: true; material: Buffer } | undefined> => {
    const kek = await activeKek(tx, kp, orgId);
    const kekKey = await unwrapKek(kek);
    const row = { id: newId('data_key'), purpose, subject_type: subject.type, subject_id: subject.id };
    const material = randomBytes(KEY_BYTES);
    const wrapped = wrapDataKey(kekKey, orgId, row, material);
    // ON CONFLICT DO NOTHING: the subject already has an active key (one per subject, unique index).
    const inserted =
      orgId === null
        ? await sql`INSERT INTO ${t.dk} (id, purpose, subject_type, subject_id, kek_version, status, wrapped_key, usage_count)
            VALUES (${row.id}, ${purpose}, ${subject.type}, ${subject.id}, ${kek.version}, 'active', ${wrapped}, ${usage})
            ON CONFLICT DO NOTHING`.execute(tx)
        : await sql`INSERT INTO ${t.dk} (org_id, id, purpose, subject_type, subject_id, kek_version, status, wrapped_key, usage_count)
            VALUES (${orgId}, ${row.id}, ${purpose}, ${subject.type}, ${subject.id}, ${kek.version}, 'active', ${wrapped}, ${usage})
            ON CONFLICT DO NOTHING`.execute(tx);
    if ((inserted.numAffectedRows ?? 0n) === 0n) {
      material.fill(0);
      return undefined;
    }
    // Ours: hand back the key material so the caller need not read and unwrap it again.
    const created: DataKeyRow = {
      ...row,
      kek_version: kek.version,
      status: 'active',
      wrapped_key: wrapped,
      usage_count: usage,
      created_at: new Date(),
    };
    return { row: created, created: true, material };
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    // Encrypting for a subject this process has no key for usually means a new subject (a
    // customer being created): try to create its key first, one statement instead of two.
    if (usage > 0n) {
      const made = await tryCreate();
      if (made) return made;
    }
    // With a reservation to make, take it right away: the UPDATE both checks that the key is
    // active and locks it. Taking FOR SHARE first and upgrading to an UPDATE later would
    // deadlock two transactions that both share-locked the key.
    const r =
      usage > 0n
        ? await sql<DataKeyRow>`UPDATE ${t.dk} SET usage_count = usage_count + ${usage}
            WHERE ${orgFilter(orgId)} AND purpose = ${purpose} AND subject_type = ${subject.type}
              AND subject_id = ${subject.id} AND status = 'active' RETURNING ${DK_COLUMNS}`.execute(tx)
        : await sql<DataKeyRow>`SELECT ${DK_COLUMNS} FROM ${t.dk}
            WHERE ${orgFilter(orgId)} AND purpose = ${purpose} AND subject_type = ${subject.type}
              AND subject_id = ${subject.id} AND status = 'active' FOR KEY SHARE`.execute(tx);
    if (r.rows[0]) return { row: r.rows[0], created: false };
    if (usage === 0n) {
      const made = await tryCreate();
      if (made) return made;
    }
  }
  throw new Error('could not establish an active data key');
}

/** True (and key-share-locked) when the data key is still the active one. */
export async function lockIfActive(tx: Tx, orgId: string | null, id: string): Promise<boolean> {
  const t = tables(orgId);
  const r = await sql<{ status: KeyStatus }>`${PREPARED} SELECT status FROM ${t.dk}
    WHERE ${orgFilter(orgId)} AND id = ${id} FOR KEY SHARE`.execute(tx);
  return r.rows[0]?.status === 'active';
}

/** Reserves `n` more encryptions under an active key; returns the new total, or undefined if it is no longer active. */
export async function reserveUsage(
  tx: Tx,
  orgId: string | null,
  id: string,
  n: number,
): Promise<bigint | undefined> {
  const t = tables(orgId);
  const r = await sql<{ usage_count: bigint }>`UPDATE ${t.dk} SET usage_count = usage_count + ${BigInt(n)}
    WHERE ${orgFilter(orgId)} AND id = ${id} AND status = 'active' RETURNING usage_count`.execute(tx);
  return r.rows[0]?.usage_count;
}

/** Makes data keys decrypt-only (their subjects get a fresh active key on next use). */
export async function retireDataKeys(
  tx: Tx,
  orgId: string | null,
  filter: { ids?: string[]; purpose?: KeyPurpose },
  opts: { waitForWriters?: boolean } = { waitForWriters: true },
): Promise<number> {
  const t = tables(orgId);
  const ids = filter.ids ? sql`AND id = ANY(${filter.ids})` : sql``;
  const purpose = filter.purpose ? sql`AND purpose = ${filter.purpose}` : sql``;
  // FOR UPDATE waits for every transaction still encrypting under these keys (they hold
  // FOR KEY SHARE), so their ciphertexts are committed, and visible, before retirement.
  if (opts.waitForWriters !== false)
    await sql`SELECT id FROM ${t.dk} WHERE ${orgFilter(orgId)} AND status = 'active' ${ids} ${purpose}
      ORDER BY id FOR UPDATE`.execute(tx);
  const r = await sql`UPDATE ${t.dk} SET status = 'decrypt_only', retired_at = now()
    WHERE ${orgFilter(orgId)} AND status = 'active' ${ids} ${purpose}`.execute(tx);
  return Number(r.numAffectedRows ?? 0n);
}

export async function listDataKeys(
  tx: Tx,
  orgId: string | null,
  filter: { status?: KeyStatus; kekVersionBelow?: number; limit?: number; purpose?: KeyPurpose } = {},
): Promise<DataKeyRow[]> {
  const t = tables(orgId);
  const status = filter.status ? sql`AND status = ${filter.status}` : sql``;
  const below =
    filter.kekVersionBelow !== undefined
      ? sql`AND kek_version < ${filter.kekVersionBelow} AND status <> 'destroyed'`
      : sql``;
  const purpose = filter.purpose ? sql`AND purpose = ${filter.purpose}` : sql``;
  const limit = filter.limit !== undefined ? sql`LIMIT ${filter.limit}` : sql``;
  const r = await sql<DataKeyRow>`SELECT ${DK_COLUMNS} FROM ${t.dk}
    WHERE ${orgFilter(orgId)} ${status} ${below} ${purpose} ORDER BY id ${limit}`.execute(tx);
  return r.rows;
}

/** Replaces a data key's wrapping (KEK rotation); the key material itself is unchanged. */
export async function rewrapDataKey(
  tx: Tx,
  orgId: string | null,
  id: string,
  kekVersion: number,
  wrapped: Buffer,
): Promise<void> {
  const t = tables(orgId);
  await sql`UPDATE ${t.dk} SET kek_version = ${kekVersion}, wrapped_key = ${wrapped}
    WHERE ${orgFilter(orgId)} AND id = ${id} AND status <> 'destroyed'`.execute(tx);
}

/** Locks data keys against concurrent use (waits for transactions still encrypting under them). */
export async function lockDataKeys(tx: Tx, orgId: string | null, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  const t = tables(orgId);
  await sql`SELECT id FROM ${t.dk} WHERE ${orgFilter(orgId)} AND id = ANY(${ids}) ORDER BY id FOR UPDATE`.execute(
    tx,
  );
}

/** Destroys data keys: the wrapped bytes are erased, the row stays for the record. */
export async function destroyDataKeys(tx: Tx, orgId: string | null, ids: string[]): Promise<number> {
  if (ids.length === 0) return 0;
  await lockDataKeys(tx, orgId, ids);
  const t = tables(orgId);
  const r = await sql`UPDATE ${t.dk} SET status = 'destroyed', wrapped_key = NULL, destroyed_at = now()
    WHERE ${orgFilter(orgId)} AND id = ANY(${ids}) AND status <> 'destroyed'`.execute(tx);
  return Number(r.numAffectedRows ?? 0n);
}

export async function setKekStatus(
  tx: Tx,
  orgId: string | null,
  version: number,
  status: 'decrypt_only' | 'destroyed',
): Promise<void> {
  const t = tables(orgId);
  kekInTx.get(tx)?.delete(orgId ?? '-');
  if (status === 'destroyed') {
    await sql`UPDATE ${t.kek} SET status = 'destroyed', wrapped_key = NULL, destroyed_at = now()
      WHERE ${orgFilter(orgId)} AND version = ${version}`.execute(tx);
  } else {
    await sql`UPDATE ${t.kek} SET status = 'decrypt_only', retired_at = now()
      WHERE ${orgFilter(orgId)} AND version = ${version} AND status = 'active'`.execute(tx);
  }
}

/** Re-wraps a KEK under another master key version (master rotation); the KEK itself is unchanged. */
export async function rewrapKek(
  tx: Tx,
  orgId: string | null,
  version: number,
  masterKeyId: string,
  wrapped: Buffer,
): Promise<void> {
  const t = tables(orgId);
  await sql`UPDATE ${t.kek} SET master_key_id = ${masterKeyId}, wrapped_key = ${wrapped}
    WHERE ${orgFilter(orgId)} AND version = ${version} AND status <> 'destroyed'`.execute(tx);
}

/** Locks a KEK version against concurrent wrapping (waits for writers holding it). */
export async function lockKek(tx: Tx, orgId: string | null, version: number): Promise<void> {
  const t = tables(orgId);
  await sql`SELECT version FROM ${t.kek} WHERE ${orgFilter(orgId)} AND version = ${version} FOR UPDATE`.execute(
    tx,
  );
}

/** Number of data keys (any status but destroyed) still wrapped under a KEK version. */
export async function countDataKeysUnderKek(tx: Tx, orgId: string | null, version: number): Promise<number> {
  const t = tables(orgId);
  const r = await sql<{ n: string }>`SELECT count(*)::text AS n FROM ${t.dk}
    WHERE ${orgFilter(orgId)} AND kek_version = ${version} AND status <> 'destroyed'`.execute(tx);
  return Number(r.rows[0]?.n ?? 0);
}
