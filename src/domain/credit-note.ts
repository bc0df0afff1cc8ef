/**
 * Credit notes against a finalised invoice: the whole remainder, an amount, or lines (by quantity).
 *
 * An invoice is viewed as a vector of components: the taxable amount of each rate-set partition
 * and the tax of each (category, rate) group. Every credit note credits a part of each component,
 * and the sum of all credit notes never exceeds any component, so neither the net nor the tax of
 * any group can be over-credited. Amount credits are split with `allocate` over what is still
 * creditable, which keeps each part within its component (largest remainder never rounds a part
 * above its exact share's ceiling, and that ceiling is within the component).
 */
import { DomainError } from './errors.js';
import type { InvoiceTotals } from './invoice.js';
import type { InvoiceStatus } from './invoice-transitions.js';
import {
  allocate,
  divRound,
  formatRational,
  parseQuantity,
  type Rational,
  type RoundingMode,
  toMinor,
} from './money.js';
import type { VatCategory } from './tax.js';

/** What to credit. Line quantities default to everything not yet credited on that line. */
export type CreditRequest =
  | { readonly kind: 'full' }
  | { readonly kind: 'amount'; readonly amount: bigint | number | string }
  | {
      readonly kind: 'lines';
      readonly lines: readonly { readonly line: number; readonly quantity?: string }[];
    };

/** One credited invoice line. */
export interface CreditNoteLine {
  readonly line: number;
  readonly quantity: string;
  readonly taxable_amount: bigint;
  readonly taxes: Readonly<Record<string, bigint>>;
}

/** A credit note's tax breakdown entry, in the invoice's groups. */
export interface CreditTaxGroup {
  readonly key: string;
  readonly category: VatCategory;
  readonly percentage: string;
  readonly exemption_reason?: string;
  readonly taxable_amount: bigint;
  readonly tax_amount: bigint;
}

/** A computed credit note. */
export interface CreditNoteTotals {
  readonly currency: string;
  readonly kind: CreditRequest['kind'];
  /** Taxable amount credited per invoice partition (same indexes as `InvoiceTotals.partitions`). */
  readonly partitions: readonly bigint[];
  /** Tax credited per invoice group key. */
  readonly taxes: Readonly<Record<string, bigint>>;
  /** Credited lines (line credits only). */
  readonly lines: readonly CreditNoteLine[];
  readonly tax_breakdown: readonly CreditTaxGroup[];
  readonly tax_exclusive_amount: bigint;
  readonly tax_amount: bigint;
  readonly total: bigint;
}

/** What is still creditable on an invoice, per component. */
export interface CreditableRemainder {
  readonly partitions: readonly bigint[];
  readonly taxes: Readonly<Record<string, bigint>>;
  readonly total: bigint;
}

const CREDITABLE_STATUSES: ReadonlySet<InvoiceStatus> = new Set(['open', 'paid']);

function exceeds(message: string, param: string): DomainError {
  return new DomainError('credit_exceeds_remaining', message, param);
}

function groupKeys(invoice: InvoiceTotals): string[] {
  return invoice.tax_breakdown.map((g) => g.key);
}

/** What remains creditable on an invoice after the given earlier credit notes. */
export function creditableRemainder(
  invoice: InvoiceTotals,
  prior: readonly CreditNoteTotals[],
): CreditableRemainder {
  const partitions = invoice.partitions.map(
    (p, i) => p.taxable_amount - sumOf(prior, (c) => c.partitions[i] ?? 0n),
  );
  const taxes: Record<string, bigint> = {};
  for (const g of invoice.tax_breakdown)
    taxes[g.key] = g.tax_amount - sumOf(prior, (c) => c.taxes[g.key] ?? 0n);
  const total = partitions.reduce((a, b) => a + b, 0n) + Object.values(taxes).reduce((a, b) => a + b, 0n);
  return { partitions, taxes, total };
}

function sumOf<T>(items: readonly T[], f: (item: T) => bigint): bigint {
  let total = 0n;
  for (const item of items) total += f(item);
  return total;
}

