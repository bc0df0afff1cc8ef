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

/** Builds the envelope from rows fetched with limit + 1 (the extra row only says there is more). */
export function toPage<R, T>(rows: R[], limit: number, view: (r: R) => T): ListPage<T> {
  return { object: 'list', data: rows.slice(0, limit).map(view), has_more: rows.length > limit };
}

/** Refusal for a cursor that names nothing the caller can see. */
export function badCursor(): DomainError {
  return new DomainError('not_found', 'starting_after names no object in this list.', 'starting_after');
}
