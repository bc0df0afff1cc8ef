/**
 * Invoice totals (DESIGN.md §3, EN 16931).
 *
 * 1. Each line: gross = quantity × unit price (÷ price base quantity), rounded once; line
 *    discounts and charges are amounts (a percentage is rounded once on the gross); the line
 *    amount is gross − discounts + charges.
 * 2. Lines are grouped into partitions by their exact set of tax rates. Document discounts and
 *    charges either target one rate set (as EN 16931 allowances with a VAT category do) or are
 *    spread over all partitions in proportion to their line amounts with `allocate`, so the
 *    parts sum exactly. Every split breaks ties by something the lines carry (a partition's key,
 *    a line's amount), never by position, so no figure depends on the order of the lines.
 * 3. Exclusive prices: tax per (category, rate) group = group taxable base × rate, rounded once
 *    (BR-CO-17). A compound rate's base also holds the line's share of the non-compound taxes.
 *    Inclusive prices: per partition, net = gross × 100 / (100 + Σ rates), rounded once, and
 *    tax = gross − net, so the totals equal what the customer saw.
 * 4. total = Σ line nets − document discounts + document charges + Σ group taxes.
 *
 * An invoice uses inclusive or exclusive prices, never both (as in Xero): mixing would make the
 * line amounts shown to the customer mean two different things.
 */
import { type Adjustment, type AdjustmentInput, adjustmentAmount, parseAdjustment } from './discount.js';
import { DomainError } from './errors.js';
import {
  allocate,
  allocateEvenly,
  assertCurrency,
  currencyExponent,
  divRound,
  formatRational,
  parseQuantity,
  type Rational,
  type RoundingMode,
  toMinor,
} from './money.js';
import { type TaxRate, type TaxRateInput, taxGroupKey, type VatCategory, validateTaxRate } from './tax.js';

/** One invoice line as entered. Unit prices are minor units: an integer, or a decimal string for sub-minor prices. */
export interface InvoiceLineInput {
  readonly description?: string;
  readonly quantity: string;
  /** Unit price in minor units (integer). */
  readonly unit_amount?: bigint | number | string;
  /** Unit price in minor units with up to 6 decimals ("0.88" = 0.0088 EUR), for sub-minor prices. */
  readonly unit_amount_decimal?: string;
  /** EN 16931 BT-149: the quantity the unit price is for (default 1). */
  readonly price_base_quantity?: string;
  readonly discounts?: readonly AdjustmentInput[];
  readonly charges?: readonly AdjustmentInput[];
  readonly tax_rates?: readonly TaxRateInput[];
}

/** A document-level discount or charge; with `tax_rates` it applies to that rate set only, else proportionally. */
export interface DocumentAdjustmentInput extends AdjustmentInput {
  readonly tax_rates?: readonly TaxRateInput[];
}

/** The computable content of an invoice (or quote, or draft). */
export interface InvoiceInput {
  readonly currency: string;
  readonly lines: readonly InvoiceLineInput[];
  readonly discounts?: readonly DocumentAdjustmentInput[];
  readonly charges?: readonly DocumentAdjustmentInput[];
  /** EN 16931 BT-113: amount paid before this invoice was issued (minor units). */
  readonly prepaid_amount?: bigint | number | string;
}

/** Options fixed per organisation. */
export interface ComputeOptions {
  readonly rounding: RoundingMode;
}

/** A computed line. `amount` is in the invoice's price mode (gross of tax when inclusive); `net_amount` never is. */
export interface LineTotals {
  readonly index: number;
  /** The quantity in minimal decimal form. */
  readonly quantity: string;
  /** quantity × unit price, rounded once. */
  readonly gross_amount: bigint;
  readonly discount_amount: bigint;
  readonly charge_amount: bigint;
  /** gross − discounts + charges, as shown on the line. */
  readonly amount: bigint;
  /** Tax-exclusive line amount (EN 16931 BT-131); equals `amount` with exclusive prices. */
  readonly net_amount: bigint;
  /** Index into `partitions`. */
  readonly partition: number;
  /** This line's exact share of the partition's taxable amount (after document discounts and charges). */
  readonly taxable_share: bigint;
  /** This line's exact share of each group's tax, by group key. */
  readonly tax_shares: Readonly<Record<string, bigint>>;
}

