/**
 * Document numbers from a series pattern such as `INV-{YYYY}-{seq:6}` (DESIGN.md §3).
 *
 * This module only renders and validates; the gap-free sequence itself is taken from the
 * database at finalisation. Tokens: {YYYY} {YY} {MM} {DD} and exactly one {seq} or {seq:N}
 * (zero-padded to at least N digits; a longer number is never truncated, so numbers stay unique).
 */
import { dateParts, type IsoDate } from './dates.js';
import { DomainError } from './errors.js';

/** A parsed series pattern. */
export interface NumberPattern {
  readonly pattern: string;
  readonly parts: readonly PatternPart[];
  /** Which date parts the pattern shows; a series whose numbers show the year usually restarts each year. */
  readonly period: 'none' | 'year' | 'month' | 'day';
}

/** One piece of a pattern: literal text or a token. */
export type PatternPart =
  | { readonly kind: 'literal'; readonly text: string }
  | { readonly kind: 'year4' | 'year2' | 'month' | 'day' }
  | { readonly kind: 'seq'; readonly width: number };

const MAX_PATTERN_LENGTH = 64;
const MAX_SEQ_WIDTH = 12;
/** Literal characters allowed in numbers: safe in file names, URLs, XML and CSV without escaping. */
const LITERAL_RE = /^[A-Za-z0-9\-_/.]*$/;
const TOKEN_RE = /\{([^{}]*)\}/g;

function invalid(message: string): DomainError {
  return new DomainError('numbering_pattern_invalid', message, 'pattern');
}

/** Parses and validates a series pattern; throws `numbering_pattern_invalid`. */
export function parseNumberPattern(pattern: string): NumberPattern {
  if (typeof pattern !== 'string' || pattern.length === 0 || pattern.length > MAX_PATTERN_LENGTH) {
    throw invalid(`Pattern must be 1 to ${MAX_PATTERN_LENGTH} characters`);
  }
  const parts: PatternPart[] = [];
  let last = 0;
  let seqCount = 0;
  for (const m of pattern.matchAll(TOKEN_RE)) {
    const index = m.index ?? 0;
    if (index > last) parts.push({ kind: 'literal', text: pattern.slice(last, index) });
    const token = m[1] ?? '';
    if (token === 'YYYY') parts.push({ kind: 'year4' });
    else if (token === 'YY') parts.push({ kind: 'year2' });
    else if (token === 'MM') parts.push({ kind: 'month' });
    else if (token === 'DD') parts.push({ kind: 'day' });
    else if (token === 'seq') {
      parts.push({ kind: 'seq', width: 1 });
      seqCount++;
    } else {
      const seq = /^seq:(\d{1,2})$/.exec(token);
      const width = seq ? Number(seq[1]) : 0;
      if (width < 1 || width > MAX_SEQ_WIDTH) throw invalid(`Unknown token {${token}}`);
      parts.push({ kind: 'seq', width });
      seqCount++;
    }
    last = index + m[0].length;
  }
  if (last < pattern.length) parts.push({ kind: 'literal', text: pattern.slice(last) });
  for (const p of parts) {
    if (p.kind === 'literal' && !LITERAL_RE.test(p.text)) {
      throw invalid('Pattern text may use letters, digits and - _ / . only');
    }
  }
  if (seqCount !== 1) throw invalid('Pattern must contain exactly one {seq} or {seq:N}');
  const kinds = new Set(parts.map((p) => p.kind));
  // A counter may restart only when the rendered date alone keeps numbers apart, e.g. not for
  // {MM} without a year, or January 2026 and January 2027 would share numbers.
  const year = kinds.has('year4') || kinds.has('year2');
  const month = year && kinds.has('month');
  const period = month && kinds.has('day') ? 'day' : month ? 'month' : year ? 'year' : 'none';
  return { pattern, parts, period };
}

/** Renders a document number from a pattern, the document date and a positive sequence number. */
export function renderNumber(
  pattern: string | NumberPattern,
  date: IsoDate,
  sequence: number | bigint,
): string {
  const parsed = typeof pattern === 'string' ? parseNumberPattern(pattern) : pattern;
  const seq =
    typeof sequence === 'bigint' ? sequence : Number.isSafeInteger(sequence) ? BigInt(sequence) : -1n;
  if (seq < 1n) throw new DomainError('validation_failed', 'Sequence must be a positive integer', 'sequence');
  const { year, month, day } = dateParts(date);
  return parsed.parts
    .map((p) => {
      switch (p.kind) {
        case 'literal':
          return p.text;
        case 'year4':
          return String(year).padStart(4, '0');
        case 'year2':
          return String(year % 100).padStart(2, '0');
        case 'month':
          return String(month).padStart(2, '0');
        case 'day':
          return String(day).padStart(2, '0');
        case 'seq':
          return seq.toString().padStart(p.width, '0');
        default: {
          const unknown: never = p;
          throw new RangeError(`Unknown pattern part ${String(unknown)}`);
        }
      }
    })
    .join('');
}

/**
 * A number of this pattern and date split around its sequence: `prefix`, then the sequence
 * zero-padded to at least `width` digits, then `suffix`. renderNumber(p, d, n) equals
 * prefix + String(n).padStart(width, '0') + suffix for every positive n, so the database can
 * render the number in the statement that takes the sequence.
 */
export function numberTemplate(
  pattern: string | NumberPattern,
  date: IsoDate,
): { prefix: string; width: number; suffix: string } {
  const parsed = typeof pattern === 'string' ? parseNumberPattern(pattern) : pattern;
  const at = parsed.parts.findIndex((p) => p.kind === 'seq');
  const seq = parsed.parts[at];
  if (seq?.kind !== 'seq') throw new RangeError('pattern without a sequence');
  const render = (parts: readonly PatternPart[]) =>
    parts.length === 0
      ? ''
      : renderNumber({ ...parsed, parts: [...parts, { kind: 'seq', width: 1 }] }, date, 1).slice(0, -1);
  return {
    prefix: render(parsed.parts.slice(0, at)),
    width: seq.width,
    suffix: render(parsed.parts.slice(at + 1)),
  };
}

/**
 * The counter scope of a date within a series: numbers restart per year/month/day when the pattern
 * shows that period (otherwise two years could render the same number), and never when it shows none.
 */
export function sequenceScope(pattern: string | NumberPattern, date: IsoDate): string {
  const parsed = typeof pattern === 'string' ? parseNumberPattern(pattern) : pattern;
  const { year, month, day } = dateParts(date);
  const y = String(year).padStart(4, '0');
  const m = String(month).padStart(2, '0');
  const d = String(day).padStart(2, '0');
  switch (parsed.period) {
    case 'none':
      return '';
    case 'year':
      return y;
    case 'month':
      return `${y}-${m}`;
    case 'day':
      return `${y}-${m}-${d}`;
    default: {
      const unknown: never = parsed.period;
      throw new RangeError(`Unknown period ${String(unknown)}`);
    }
  }
}