function rationalLe(a: Rational, b: Rational): boolean {
  return a.num * b.den <= b.num * a.den;
}

/**
 * Computes a credit note for a finalised (open or paid) invoice given the earlier credit notes;
 * throws `credit_exceeds_remaining` when it would credit more than is left on any component.
 */
export function computeCreditNote(
  invoice: InvoiceTotals,
  status: InvoiceStatus,
  prior: readonly CreditNoteTotals[],
  request: CreditRequest,
  options: { readonly rounding: RoundingMode },
): CreditNoteTotals {
  if (!CREDITABLE_STATUSES.has(status)) {
    throw new DomainError('invoice_not_open', `A ${status} invoice cannot be credited`, 'invoice', {
      status,
    });
  }
  if (
    typeof request !== 'object' ||
    request === null ||
    !['full', 'amount', 'lines'].includes(request.kind)
  ) {
    throw new DomainError('validation_failed', 'Credit kind must be full, amount or lines', 'kind');
  }
  const remainder = creditableRemainder(invoice, prior);
  const keys = groupKeys(invoice);
  let partitions: bigint[];
  let taxes: Record<string, bigint>;
  let lines: CreditNoteLine[] = [];

  if (request.kind === 'full') {
    if (remainder.total <= 0n) throw exceeds('Nothing is left to credit on this invoice', 'invoice');
    partitions = [...remainder.partitions];
    taxes = { ...remainder.taxes };
  } else if (request.kind === 'amount') {
    let amount: bigint;
    try {
      amount = toMinor(request.amount);
    } catch {
      throw new DomainError('amount_invalid', 'Amount must be an integer of minor units', 'amount');
    }
    if (amount <= 0n) throw new DomainError('amount_invalid', 'Amount must be positive', 'amount');
    if (amount > remainder.total) {
      throw exceeds('Amount exceeds what is left to credit on this invoice', 'amount');
    }
    const weights = [...remainder.partitions, ...keys.map((k) => remainder.taxes[k] ?? 0n)];
    const parts = allocate(amount, weights);
    partitions = parts.slice(0, remainder.partitions.length);
    taxes = Object.fromEntries(keys.map((k, i) => [k, parts[remainder.partitions.length + i] ?? 0n]));
  } else {
    ({ partitions, taxes, lines } = creditLines(invoice, prior, request.lines, options.rounding));
    partitions.forEach((amount, i) => {
      if (amount > (remainder.partitions[i] ?? 0n))
        throw exceeds('Lines exceed what is left to credit', 'lines');
    });
    for (const k of keys) {
      if ((taxes[k] ?? 0n) > (remainder.taxes[k] ?? 0n))
        throw exceeds('Lines exceed what is left to credit', 'lines');
    }
  }

  const taxExclusive = partitions.reduce((a, b) => a + b, 0n);
  const taxAmount = keys.reduce((a, k) => a + (taxes[k] ?? 0n), 0n);
  const breakdown: CreditTaxGroup[] = invoice.tax_breakdown.map((g) => {
    const tax = taxes[g.key] ?? 0n;
    // Simple groups: the credited taxable parts of their partitions. Compound groups' bases also
    // hold other taxes, so they are scaled by the share of the group's tax credited.
    let taxable = invoice.partitions.reduce(
      (a, p, i) => (p.group_keys.includes(g.key) ? a + (partitions[i] ?? 0n) : a),
      0n,
    );
    if (g.compound && g.tax_amount > 0n)
      taxable = divRound(g.taxable_amount * tax, g.tax_amount, options.rounding);
    return {
      key: g.key,
      category: g.category,
      percentage: g.percentage,
      ...(g.exemption_reason !== undefined ? { exemption_reason: g.exemption_reason } : {}),
      taxable_amount: taxable,
      tax_amount: tax,
    };
  });
  return {
    currency: invoice.currency,
    kind: request.kind,
    partitions,
    taxes,
    lines,
    tax_breakdown: breakdown,
    tax_exclusive_amount: taxExclusive,
    tax_amount: taxAmount,
    total: taxExclusive + taxAmount,
  };
}

