/**
 * Money arithmetic (DESIGN.md §3).
 *
 * Amounts are `bigint` integers in the currency's ISO 4217 minor unit. Rates, percentages and
 * quantities are decimal strings with at most 6 decimals, turned into exact rationals. Every
 * product is computed exactly and rounded once, with an explicit rounding mode. There is no
 * floating point anywhere: `number` is used only for currency exponents and counts.
 */
import { data as isoCurrencies } from 'currency-codes';
import { DomainError, type ErrorCode } from './errors.js';

/** An uppercase ISO 4217 alphabetic currency code, e.g. "EUR". */
export type Currency = string;

/** An amount of money in minor units of its currency. */
export interface Money {
  readonly amount: bigint;
  readonly currency: Currency;
}

/** An exact rational number; `den` is always positive and the fraction is in lowest terms. */
export interface Rational {
  readonly num: bigint;
  readonly den: bigint;
}

/** Rounding of exact results to the minor unit: `half_up` (away from zero, EN 16931) or `half_even`. */
export type RoundingMode = 'half_up' | 'half_even';

/** Options for parsing rates and quantities. */
export interface DecimalOptions {
  /** Accept a leading minus sign (default: false). */
  readonly allowNegative?: boolean;
}

/** Maximum number of decimals accepted in rates, percentages and quantities. */
export const MAX_RATE_DECIMALS = 6;

/** Upper bound on the length of any decimal/integer string we parse (guards against huge inputs). */
const MAX_INPUT_LENGTH = 40;

/**
 * ISO 4217 codes whose minor unit is "N.A." (precious metals, bond-market units, SDR, testing and
 * "no currency"). `currency-codes` reports them with `digits: 0`, which would be wrong; they are not
 * money we can invoice in, so they are treated as unknown.
 */
const NON_MONETARY_CODES: ReadonlySet<string> = new Set([
  'XAG',
  'XAU',
  'XBA',
  'XBB',
  'XBC',
  'XBD',
  'XDR',
  'XPD',
  'XPT',
  'XSU',
  'XTS',
  'XUA',
  'XXX',
]);

/**
 * ISO 4217 fund codes (`IsFund="true"` in list one): units of account, not circulating money.
 * They have a defined exponent (e.g. CLF = 4) but are refused as invoice currencies unless asked.
 */
const FUND_CODES: ReadonlySet<string> = new Set(['BOV', 'CHE', 'CHW', 'CLF', 'COU', 'MXV', 'USN', 'UYI']);

/** Code → exponent for every ISO 4217 code with a numeric minor unit. */
const EXPONENTS: ReadonlyMap<string, number> = new Map(
  isoCurrencies
    .filter(
      (c) =>
        /^[A-Z]{3}$/.test(c.code) &&
        !NON_MONETARY_CODES.has(c.code) &&
        Number.isInteger(c.digits) &&
        c.digits >= 0 &&
        c.digits <= 6,
    )
    .map((c) => [c.code, c.digits] as const),
);

/** 10^0 … 10^6 as bigints. */
const POW10: readonly bigint[] = Array.from({ length: 7 }, (_, i) => 10n ** BigInt(i));

function pow10(exponent: number): bigint {
  const p = POW10[exponent];
  if (p === undefined) throw new RangeError(`Unsupported decimal exponent ${exponent}`);
  return p;
}

function unknownCurrency(code: unknown): DomainError {
  const shown = typeof code === 'string' ? code.slice(0, 16) : typeof code;
  return new DomainError('currency_unknown', `Unknown currency "${shown}"`, 'currency');
}

function normaliseCode(code: unknown): string {
  if (typeof code !== 'string' || !/^[A-Za-z]{3}$/.test(code)) throw unknownCurrency(code);
  return code.toUpperCase();
}

// ---------------------------------------------------------------------------------------------
// Currencies
// ---------------------------------------------------------------------------------------------

/** The ISO 4217 minor-unit exponent of a currency (JPY 0, EUR 2, BHD 3, CLF 4); throws `currency_unknown`. */
export function currencyExponent(code: string): number {
  const exponent = EXPONENTS.get(normaliseCode(code));
  if (exponent === undefined) throw unknownCurrency(code);
  return exponent;
}

/** Every known currency with its exponent (for queries that convert in SQL). */
export function knownCurrencyExponents(): ReadonlyMap<string, number> {
  return EXPONENTS;
}

