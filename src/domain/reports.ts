/**
 * Pure rules of the receivables reports: report periods, days sales outstanding, and the running
 * balance of a customer statement. Amounts are bigint minor units; nothing here rounds money
 * except DSO, which is a ratio shown as a decimal string.
 */
import { assertIsoDate, daysBetween, type IsoDate } from './dates.js';
import { DomainError } from './errors.js';

/** Longest period a report covers (about 100 years of days; day grouping is capped separately). */
const MAX_PERIOD_DAYS = 36_600;

/** A validated inclusive period `[from, to]`. */
export interface Period {
  readonly from: IsoDate;
  readonly to: IsoDate;
  /** Calendar days in the period, both ends included. */
  readonly days: number;
}

/** Validates `from ≤ to` (both ISO dates); throws `date_invalid` (422) naming the bad parameter. */
export function reportPeriod(from: string, to: string): Period {
  const f = assertIsoDate(from, 'from');
  const t = assertIsoDate(to, 'to');
  const span = daysBetween(f, t);
  if (span < 0) throw new DomainError('date_invalid', '`from` must not be after `to`.', 'from');
  if (span >= MAX_PERIOD_DAYS) throw new DomainError('date_invalid', 'The period is too long.', 'to');
  return { from: f, to: t, days: span + 1 };
}

/** Period grouping of the revenue report. */
export const REPORT_GROUPS = ['day', 'month', 'year'] as const;
export type ReportGroup = (typeof REPORT_GROUPS)[number];

/** Refuses a day-grouped report over more than `max` days (the reply stays bounded). */
export function assertGroupable(period: Period, group: ReportGroup, max = 3_700): void {
  if (group === 'day' && period.days > max) {
    throw new DomainError('date_invalid', `Day grouping covers at most ${max} days.`, 'group');
  }
}

/**
 * Days sales outstanding: receivables at the period's end ÷ credit sales in the period × days in
 * the period, computed exactly and rounded half-up to `decimals` (1 or 2) places. Null when there
 * were no credit sales (the ratio is undefined).
 */
export function daysSalesOutstanding(
  receivables: bigint,
  creditSales: bigint,
  days: number,
  decimals: 1 | 2 = 2,
): string | null {
  if (creditSales <= 0n) return null;
  if (receivables < 0n) throw new DomainError('amount_invalid', 'Receivables cannot be negative.');
  const scale = 10n ** BigInt(decimals);
  const num = receivables * BigInt(days) * scale;
  // half-up on a non-negative ratio: floor((2·num + den) / (2·den))
  const scaled = (2n * num + creditSales) / (2n * creditSales);
  const whole = scaled / scale;
  const frac = (scaled % scale).toString().padStart(decimals, '0');
  return `${whole}.${frac}`;
}

/** One document on a statement as stored: its effect on what the customer owes. */
export interface StatementEntry {
  readonly date: IsoDate;
  readonly type: StatementLineType;
  readonly id: string;
  readonly number: string | null;
  /** Raises what the customer owes (invoices, refunds paid out). */
  readonly debit: bigint;
  /** Lowers it (payments, credit notes, voids). */
  readonly credit: bigint;
  /** Informational amount of a line that moves no balance (credit applied to an invoice). */
  readonly applied: bigint;
  readonly invoice: string | null;
}

export const STATEMENT_LINE_TYPES = [
  'invoice',
  'credit_note',
  'payment',
  'credit_applied',
  'refund',
  'invoice_voided',
] as const;
export type StatementLineType = (typeof STATEMENT_LINE_TYPES)[number];

/** A statement line with the balance after it. */
export interface StatementLine extends StatementEntry {
  readonly balance: bigint;
}

/**
 * Adds the running balance to entries already in statement order, starting from `opening`;
 * returns the lines and the balance after the last one. Negative balances are customer credit.
 */
export function runningBalance(
  opening: bigint,
  entries: readonly StatementEntry[],
): { lines: StatementLine[]; closing: bigint } {
  let balance = opening;
  const lines = entries.map((e) => {
    if (e.debit < 0n || e.credit < 0n)
      throw new DomainError('amount_invalid', 'Statement amounts are non-negative.');
    balance += e.debit - e.credit;
    return { ...e, balance };
  });
  return { lines, closing: balance };
}
