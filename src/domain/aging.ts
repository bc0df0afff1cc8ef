/**
 * Accounts-receivable aging (DESIGN.md §9 `/v1/reports/aging`): open remainders bucketed by days
 * past due as of a given date. Not yet due and due today are `current`.
 */
import { assertIsoDate, daysBetween, type IsoDate } from './dates.js';
import { DomainError } from './errors.js';

/** Aging bucket names, in order. */
export const AGING_BUCKETS = ['current', 'd1_30', 'd31_60', 'd61_90', 'over_90'] as const;

/** One aging bucket. */
export type AgingBucket = (typeof AGING_BUCKETS)[number];

/** Amounts per bucket (minor units). */
export type AgingBuckets = Record<AgingBucket, bigint>;

/** An open receivable to age; amounts must already be in the report's currency. */
export interface AgingItem {
  readonly invoice: string;
  readonly customer: string;
  readonly due_date: IsoDate;
  readonly amount_remaining: bigint;
}

/** The aging report. */
export interface AgingReport {
  readonly as_of: IsoDate;
  readonly buckets: AgingBuckets;
  readonly total: bigint;
  readonly customers: readonly {
    readonly customer: string;
    readonly buckets: AgingBuckets;
    readonly total: bigint;
  }[];
}

/**
 * Upper bounds (days past due, inclusive) of `d1_30`, `d31_60` and `d61_90`; ≤ 0 is `current`,
 * above the last is `over_90`. The SQL aggregate of the aging report buckets with these numbers.
 */
export const AGING_BOUNDS = [30, 60, 90] as const;

/** The bucket for a number of days past due (≤ 0 is current). */
export function agingBucket(daysPastDue: number): AgingBucket {
  if (daysPastDue <= 0) return 'current';
  if (daysPastDue <= AGING_BOUNDS[0]) return 'd1_30';
  if (daysPastDue <= AGING_BOUNDS[1]) return 'd31_60';
  if (daysPastDue <= AGING_BOUNDS[2]) return 'd61_90';
  return 'over_90';
}

/** All five buckets at zero. */
export function emptyBuckets(): AgingBuckets {
  return { current: 0n, d1_30: 0n, d31_60: 0n, d61_90: 0n, over_90: 0n };
}

/** Buckets open remainders by days past due as of `asOf`; customers sorted by id, zero remainders skipped. */
export function agingReport(items: readonly AgingItem[], asOf: IsoDate): AgingReport {
  assertIsoDate(asOf, 'as_of');
  const buckets = emptyBuckets();
  const perCustomer = new Map<string, AgingBuckets>();
  items.forEach((item, i) => {
    if (typeof item.amount_remaining !== 'bigint' || item.amount_remaining < 0n) {
      throw new DomainError(
        'amount_invalid',
        'Remainders must be non-negative',
        `items.${i}.amount_remaining`,
      );
    }
    if (item.amount_remaining === 0n) return;
    assertIsoDate(item.due_date, `items.${i}.due_date`);
    const bucket = agingBucket(daysBetween(item.due_date, asOf));
    buckets[bucket] += item.amount_remaining;
    const c = perCustomer.get(item.customer) ?? emptyBuckets();
    c[bucket] += item.amount_remaining;
    perCustomer.set(item.customer, c);
  });
  const total = (b: AgingBuckets): bigint => AGING_BUCKETS.reduce((a, k) => a + b[k], 0n);
  return {
    as_of: asOf,
    buckets,
    total: total(buckets),
    customers: [...perCustomer.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([customer, b]) => ({ customer, buckets: b, total: total(b) })),
  };
}