/** Validates an invoiceable ISO 4217 code and returns it uppercased; fund codes only with `allowFunds`. */
export function assertCurrency(code: string, options: { readonly allowFunds?: boolean } = {}): Currency {
  const normalised = normaliseCode(code);
  if (!EXPONENTS.has(normalised)) throw unknownCurrency(code);
  if (FUND_CODES.has(normalised) && options.allowFunds !== true) throw unknownCurrency(code);
  return normalised;
}

/** Whether a string is an invoiceable ISO 4217 code (case-insensitive, fund codes excluded). */
export function isCurrency(code: string): boolean {
  try {
    assertCurrency(code);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Money values
// ---------------------------------------------------------------------------------------------

function invalidAmount(message: string, details?: Record<string, unknown>): DomainError {
  return new DomainError('amount_invalid', message, 'amount', details);
}

/** Converts a bigint, safe integer or integer string of minor units to a bigint; throws `amount_invalid`. */
export function toMinor(amount: bigint | number | string): bigint {
  if (typeof amount === 'bigint') return amount;
  if (typeof amount === 'number') {
    if (!Number.isSafeInteger(amount)) throw invalidAmount('Amount must be a safe integer of minor units');
    return BigInt(amount);
  }
  if (typeof amount === 'string' && amount.length <= MAX_INPUT_LENGTH && /^-?\d+$/.test(amount)) {
    return BigInt(amount);
  }
  throw invalidAmount('Amount must be an integer number of minor units');
}

/** Creates a Money value from minor units (bigint, safe integer or integer string) and a currency code. */
export function money(amount: bigint | number | string, currency: string): Money {
  return Object.freeze({ amount: toMinor(amount), currency: assertCurrency(currency) });
}

function assertSameCurrency(a: Money, b: Money): void {
  if (a.currency !== b.currency) {
    throw new DomainError(
      'currency_mismatch',
      `Currency mismatch: ${a.currency} vs ${b.currency}`,
      'currency',
      { expected: a.currency, actual: b.currency },
    );
  }
}

/** Sum of two amounts in the same currency; throws `currency_mismatch` otherwise. */
export function add(a: Money, b: Money): Money {
  assertSameCurrency(a, b);
  return Object.freeze({ amount: a.amount + b.amount, currency: a.currency });
}

/** Difference `a − b` of two amounts in the same currency; throws `currency_mismatch` otherwise. */
export function subtract(a: Money, b: Money): Money {
  assertSameCurrency(a, b);
  return Object.freeze({ amount: a.amount - b.amount, currency: a.currency });
}

/** The amount with its sign flipped. */
export function negate(m: Money): Money {
  return Object.freeze({ amount: -m.amount, currency: m.currency });
}

/** Whether the amount is zero. */
export function isZero(m: Money): boolean {
  return m.amount === 0n;
}

/** Orders two amounts in the same currency: -1, 0 or 1; throws `currency_mismatch` otherwise. */
export function compare(a: Money, b: Money): -1 | 0 | 1 {
  assertSameCurrency(a, b);
  return a.amount < b.amount ? -1 : a.amount > b.amount ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// Decimal strings
// ---------------------------------------------------------------------------------------------

/** Plain decimal: optional minus, digits, optional fraction. No exponents, spaces, "+", ".5" or "5.". */
const DECIMAL_RE = /^(-?)(\d+)(?:\.(\d+))?$/;

interface ParsedDecimal {
  readonly negative: boolean;
  readonly intPart: string;
  readonly fracPart: string;
}

function splitDecimal(input: unknown): ParsedDecimal | undefined {
  if (typeof input !== 'string' || input.length > MAX_INPUT_LENGTH) return undefined;
  const m = DECIMAL_RE.exec(input);
  if (m === null) return undefined;
  return { negative: m[1] === '-', intPart: m[2] ?? '', fracPart: m[3] ?? '' };
}

/** Parses a major-unit decimal string ("12.34", "-0.5", "1000") to minor units; throws `amount_invalid`. */
export function parseDecimal(input: string, currency: string): bigint {
  const exponent = currencyExponent(currency);
  const parsed = splitDecimal(input);
  if (parsed === undefined) throw invalidAmount('Amount must be a plain decimal number like "12.34"');
  if (parsed.fracPart.length > exponent) {
    throw invalidAmount(`Amount has more than ${exponent} decimal place(s) for ${currency.toUpperCase()}`, {
      maxDecimals: exponent,
    });
  }
  const magnitude = BigInt(parsed.intPart + parsed.fracPart.padEnd(exponent, '0'));
  return parsed.negative ? -magnitude : magnitude;
}

/** Formats minor units as an exact major-unit decimal string ("12.34", "-0.05", "1000" for JPY). */
export function formatMinor(amount: bigint, currency: string): string {
  const exponent = currencyExponent(currency);
  const negative = amount < 0n;
  const digits = (negative ? -amount : amount).toString();
  if (exponent === 0) return negative ? `-${digits}` : digits;
  const padded = digits.padStart(exponent + 1, '0');
  const cut = padded.length - exponent;
  return `${negative ? '-' : ''}${padded.slice(0, cut)}.${padded.slice(cut)}`;
}

function gcd(a: bigint, b: bigint): bigint {
  a = a < 0n ? -a : a;
  b = b < 0n ? -b : b;
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

/** Builds a rational in lowest terms with a positive denominator; throws RangeError on a zero denominator. */
export function rational(num: bigint, den: bigint): Rational {
  if (den === 0n) throw new RangeError('Denominator must not be zero');
  if (den < 0n) {
    num = -num;
    den = -den;
  }
  const g = gcd(num, den);
  return g > 1n ? { num: num / g, den: den / g } : { num, den };
}

function parseBoundedDecimal(
  input: string,
  options: DecimalOptions,
  code: ErrorCode,
  param: string,
  label: string,
): Rational {
  const parsed = splitDecimal(input);
  if (parsed === undefined) {
    throw new DomainError(code, `${label} must be a plain decimal number like "7.125"`, param);
  }
  if (parsed.fracPart.length > MAX_RATE_DECIMALS) {
    throw new DomainError(code, `${label} has more than ${MAX_RATE_DECIMALS} decimal places`, param, {
      maxDecimals: MAX_RATE_DECIMALS,
    });
  }
  const magnitude = BigInt(parsed.intPart + parsed.fracPart);
  if (parsed.negative && magnitude !== 0n && options.allowNegative !== true) {
    throw new DomainError(code, `${label} must not be negative`, param);
  }
  return rational(parsed.negative ? -magnitude : magnitude, pow10(parsed.fracPart.length));
}

/** Parses a rate/percentage decimal string with ≤ 6 decimals ("20", "7.125") to a rational; throws `rate_invalid`. */
export function parseRate(input: string, options: DecimalOptions = {}): Rational {
  return parseBoundedDecimal(input, options, 'rate_invalid', 'rate', 'Rate');
}

/** Parses a quantity decimal string with ≤ 6 decimals ("2", "0.5") to a rational; throws `quantity_invalid`. */
export function parseQuantity(input: string, options: DecimalOptions = {}): Rational {
  return parseBoundedDecimal(input, options, 'quantity_invalid', 'quantity', 'Quantity');
}

/** Formats a rational whose denominator divides 10^6 as a minimal decimal string ("7.125", "20"). */
export function formatRational(value: Rational): string {
  const { num, den } = rational(value.num, value.den);
  let scale = 0;
  while (scale <= MAX_RATE_DECIMALS && pow10(scale) % den !== 0n) scale++;
  if (scale > MAX_RATE_DECIMALS) throw new RangeError('Rational is not a decimal with at most 6 places');
  const scaled = num * (pow10(scale) / den);
  const negative = scaled < 0n;
  const digits = (negative ? -scaled : scaled).toString().padStart(scale + 1, '0');
  const cut = digits.length - scale;
  const text = scale === 0 ? digits : `${digits.slice(0, cut)}.${digits.slice(cut)}`;
  return negative ? `-${text}` : text;
}

// ---------------------------------------------------------------------------------------------
// Rounding and exact products
// ---------------------------------------------------------------------------------------------

/** Rounds the exact rational num/den to an integer; ties per mode, symmetric around zero. */
export function divRound(num: bigint, den: bigint, mode: RoundingMode): bigint {
  if (den === 0n) throw new RangeError('Division by zero');
  if (den < 0n) {
    num = -num;
    den = -den;
  }
  const quotient = num / den; // truncates toward zero
  const remainder = num % den; // has the sign of num
  if (remainder === 0n) return quotient;
  const twiceRemainder = remainder < 0n ? -2n * remainder : 2n * remainder;
  const awayFromZero = num < 0n ? quotient - 1n : quotient + 1n;
  if (twiceRemainder > den) return awayFromZero;
  if (twiceRemainder < den) return quotient;
  switch (mode) {
    case 'half_up':
      return awayFromZero;
    case 'half_even':
      return quotient % 2n === 0n ? quotient : awayFromZero;
    default: {
      const unknown: never = mode;
      throw new RangeError(`Unknown rounding mode "${String(unknown)}"`);
    }
  }
}

function toRational(value: string | Rational, parse: (input: string) => Rational): Rational {
  if (typeof value === 'string') return parse(value);
  if (typeof value.num !== 'bigint' || typeof value.den !== 'bigint' || value.den <= 0n) {
    throw new RangeError('Rational must have bigint parts and a positive denominator');
  }
  return value;
}

/** Exact `amount × rate`, rounded once; `rate` is a decimal string (≤ 6 decimals, non-negative) or a Rational. */
export function mulRate(amount: bigint, rate: string | Rational, mode: RoundingMode): bigint {
  const r = toRational(rate, (s) => parseRate(s));
  return divRound(amount * r.num, r.den, mode);
}

/** Exact `amount × percentage / 100`, rounded once ("20" → 20 %); throws `rate_invalid` on a bad percentage. */
export function percentOf(amount: bigint, percentage: string | Rational, mode: RoundingMode): bigint {
  const p = toRational(percentage, (s) => parseRate(s));
  return divRound(amount * p.num, p.den * 100n, mode);
}

/** Exact `unitAmount × quantity`, rounded once; `quantity` is a decimal string (≤ 6 decimals) or a Rational. */
export function mulQuantity(unitAmount: bigint, quantity: string | Rational, mode: RoundingMode): bigint {
  const q = toRational(quantity, (s) => parseQuantity(s));
  return divRound(unitAmount * q.num, q.den, mode);
}

// ---------------------------------------------------------------------------------------------
// Allocation
// ---------------------------------------------------------------------------------------------

function invalidAllocation(message: string): DomainError {
  return new DomainError('allocation_invalid', message, 'weights');
}

/**
 * Splits `total` in proportion to non-negative `weights` (largest remainder, ties to the lowest index);
 * the parts sum exactly to `total`, and `allocate(-t, w)` is `allocate(t, w)` negated.
 */
export function allocate(total: bigint, weights: readonly bigint[]): bigint[] {
  if (weights.length === 0) throw invalidAllocation('At least one weight is required');
  let weightSum = 0n;
  for (const w of weights) {
    if (typeof w !== 'bigint' || w < 0n) throw invalidAllocation('Weights must be non-negative integers');
    weightSum += w;
  }
  if (weightSum === 0n) throw invalidAllocation('At least one weight must be positive');

  const negative = total < 0n;
  const magnitude = negative ? -total : total;
  const parts: bigint[] = [];
  const remainders: bigint[] = [];
  let allocated = 0n;
  for (const w of weights) {
    const product = magnitude * w;
    const part = product / weightSum;
    parts.push(part);
    remainders.push(product % weightSum);
    allocated += part;
  }

  // leftover < number of non-zero remainders, so zero-weight parts never receive a unit.
  let leftover = magnitude - allocated;
  if (leftover > 0n) {
    const order = remainders
      .map((remainder, index) => ({ remainder, index }))
      .sort((a, b) => (a.remainder === b.remainder ? a.index - b.index : a.remainder > b.remainder ? -1 : 1));
    for (const { index } of order) {
      if (leftover === 0n) break;
      parts[index] = (parts[index] ?? 0n) + 1n;
      leftover -= 1n;
    }
  }
  return negative ? parts.map((p) => -p) : parts;
}

/** Splits `total` into `n` parts differing by at most one unit, larger parts first (100/3 → 34, 33, 33). */
export function allocateEvenly(total: bigint, n: number): bigint[] {
  if (!Number.isSafeInteger(n) || n < 1) throw invalidAllocation('Part count must be a positive integer');
  const count = BigInt(n);
  const negative = total < 0n;
  const magnitude = negative ? -total : total;
  const base = magnitude / count;
  const extra = Number(magnitude % count); // < n, a safe integer
  const parts = Array.from({ length: n }, (_, i) => (i < extra ? base + 1n : base));
  return negative ? parts.map((p) => -p) : parts;
}
