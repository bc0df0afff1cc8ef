/**
 * Calendar dates as ISO `YYYY-MM-DD` strings (proleptic Gregorian, no time zone).
 *
 * The domain never reads a clock: callers pass "today" in. Arithmetic goes through a day number
 * (days since 1970-01-01) computed with integer formulas, so no `Date` object, host time zone or
 * DST rule can shift a due date.
 */
import { DomainError } from './errors.js';

/** A calendar date as an ISO 8601 `YYYY-MM-DD` string. */
export type IsoDate = string;

const ISO_DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Largest day offset accepted by `addDays` (about 270 years); keeps results inside 4-digit years. */
const MAX_DAY_OFFSET = 100_000;

function isLeap(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return isLeap(year) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

interface Civil {
  readonly year: number;
  readonly month: number;
  readonly day: number;
}

function parse(input: unknown, param: string): Civil {
  const m = typeof input === 'string' ? ISO_DATE_RE.exec(input) : null;
  if (m === null) throw new DomainError('date_invalid', 'Date must be an ISO date like "2026-01-31"', param);
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) {
    throw new DomainError('date_invalid', `"${String(input)}" is not a calendar date`, param);
  }
  return { year, month, day };
}

// Howard Hinnant's days_from_civil / civil_from_days: exact integer algorithms over 400-year eras.
function toDayNumber({ year, month, day }: Civil): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const mp = (month + 9) % 12;
  const doy = Math.floor((153 * mp + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function fromDayNumber(z: number): Civil {
  const shifted = z + 719468;
  const era = Math.floor(shifted / 146097);
  const doe = shifted - era * 146097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  return { year, month, day };
}

function format({ year, month, day }: Civil): IsoDate {
  return `${String(year).padStart(4, '0')}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`;
}

/** Validates an ISO `YYYY-MM-DD` calendar date and returns it; throws `date_invalid` with `param`. */
export function assertIsoDate(input: string, param = 'date'): IsoDate {
  return format(parse(input, param));
}

/** Whether the string is a valid ISO `YYYY-MM-DD` calendar date. */
export function isIsoDate(input: string): boolean {
  try {
    parse(input, 'date');
    return true;
  } catch {
    return false;
  }
}

/** The year, month (1–12) and day of an ISO date; throws `date_invalid`. */
export function dateParts(date: IsoDate, param = 'date'): Civil {
  return parse(date, param);
}

/** The date `days` calendar days after (or before, if negative) `date`; throws `date_invalid`. */
export function addDays(date: IsoDate, days: number, param = 'date'): IsoDate {
  if (!Number.isSafeInteger(days) || Math.abs(days) > MAX_DAY_OFFSET) {
    throw new DomainError('date_invalid', `Day offset must be an integer within ±${MAX_DAY_OFFSET}`, param);
  }
  const result = fromDayNumber(toDayNumber(parse(date, param)) + days);
  if (result.year < 1 || result.year > 9999)
    throw new DomainError('date_invalid', 'Date out of range', param);
  return format(result);
}

/** Whole days from `from` to `to` (positive when `to` is later). */
export function daysBetween(from: IsoDate, to: IsoDate): number {
  return toDayNumber(parse(to, 'to')) - toDayNumber(parse(from, 'from'));
}

/** Orders two ISO dates: -1, 0 or 1. */
export function compareDates(a: IsoDate, b: IsoDate): -1 | 0 | 1 {
  const d = daysBetween(b, a);
  return d < 0 ? -1 : d > 0 ? 1 : 0;
}

/** Due date from payment terms: issue date + `termsDays` (0–3650 net days); throws `date_invalid`. */
export function dueDateFromTerms(issueDate: IsoDate, termsDays: number): IsoDate {
  if (!Number.isSafeInteger(termsDays) || termsDays < 0 || termsDays > 3650) {
    throw new DomainError('date_invalid', 'Payment terms must be 0 to 3650 days', 'payment_terms_days');
  }
  return addDays(issueDate, termsDays, 'issue_date');
}
