import { type SelectQueryBuilder, sql } from 'kysely';
import type { DB, Tx } from '../adapters/db/index.js';
import { DomainError } from '../domain/errors.js';

/** List parameters of DESIGN.md §6. */
export interface PageParams {
  limit?: number;
  starting_after?: string;
}

/** The list envelope of DESIGN.md §6. */
export interface ListPage<T> {
  object: 'list';
  data: T[];
  has_more: boolean;
}

/** Clamps the page size to 1–100 (default 20). */
export function pageLimit(p: PageParams): number {
  const n = p.limit ?? 20;
  if (!Number.isInteger(n) || n < 1 || n > 100) {
    throw new DomainError('validation_failed', 'limit must be a whole number from 1 to 100.', 'limit');
  }
  return n;
}

/** Refusal for a cursor that names nothing the caller can see. */
export function badCursor(): DomainError {
  return new DomainError('not_found', 'starting_after names no object in this list.', 'starting_after');
}

/** Tables listed newest first by (created_at, id). */
type Listable =
  | 'customers'
  | 'invoices'
  | 'quotes'
  | 'credit_notes'
  | 'products'
  | 'tax_rates'
  | 'payments'
  | 'refunds'
  | 'webhook_endpoints'
  | 'webhook_deliveries';

/**
 * One page of a filtered list, newest first, keyset-paginated on (created_at, id) after the
 * `starting_after` cursor. The cursor is looked up through the same filtered query, so an id
 * outside what the caller may list is a 404 and never reveals that it exists.
 */
export async function fetchPage<T extends Listable, O>(
  q: SelectQueryBuilder<DB, T, O>,
  f: PageParams,
): Promise<{ rows: O[]; has_more: boolean }> {
  const limit = pageLimit(f);
  if (f.starting_after) {
    const cursor = await q
      .clearSelect()
      .select([sql<Date>`created_at`.as('c_at'), sql<string>`id`.as('c_id')])
      .where(sql<boolean>`id = ${f.starting_after}`)
      .executeTakeFirst();
    if (!cursor) throw badCursor();
    q = q.where(sql<boolean>`(created_at, id) < (${cursor.c_at}, ${cursor.c_id})`);
  }
  const rows = await q
    .orderBy(sql`created_at`, 'desc')
    .orderBy(sql`id`, 'desc')
    .limit(limit + 1)
    .execute();
  return { rows: rows.slice(0, limit), has_more: rows.length > limit };
}

/** Narrows a document list to the customers assigned to a user (the record-level rule for sales reps). */
export function ofAssignedCustomers<T extends 'invoices' | 'quotes' | 'credit_notes', O>(
  tx: Tx,
  q: SelectQueryBuilder<DB, T, O>,
  userId: string | undefined,
): SelectQueryBuilder<DB, T, O> {
  const assigned = tx
    .selectFrom('customers')
    .select('id')
    .where('owner_user_id', '=', userId ?? '');
  return q.where(sql<boolean>`customer_id IN (${assigned})`);
}

/** Builds the envelope from rows fetched with limit + 1 (the extra row only says there is more). */
export function toPage<R, T>(rows: R[], limit: number, view: (r: R) => T): ListPage<T> {
  return { object: 'list', data: rows.slice(0, limit).map(view), has_more: rows.length > limit };
}