/** A (category, rate) tax group: one EN 16931 VAT breakdown (BG-23 / UBL TaxSubtotal). */
export interface TaxGroupTotals {
  readonly key: string;
  readonly category: VatCategory;
  readonly percentage: string;
  readonly compound: boolean;
  readonly inclusive: boolean;
  readonly exemption_reason?: string;
  readonly exemption_reason_code?: string;
  readonly taxable_amount: bigint;
  readonly tax_amount: bigint;
}

/** Lines (and targeted document adjustments) sharing one exact set of tax rates. */
export interface PartitionTotals {
  /** Group keys of the rate set, sorted; empty for untaxed lines. */
  readonly group_keys: readonly string[];
  /** Σ line amounts in the price mode. */
  readonly line_amount: bigint;
  /** Document discounts (positive) and charges (negative) landing here, in the price mode. */
  readonly discount_amount: bigint;
  readonly charge_amount: bigint;
  /** Tax-exclusive taxable amount after document discounts and charges. */
  readonly taxable_amount: bigint;
  /** Tax of each group attributable to this partition, by group key; sums per group to the group's tax. */
  readonly taxes: Readonly<Record<string, bigint>>;
}

/** A computed document-level discount or charge. */
export interface DocumentAdjustmentTotals {
  readonly kind: 'discount' | 'charge';
  readonly amount: bigint;
  readonly reason?: string;
  /** Group keys when targeted at one rate set; absent when spread proportionally. */
  readonly group_keys?: readonly string[];
}

/** Everything an invoice shows, exact in minor units. */
export interface InvoiceTotals {
  readonly currency: string;
  readonly exponent: number;
  readonly rounding: RoundingMode;
  readonly tax_inclusive: boolean;
  readonly lines: readonly LineTotals[];
  readonly document_adjustments: readonly DocumentAdjustmentTotals[];
  readonly partitions: readonly PartitionTotals[];
  readonly tax_breakdown: readonly TaxGroupTotals[];
  /** Σ line amounts in the price mode (what the line column adds up to). */
  readonly subtotal: bigint;
  /** EN 16931 BT-106: Σ tax-exclusive line amounts. */
  readonly line_extension_amount: bigint;
  /** EN 16931 BT-107 / BT-108: document discounts and charges, tax-exclusive. */
  readonly allowance_total_amount: bigint;
  readonly charge_total_amount: bigint;
  /** EN 16931 BT-109: total without tax. */
  readonly tax_exclusive_amount: bigint;
  /** EN 16931 BT-110: Σ group taxes. */
  readonly tax_amount: bigint;
  /** EN 16931 BT-112: total with tax. */
  readonly total: bigint;
  readonly prepaid_amount: bigint;
  /** EN 16931 BT-115: total − prepaid. */
  readonly amount_due: bigint;
}

/** Upper bound on lines per document: far above any real invoice, low enough to bound the work per request. */
export const MAX_INVOICE_LINES = 1000;

interface ParsedLine {
  readonly quantity: Rational;
  readonly gross: bigint;
  readonly discount: bigint;
  readonly charge: bigint;
  readonly amount: bigint;
  readonly partitionKey: string;
}

interface ParsedDocAdjustment {
  readonly kind: 'discount' | 'charge';
  readonly adjustment: Adjustment;
  readonly reason?: string;
  readonly partitionKey?: string;
  readonly param: string;
}

/** Splits `total` by `weights` exactly; all-zero weights share evenly (only reachable with a zero total in practice). */
function share(total: bigint, weights: readonly bigint[]): bigint[] {
  if (weights.length === 0) return [];
  if (total === 0n) return weights.map(() => 0n);
  return weights.some((w) => w > 0n) ? allocate(total, weights) : allocateEvenly(total, weights.length);
}

/**
 * `share` with ties broken by `keys` (unique), not by position: partitions are numbered in order of
 * first appearance, so a split across partitions taken in that order would let the order of the
 * lines decide which partition receives a leftover unit (and, through a compound rate's base, a
 * group total). Parts are returned in the positions of `weights`.
 */