function creditLines(
  invoice: InvoiceTotals,
  prior: readonly CreditNoteTotals[],
  requested: readonly { readonly line: number; readonly quantity?: string }[],
  mode: RoundingMode,
): { partitions: bigint[]; taxes: Record<string, bigint>; lines: CreditNoteLine[] } {
  if (!Array.isArray(requested) || requested.length === 0) {
    throw new DomainError('validation_failed', 'Name at least one line to credit', 'lines');
  }
  const partitions = invoice.partitions.map(() => 0n);
  const taxes: Record<string, bigint> = {};
  const seen = new Set<number>();
  const lines = requested.map((r, i): CreditNoteLine => {
    const param = `lines.${i}`;
    const line = Number.isSafeInteger(r.line) ? invoice.lines[r.line] : undefined;
    if (line === undefined)
      throw new DomainError('validation_failed', 'No such invoice line', `${param}.line`);
    if (seen.has(r.line)) throw new DomainError('validation_failed', 'Line listed twice', `${param}.line`);
    seen.add(r.line);

    const invoiced = parseQuantity(line.quantity);
    const earlier = prior.flatMap((c) => c.lines.filter((l) => l.line === r.line));
    const creditedQty = earlier.reduce<Rational>(
      (acc, l) => {
        const q = parseQuantity(l.quantity);
        return { num: acc.num * q.den + q.num * acc.den, den: acc.den * q.den };
      },
      { num: 0n, den: 1n },
    );
    const left: Rational = {
      num: invoiced.num * creditedQty.den - creditedQty.num * invoiced.den,
      den: invoiced.den * creditedQty.den,
    };
    let quantity: Rational;
    if (r.quantity === undefined) {
      if (left.num <= 0n) throw exceeds('Nothing is left to credit on this line', `${param}.line`);
      quantity = left;
    } else {
      try {
        quantity = parseQuantity(r.quantity);
      } catch (e) {
        throw e instanceof DomainError ? new DomainError(e.code, e.message, `${param}.quantity`) : e;
      }
    }
    if (quantity.num <= 0n)
      throw new DomainError('quantity_invalid', 'Quantity must be positive', `${param}.quantity`);
    if (!rationalLe(quantity, left))
      throw exceeds('Quantity exceeds what is left to credit on this line', `${param}.quantity`);

    const completes = rationalLe(left, quantity);
    const creditedTaxable = sumOf(earlier, (l) => l.taxable_amount);
    const leftTaxable = line.taxable_share - creditedTaxable;
    // Completing a line credits exactly what is left of it; a part is rounded once and capped.
    const portion = (full: bigint, left_: bigint): bigint => {
      if (completes) return left_;
      const part = divRound(full * quantity.num * invoiced.den, quantity.den * invoiced.num, mode);
      return part > left_ ? left_ : part;
    };
    const taxable = portion(line.taxable_share, leftTaxable);
    const lineTaxes: Record<string, bigint> = {};
    for (const [k, full] of Object.entries(line.tax_shares)) {
      const leftTax = full - sumOf(earlier, (l) => l.taxes[k] ?? 0n);
      lineTaxes[k] = portion(full, leftTax);
      taxes[k] = (taxes[k] ?? 0n) + (lineTaxes[k] ?? 0n);
    }
    partitions[line.partition] = (partitions[line.partition] ?? 0n) + taxable;
    return { line: r.line, quantity: formatRational(quantity), taxable_amount: taxable, taxes: lineTaxes };
  });
  return { partitions, taxes, lines };
}

/** How a credit note's total lands: against the invoice's remainder first, the rest as customer credit. */
export function splitCreditApplication(
  creditTotal: bigint,
  invoiceStatus: InvoiceStatus,
  amountRemaining: bigint,
): { readonly applied_to_invoice: bigint; readonly customer_credit: bigint } {
  const applicable =
    invoiceStatus === 'open' ? (amountRemaining < creditTotal ? amountRemaining : creditTotal) : 0n;
  return { applied_to_invoice: applicable, customer_credit: creditTotal - applicable };
}
