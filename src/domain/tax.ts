/**
 * Tax rates (DESIGN.md §3): a percentage as a decimal string, inclusive or exclusive, optionally
 * compound, with an EN 16931 VAT category (UNCL5305 subset) and, where the standard requires it,
 * an exemption reason.
 */
import { DomainError } from './errors.js';
import { formatRational, parseRate, type Rational, rational } from './money.js';

/** EN 16931 VAT category codes (BT-118/BT-151). */
export const VAT_CATEGORIES = ['S', 'Z', 'E', 'AE', 'K', 'G', 'O', 'L', 'M'] as const;

/** One EN 16931 VAT category code. */
export type VatCategory = (typeof VAT_CATEGORIES)[number];

/**
 * Categories whose rate must be 0: zero-rated, exempt, reverse charge (the buyer accounts for the
 * tax, so none is charged), intra-community, export, and not subject to VAT (BR-Z/E/AE/K/G/O-05).
 */
const ZERO_RATE_CATEGORIES: ReadonlySet<VatCategory> = new Set(['Z', 'E', 'AE', 'K', 'G', 'O']);

/** Categories for which EN 16931 requires an exemption reason text or code (BR-E/AE/K/G/O-10). */
const REASON_REQUIRED: ReadonlySet<VatCategory> = new Set(['E', 'AE', 'K', 'G', 'O']);

/** A tax rate as configured (input shape; `percentage` is a decimal string like "20" or "7.125"). */
export interface TaxRateInput {
  /** Stable identity of the configured rate (e.g. `txr_…`); not needed for computation. */
  readonly id?: string;
  readonly name?: string;
  readonly percentage: string;
  readonly inclusive?: boolean;
  readonly compound?: boolean;
  readonly category: string;
  readonly exemption_reason?: string;
  readonly exemption_reason_code?: string;
}

/** A validated tax rate with its percentage parsed to an exact rational. */
export interface TaxRate {
  readonly id?: string;
  readonly name?: string;
  /** The percentage in minimal decimal form ("20", "7.125"). */
  readonly percentage: string;
  readonly rate: Rational;
  readonly inclusive: boolean;
  readonly compound: boolean;
  readonly category: VatCategory;
  readonly exemption_reason?: string;
  readonly exemption_reason_code?: string;
}

const HUNDRED = rational(100n, 1n);

function invalid(message: string, param: string): DomainError {
  return new DomainError('tax_rate_invalid', message, param);
}

function optionalText(value: unknown, param: string): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string' || value.length > 300)
    throw invalid('Must be a text of at most 300 characters', param);
  return value.trim();
}

/** Validates a tax rate against the EN 16931 category rules; throws `tax_rate_invalid` at `param`. */
export function validateTaxRate(input: TaxRateInput, param = 'tax_rate'): TaxRate {
  if (typeof input !== 'object' || input === null) throw invalid('Tax rate must be an object', param);
  // A frozen input cannot change, so its (frozen) result is kept: an invoice's lines share their
  // rates (one frozen input per rate, see resolveLines), so each is validated once.
  const frozen = Object.isFrozen(input);
  const known = frozen ? validatedRates.get(input) : undefined;
  if (known) return known;
  const rate = checkTaxRate(input, param);
  if (frozen) validatedRates.set(input, Object.freeze(rate));
  return rate;
}

const validatedRates = new WeakMap<TaxRateInput, TaxRate>();

function checkTaxRate(input: TaxRateInput, param: string): TaxRate {
  const category = input.category as VatCategory;
  if (!VAT_CATEGORIES.includes(category)) {
    throw invalid(`Category must be one of ${VAT_CATEGORIES.join(', ')}`, `${param}.category`);
  }
  let rate: Rational;
  try {
    rate = parseRate(input.percentage);
  } catch (e) {
    throw invalid(e instanceof DomainError ? e.message : 'Invalid percentage', `${param}.percentage`);
  }
  if (rate.num * HUNDRED.den > HUNDRED.num * rate.den) {
    throw invalid('Percentage must not exceed 100', `${param}.percentage`);
  }
  if (ZERO_RATE_CATEGORIES.has(category) && rate.num !== 0n) {
    throw invalid(`Category ${category} requires a 0 percentage`, `${param}.percentage`);
  }
  if (category === 'S' && rate.num === 0n) {
    // BR-S-05: standard rate is strictly positive; a 0 % rate is Z (zero-rated) or E (exempt).
    throw invalid('Category S requires a percentage above 0 (use Z or E for 0 %)', `${param}.percentage`);
  }
  const reason = optionalText(input.exemption_reason, `${param}.exemption_reason`);
  const reasonCode = optionalText(input.exemption_reason_code, `${param}.exemption_reason_code`);
  if (REASON_REQUIRED.has(category) && reason === '' && reasonCode === '') {
    throw invalid(`Category ${category} requires an exemption reason`, `${param}.exemption_reason`);
  }
  if (!REASON_REQUIRED.has(category) && (reason !== '' || reasonCode !== '')) {
    // BR-S/Z/L/M-10: a taxable category must not carry an exemption reason.
    throw invalid(`Category ${category} must not carry an exemption reason`, `${param}.exemption_reason`);
  }
  const inclusive = input.inclusive === true;
  const compound = input.compound === true;
  if (compound && rate.num === 0n) throw invalid('A compound rate must be above 0', `${param}.compound`);
  if (compound && inclusive) {
    throw invalid('Compound rates are supported with exclusive prices only', `${param}.compound`);
  }
  return {
    ...(input.id !== undefined ? { id: input.id } : {}),
    ...(input.name !== undefined ? { name: input.name } : {}),
    percentage: formatRational(rate),
    rate,
    inclusive,
    compound,
    category,
    ...(reason !== '' ? { exemption_reason: reason } : {}),
    ...(reasonCode !== '' ? { exemption_reason_code: reasonCode } : {}),
  };
}

/**
 * The key of a tax breakdown group: EN 16931 groups by (category, rate) (BG-23); a compound rate is
 * kept apart because its taxable base differs from a simple rate's of the same percentage, and
 * exempt amounts with different legal reasons are reported apart because each breakdown carries one reason.
 */
export function taxGroupKey(rate: TaxRate): string {
  const reason = rate.exemption_reason_code ?? rate.exemption_reason;
  return `${rate.category}:${rate.percentage}${rate.compound ? ':compound' : ''}${reason !== undefined ? `:${reason}` : ''}`;
}

/** Whether a category charges no tax (zero-rated, exempt, reverse charge, export, out of scope). */
export function isZeroRateCategory(category: VatCategory): boolean {
  return ZERO_RATE_CATEGORIES.has(category);
}
