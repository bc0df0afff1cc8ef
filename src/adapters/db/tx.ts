import { type IsolationLevel, sql, type Transaction } from 'kysely';
import { type Db, isStalePreparedPlan, SCOPE } from './database.js';
import type { DB } from './schema.js';

export type Tx = Transaction<DB>;
/** Repository functions take this as their first argument: a pool handle or a transaction. */
export type DbOrTx = Db | Tx;

/** The non-superuser role every business transaction runs as, so Row-Level Security applies. */
export const APP_ROLE = 'billvault_app';

/**
 * The org each open transaction was scoped to (by inTransaction, inPlatform or setTxOrg), so code
 * that must check the scope (the field cipher) need not ask the database for it again.
 */
const scopedOrgs = new WeakMap<object, string>();

/** The `app.org_id` this transaction set through the helpers here ('' for none); undefined if unknown. */
export function txOrgScope(tx: Tx): string | undefined {
  return scopedOrgs.get(tx);
}

/** Records the org a transaction has just been scoped to (call right after its set_config). */
export function noteTxOrgScope(tx: DbOrTx, orgId: string | null): void {
  scopedOrgs.set(tx, orgId ?? '');
}

/**
 * SQLSTATE of billvault_data_key_guard (migration 0018): a data key retired under a statement that
 * was to write a ciphertext made with it; the retry takes a fresh key.
 */
export const KEY_GUARD_FAILED = 'BVK01';

// serialization_failure, deadlock_detected, and a failed data-key guard
const RETRYABLE = new Set(['40001', '40P01', KEY_GUARD_FAILED]);

export interface TxOptions {
  /** The org whose rows this transaction may see; unset means no org rows are visible. */
  orgId?: string | null;
  isolation?: IsolationLevel;
  /** Attempts in total on serialization failure or deadlock. */
  attempts?: number;
}

/** The SQLSTATE of a database error (undefined for anything else). */
export function sqlState(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e
    ? String((e as { code: unknown }).code)
    : undefined;
}

/**
 * True for errors the database asks the client to retry (SQLSTATE 40001, 40P01, BVK01), and for a
 * prepared statement outdated by a schema change (prepared again on the next attempt).
 */
export function isRetryable(e: unknown): boolean {
  const code = sqlState(e);
  return (code !== undefined && RETRYABLE.has(code)) || isStalePreparedPlan(e);
}

/**
 * Makes the open transaction run as the application role, scoped to one org ('' for none). As a
 * transaction's first statement it travels with BEGIN (one round trip for both).
 */
export async function scopeTransaction(tx: DbOrTx, orgId: string | null): Promise<void> {
  await sql`${SCOPE} SELECT set_config('role', ${APP_ROLE}, true), set_config('app.org_id', ${orgId ?? ''}, true)`.execute(
    tx,
  );
  noteTxOrgScope(tx, orgId);
}

/**
 * Runs fn in a transaction as the application role, scoped to one org (`SET LOCAL ROLE`,
 * `app.org_id`), retrying the whole function with jittered backoff on serialization
 * failures and deadlocks. fn must have no outside side effects: it may run more than once.
 */
export async function inTransaction<T>(db: Db, opts: TxOptions, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const attempts = opts.attempts ?? 8;
  for (let attempt = 1; ; attempt++) {
    try {
      return await db
        .transaction()
        .setIsolationLevel(opts.isolation ?? 'read committed')
        .execute(async (tx) => {
          await scopeTransaction(tx, opts.orgId ?? null);
          return fn(tx);
        });
    } catch (e) {
      if (!isRetryable(e) || attempt >= attempts) throw e;
      const backoff = Math.min(200, 2 ** attempt) * (0.5 + Math.random());
      await new Promise((r) => setTimeout(r, backoff));
    }
  }
}

/** Shorthand for an org-scoped transaction. */
export function inOrg<T>(
  db: Db,
  orgId: string,
  fn: (tx: Tx) => Promise<T>,
  opts: Omit<TxOptions, 'orgId'> = {},
) {
  return inTransaction(db, { ...opts, orgId }, fn);
}
