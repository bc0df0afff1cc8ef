/**
 * Discounts (EN 16931 allowances) and charges, at line or document level: either a percentage of a
 * base amount or a fixed amount in minor units. A percentage becomes an amount by one rounding of
 * base × percentage / 100 (BT-136 = BT-137 × BT-138), so every amount shown on the invoice is exact.
 */
import { DomainError } from './errors.js';
import { parseRate, percentOf, type Rational, type RoundingMode, toMinor } from './money.js';

/** A discount or charge as entered: exactly one of `percentage` (decimal string) or `amount` (minor units). */
export interface AdjustmentInput {
  readonly percentage?: string;
  readonly amount?: bigint | number | string;
  readonly reason?: string;
}

/** A validated adjustment. */
export type Adjustment =
  | { readonly kind: 'percentage'; readonly percentage: Rational; readonly reason?: string }
  | { readonly kind: 'amount'; readonly amount: bigint; readonly reason?: string };

/** Validates an adjustment (percentage 0–100 with ≤ 6 decimals, or a non-negative amount); throws `discount_invalid`. */
export function parseAdjustment(input: AdjustmentInput, param: string): Adjustment {
  if (typeof input !== 'object' || input === null) {
    throw new DomainError('discount_invalid', 'Discount must be an object', param);
  }
  const hasPercentage = input.percentage !== undefined;
  const hasAmount = input.amount !== undefined;
  if (hasPercentage === hasAmount) {
    throw new DomainError('discount_invalid', 'Give exactly one of percentage or amount', param);
  }
  const reason = input.reason !== undefined ? { reason: input.reason } : {};
  if (input.percentage !== undefined) {
    let percentage: Rational;
    try {
      percentage = parseRate(input.percentage);
    } catch (e) {
      throw new DomainError(
        'discount_invalid',
        e instanceof DomainError ? e.message : 'Invalid percentage',
        `${param}.percentage`,
      );
    }
    if (percentage.num > 100n * percentage.den) {
      throw new DomainError('discount_invalid', 'Percentage must not exceed 100', `${param}.percentage`);
    }
    return { kind: 'percentage', percentage, ...reason };
  }
  let amount: bigint;
  try {
    amount = toMinor(input.amount as bigint | number | string);
  } catch {
    throw new DomainError('discount_invalid', 'Amount must be an integer of minor units', `${param}.amount`);
  }
  if (amount < 0n)
    throw new DomainError('discount_invalid', 'Amount must not be negative', `${param}.amount`);
  return { kind: 'amount', amount, ...reason };
}

/** The amount of an adjustment applied to `base` (a percentage is rounded once with `mode`). */
export function adjustmentAmount(adjustment: Adjustment, base: bigint, mode: RoundingMode): bigint {
  return adjustment.kind === 'amount' ? adjustment.amount : percentOf(base, adjustment.percentage, mode);
}