function shareByKey(total: bigint, weights: readonly bigint[], keys: readonly string[]): bigint[] {
  const order = weights.map((_, i) => i);
  order.sort((a, b) => {
    const ka = keys[a] as string;
    const kb = keys[b] as string;
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
  const parts = share(
    total,
    order.map((i) => weights[i] ?? 0n),
  );
  const out: bigint[] = weights.map(() => 0n);
  order.forEach((i, k) => {
    out[i] = parts[k] ?? 0n;
  });
  return out;
}

function rethrowAt(e: unknown, param: string): never {
  if (e instanceof DomainError) throw new DomainError(e.code, e.message, param, e.details);
  throw e;
}

function parseUnitPrice(line: InvoiceLineInput, param: string): Rational {
  if ((line.unit_amount === undefined) === (line.unit_amount_decimal === undefined)) {
    throw new DomainError('amount_invalid', 'Give exactly one of unit_amount or unit_amount_decimal', param);
  }
  if (line.unit_amount !== undefined) {
    let amount: bigint;
    try {
      amount = toMinor(line.unit_amount);
    } catch (e) {
      rethrowAt(e, `${param}.unit_amount`);
    }
    if (amount < 0n) {
      throw new DomainError('amount_invalid', 'Unit price must not be negative', `${param}.unit_amount`);
    }
    return { num: amount, den: 1n };
  }
  try {
    // Same grammar as a quantity: non-negative, at most 6 decimals.
    return parseQuantity(line.unit_amount_decimal as string);
  } catch {
    throw new DomainError(
      'amount_invalid',
      'unit_amount_decimal must be a non-negative decimal of minor units with at most 6 decimals',
      `${param}.unit_amount_decimal`,
    );
  }
}

function parseRates(
  inputs: readonly TaxRateInput[] | undefined,
  param: string,
  registry: Map<string, TaxRate>,
): { key: string } {
  const keys = new Set<string>();
  listAt(inputs, param).forEach((input, j) => {
    const rate = validateTaxRate(input, `${param}.${j}`);
    const key = taxGroupKey(rate);
    if (keys.has(key)) {
      throw new DomainError('tax_rate_invalid', 'The same tax rate is listed twice', `${param}.${j}`);
    }
    keys.add(key);
    if (!registry.has(key)) registry.set(key, rate);
  });
  // JSON keeps the encoding unambiguous: group keys hold free-text exemption reasons.
  return { key: JSON.stringify([...keys].sort()) };
}

/** An optional list from input: absent is empty, anything but an array is refused at `param`. */
function listAt<T>(list: readonly T[] | undefined, param: string): readonly T[] {
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw new DomainError('validation_failed', 'Must be a list', param);
  return list;
}

function groupKeysOfPartition(partitionKey: string): string[] {
  return JSON.parse(partitionKey) as string[];
}

function sum(values: Iterable<bigint>): bigint {
  let total = 0n;
  for (const v of values) total += v;
  return total;
}

/** Computes every amount of an invoice exactly (EN 16931 rounding); throws DomainError with a `param` path. */
export function computeInvoice(input: InvoiceInput, options: ComputeOptions): InvoiceTotals {
  const mode = options.rounding;
  if (mode !== 'half_up' && mode !== 'half_even') {
    throw new DomainError('validation_failed', 'Rounding must be half_up or half_even', 'rounding');
  }
  const currency = assertCurrency(input.currency);
  const exponent = currencyExponent(currency);
  if (!Array.isArray(input.lines)) {
    throw new DomainError('validation_failed', 'lines must be a list', 'lines');
  }
  if (input.lines.length > MAX_INVOICE_LINES) {
    throw new DomainError('validation_failed', `At most ${MAX_INVOICE_LINES} lines`, 'lines');
  }

  const registry = new Map<string, TaxRate>();
  const partitionKeys: string[] = [];
  const partitionIndex = new Map<string, number>();
  const partitionOf = (key: string): number => {
    let index = partitionIndex.get(key);
    if (index === undefined) {
      index = partitionKeys.length;
      partitionKeys.push(key);
      partitionIndex.set(key, index);
    }
    return index;
  };

  const lines: ParsedLine[] = input.lines.map((line, i) => {
    const param = `lines.${i}`;
    if (typeof line !== 'object' || line === null) {
      throw new DomainError('validation_failed', 'Line must be an object', param);
    }
    let quantity: Rational;
    try {
      quantity = parseQuantity(line.quantity);
    } catch (e) {
      rethrowAt(e, `${param}.quantity`);
    }
    let baseQuantity: Rational = { num: 1n, den: 1n };
    if (line.price_base_quantity !== undefined) {
      try {
        baseQuantity = parseQuantity(line.price_base_quantity);
      } catch (e) {
        rethrowAt(e, `${param}.price_base_quantity`);
      }
      if (baseQuantity.num === 0n) {
        throw new DomainError(
          'quantity_invalid',
          'Price base quantity must be above 0',
          `${param}.price_base_quantity`,
        );
      }
    }
    const unit = parseUnitPrice(line, param);
    const gross = divRound(
      quantity.num * unit.num * baseQuantity.den,
      quantity.den * unit.den * baseQuantity.num,
      mode,
    );
    const discount = sum(
      listAt<AdjustmentInput>(line.discounts, `${param}.discounts`).map((d, j) =>
        adjustmentAmount(parseAdjustment(d, `${param}.discounts.${j}`), gross, mode),
      ),
    );
    const charge = sum(
      listAt<AdjustmentInput>(line.charges, `${param}.charges`).map((c, j) =>
        adjustmentAmount(parseAdjustment(c, `${param}.charges.${j}`), gross, mode),
      ),
    );
    const amount = gross - discount + charge;
    if (amount < 0n) {
      throw new DomainError(
        'discount_invalid',
        'Line discounts exceed the line amount',
        `${param}.discounts`,
      );
    }
    const { key } = parseRates(line.tax_rates, `${param}.tax_rates`, registry);
    partitionOf(key);
    return { quantity, gross, discount, charge, amount, partitionKey: key };
  });

  const docAdjustments: ParsedDocAdjustment[] = [];
  for (const [kind, list] of [
    ['discount', listAt(input.discounts, 'discounts')],
    ['charge', listAt(input.charges, 'charges')],
  ] as const) {
    list.forEach((d, j) => {
      const param = `${kind === 'discount' ? 'discounts' : 'charges'}.${j}`;
      const adjustment = parseAdjustment(d, param);
      const targeted = d.tax_rates !== undefined;
      const parsed = targeted ? parseRates(d.tax_rates, `${param}.tax_rates`, registry) : undefined;
      if (parsed !== undefined) partitionOf(parsed.key);
      docAdjustments.push({
        kind,
        adjustment,
        ...(d.reason !== undefined ? { reason: d.reason } : {}),
        ...(parsed !== undefined ? { partitionKey: parsed.key } : {}),
        param,
      });
    });
  }

  const allRates = [...registry.values()];
  const inclusive = allRates.some((r) => r.inclusive);
  if (inclusive && allRates.some((r) => !r.inclusive)) {
    throw new DomainError(
      'tax_inclusive_mixed',
      'An invoice cannot mix tax-inclusive and tax-exclusive rates',
      'lines',
    );
  }

  const partitionCount = partitionKeys.length;
  const lineAmountByPartition: bigint[] = Array.from({ length: partitionCount }, () => 0n);
  lines.forEach((l) => {
    const p = partitionOf(l.partitionKey);
    lineAmountByPartition[p] = (lineAmountByPartition[p] ?? 0n) + l.amount;
  });
  const totalLineAmount = sum(lineAmountByPartition);

  const discountByPartition: bigint[] = Array.from({ length: partitionCount }, () => 0n);
  const chargeByPartition: bigint[] = Array.from({ length: partitionCount }, () => 0n);
  let proportionalDiscount = 0n;
  let proportionalCharge = 0n;
  const adjustmentTotals: DocumentAdjustmentTotals[] = docAdjustments.map((d) => {
    const p = d.partitionKey !== undefined ? partitionOf(d.partitionKey) : undefined;
    const base = p !== undefined ? (lineAmountByPartition[p] ?? 0n) : totalLineAmount;
    const amount = adjustmentAmount(d.adjustment, base, mode);
    if (inclusive && d.kind === 'charge') {
      throw new DomainError(
        'discount_invalid',
        'Document charges are supported with tax-exclusive prices only',
        d.param,
      );
    }
    const target = d.kind === 'discount' ? discountByPartition : chargeByPartition;
    if (p !== undefined) target[p] = (target[p] ?? 0n) + amount;
    else if (d.kind === 'discount') proportionalDiscount += amount;
    else proportionalCharge += amount;
    return {
      kind: d.kind,
      amount,
      ...(d.reason !== undefined ? { reason: d.reason } : {}),
      ...(d.partitionKey !== undefined ? { group_keys: groupKeysOfPartition(d.partitionKey) } : {}),
    };
  });
  for (const [amount, target, param] of [
    [proportionalDiscount, discountByPartition, 'discounts'],
    [proportionalCharge, chargeByPartition, 'charges'],
  ] as const) {
    if (amount === 0n) continue;
    if (totalLineAmount === 0n) {
      throw new DomainError('discount_invalid', 'There are no line amounts to spread this over', param);
    }
    shareByKey(amount, lineAmountByPartition, partitionKeys).forEach((part, p) => {
      target[p] = (target[p] ?? 0n) + part;
    });
  }

  // Amount of each partition after document adjustments, in the price mode.
  const adjusted = lineAmountByPartition.map(
    (l, p) => l - (discountByPartition[p] ?? 0n) + (chargeByPartition[p] ?? 0n),
  );
  if (adjusted.some((a) => a < 0n)) {
    throw new DomainError(
      'discount_invalid',
      'Document discounts exceed the amounts they apply to',
      'discounts',
    );
  }

  const groupKeysOf = partitionKeys.map(groupKeysOfPartition);
  const taxable: bigint[] = [];
  const lineNetByPartition: bigint[] = [];
  const cells: Map<string, bigint>[] = Array.from({ length: partitionCount }, () => new Map());
  const groupBase = new Map<string, bigint>();
  const groupTax = new Map<string, bigint>();
  const rateOf = (key: string): TaxRate => registry.get(key) as TaxRate;

  if (!inclusive) {
    for (let p = 0; p < partitionCount; p++) {
      taxable.push(adjusted[p] ?? 0n);
      lineNetByPartition.push(lineAmountByPartition[p] ?? 0n);
    }
    // Simple rates first: a compound rate's base needs their amounts.
    const groupOrder = [...registry.keys()].sort(
      (a, b) => Number(rateOf(a).compound) - Number(rateOf(b).compound),
    );
    for (const g of groupOrder) {
      const rate = rateOf(g);
      const members = groupKeysOf.flatMap((keys, p) => (keys.includes(g) ? [p] : []));
      const bases = members.map((p) => {
        if (!rate.compound) return taxable[p] ?? 0n;
        let base = taxable[p] ?? 0n;
        for (const h of groupKeysOf[p] ?? []) if (!rateOf(h).compound) base += cells[p]?.get(h) ?? 0n;
        return base;
      });
      const base = sum(bases);
      const tax = divRound(base * rate.rate.num, rate.rate.den * 100n, mode);
      groupBase.set(g, base);
      groupTax.set(g, tax);
      shareByKey(
        tax,
        bases,
        members.map((p) => partitionKeys[p] as string),
      ).forEach((part, m) => {
        cells[members[m] as number]?.set(g, part);
      });
    }
  } else {
    for (let p = 0; p < partitionCount; p++) {
      const keys = groupKeysOf[p] ?? [];
      const rates = keys.map(rateOf);
      // Σ rates as one fraction over a common denominator, to divide gross by (100 + Σ rates) exactly.
      const den = rates.reduce((d, r) => (d % r.rate.den === 0n ? d : d * r.rate.den), 1n);
      const numerators = rates.map((r) => r.rate.num * (den / r.rate.den));
      const rateSum = sum(numerators);
      const gross = adjusted[p] ?? 0n;
      const grossLines = lineAmountByPartition[p] ?? 0n;
      const net = divRound(gross * 100n * den, 100n * den + rateSum, mode);
      taxable.push(net);
      lineNetByPartition.push(divRound(grossLines * 100n * den, 100n * den + rateSum, mode));
      share(gross - net, numerators).forEach((part, m) => {
        const g = keys[m] as string;
        cells[p]?.set(g, part);
        groupTax.set(g, (groupTax.get(g) ?? 0n) + part);
        groupBase.set(g, (groupBase.get(g) ?? 0n) + net);
      });
    }
  }

  // Per-line figures: nets, and exact shares of the partition's taxable amount and taxes (credit notes use them).
  // Members are taken larger amounts first so a leftover unit goes by amount, not by position: a line's
  // figures then do not depend on line order (lines of equal amount are interchangeable).
  const linesByPartition: number[][] = Array.from({ length: partitionCount }, () => []);
  lines.forEach((l, i) => {
    linesByPartition[partitionOf(l.partitionKey)]?.push(i);
  });
  for (const members of linesByPartition) {
    members.sort((a, b) => {
      const x = lines[a]?.amount ?? 0n;
      const y = lines[b]?.amount ?? 0n;
      return x === y ? a - b : x > y ? -1 : 1;
    });
  }
  const lineNet: bigint[] = lines.map((l) => l.amount);
  const lineTaxable: bigint[] = lines.map(() => 0n);
  const lineTaxes: Record<string, bigint>[] = lines.map(() => ({}));
  linesByPartition.forEach((members, p) => {
    if (members.length === 0) return;
    const amounts = members.map((i) => lines[i]?.amount ?? 0n);
    if (inclusive) {
      share(lineNetByPartition[p] ?? 0n, amounts).forEach((n, m) => {
        lineNet[members[m] as number] = n;
      });
    }
    const taxableShares = share(
      taxable[p] ?? 0n,
      members.map((i) => lineNet[i] ?? 0n),
    );
    taxableShares.forEach((t, m) => {
      lineTaxable[members[m] as number] = t;
    });
    for (const [g, tax] of cells[p] ?? []) {
      share(tax, taxableShares).forEach((part, m) => {
        const record = lineTaxes[members[m] as number];
        if (record !== undefined) record[g] = part;
      });
    }
  });

  const lineTotals: LineTotals[] = lines.map((l, i) => ({
    index: i,
    quantity: formatRational(l.quantity),
    gross_amount: l.gross,
    discount_amount: l.discount,
    charge_amount: l.charge,
    amount: l.amount,
    net_amount: lineNet[i] ?? 0n,
    partition: partitionOf(l.partitionKey),
    taxable_share: lineTaxable[i] ?? 0n,
    tax_shares: lineTaxes[i] ?? {},
  }));

  const partitions: PartitionTotals[] = partitionKeys.map((_, p) => ({
    group_keys: groupKeysOf[p] ?? [],
    line_amount: lineAmountByPartition[p] ?? 0n,
    discount_amount: discountByPartition[p] ?? 0n,
    charge_amount: chargeByPartition[p] ?? 0n,
    taxable_amount: taxable[p] ?? 0n,
    taxes: Object.fromEntries(cells[p] ?? []),
  }));

  const taxBreakdown: TaxGroupTotals[] = [...registry.entries()].map(([key, rate]) => ({
    key,
    category: rate.category,
    percentage: rate.percentage,
    compound: rate.compound,
    inclusive: rate.inclusive,
    ...(rate.exemption_reason !== undefined ? { exemption_reason: rate.exemption_reason } : {}),
    ...(rate.exemption_reason_code !== undefined
      ? { exemption_reason_code: rate.exemption_reason_code }
      : {}),
    taxable_amount: groupBase.get(key) ?? 0n,
    tax_amount: groupTax.get(key) ?? 0n,
  }));

  const lineExtension = sum(lineNet);
  const taxExclusive = sum(taxable);
  let allowanceTotal: bigint;
  let chargeTotal: bigint;
  if (inclusive) {
    // Net value of the document discounts: what they took off the tax-exclusive amount.
    allowanceTotal = lineExtension - taxExclusive;
    chargeTotal = 0n;
  } else {
    allowanceTotal = sum(discountByPartition);
    chargeTotal = sum(chargeByPartition);
  }
  const taxAmount = sum(groupTax.values());
  const total = taxExclusive + taxAmount;
  let prepaid = 0n;
  if (input.prepaid_amount !== undefined) {
    try {
      prepaid = toMinor(input.prepaid_amount);
    } catch (e) {
      rethrowAt(e, 'prepaid_amount');
    }
    if (prepaid < 0n || prepaid > total) {
      throw new DomainError(
        'amount_invalid',
        'Prepaid amount must be between 0 and the total',
        'prepaid_amount',
      );
    }
  }

  return {
    currency,
    exponent,
    rounding: mode,
    tax_inclusive: inclusive,
    lines: lineTotals,
    document_adjustments: adjustmentTotals,
    partitions,
    tax_breakdown: taxBreakdown,
    subtotal: totalLineAmount,
    line_extension_amount: lineExtension,
    allowance_total_amount: allowanceTotal,
    charge_total_amount: chargeTotal,
    tax_exclusive_amount: taxExclusive,
    tax_amount: taxAmount,
    total,
    prepaid_amount: prepaid,
    amount_due: total - prepaid,
  };
}
