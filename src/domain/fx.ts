/**
 * Conversion to the organisation's base currency with a recorded FX rate (for reporting only: an
 * invoice keeps its own currency). The rate is a decimal string with up to 6 decimals meaning
 * "1 unit of the invoice currency = rate units of the base currency"; minor-unit exponents are
 * applied exactly, so JPY → BHD loses nothing before the one rounding.
 */
import { DomainError } from './errors.js';
import { currencyExponent, divRound, parseRate, type Rational, type RoundingMode } from './money.js';

/** A validated FX rate from one currency to another. */
export interface FxRate {
  readonly from: string;
  readonly to: string;
  readonly rate: Rational;
}

/** Validates an FX rate (positive, ≤ 6 decimals); throws `rate_invalid` with `param` "fx_rate". */
export function parseFxRate(from: string, to: string, rate: string): FxRate {
  let parsed: Rational;
  try {
    parsed = parseRate(rate);
  } catch (e) {
    throw new DomainError(
      'rate_invalid',
      e instanceof DomainError ? e.message : 'Invalid FX rate',
      'fx_rate',
    );
  }
  if (parsed.num === 0n) throw new DomainError('rate_invalid', 'FX rate must be positive', 'fx_rate');
  // Exponents are looked up here so an unknown currency fails when the rate is recorded, not in a report.
  currencyExponent(from);
  currencyExponent(to);
  return { from: from.toUpperCase(), to: to.toUpperCase(), rate: parsed };
}

/** Converts minor units of `fx.from` to minor units of `fx.to`, rounded once. */
export function convertMinor(amount: bigint, fx: FxRate, mode: RoundingMode): bigint {
  const shift = currencyExponent(fx.to) - currencyExponent(fx.from);
  const scale = 10n ** BigInt(Math.abs(shift));
  const num = amount * fx.rate.num * (shift > 0 ? scale : 1n);
  const den = fx.rate.den * (shift < 0 ? scale : 1n);
  return divRound(num, den, mode);
}
