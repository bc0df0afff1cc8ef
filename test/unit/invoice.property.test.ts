// Property tests of the invoice computation (DESIGN.md §3): totals reconcile, every group's tax is
// its base × rate rounded once, allocations are exact, and line order does not matter.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isDomainError } from '../../src/domain/errors.js';
import {
  computeInvoice,
  type DocumentAdjustmentInput,
  type InvoiceInput,
  type InvoiceLineInput,
  type InvoiceTotals,
} from '../../src/domain/invoice.js';
import { divRound, mulQuantity, parseRate, percentOf, type RoundingMode } from '../../src/domain/money.js';
import type { TaxRateInput } from '../../src/domain/tax.js';

const EXCLUSIVE_RATES: readonly TaxRateInput[] = [
  { percentage: '20', category: 'S' },
  { percentage: '5.5', category: 'S' },
  { percentage: '7.125', category: 'S' },
  { percentage: '0', category: 'Z' },
  { percentage: '0', category: 'AE', exemption_reason: 'Reverse charge' },
  { percentage: '9.975', category: 'S', compound: true },
  { percentage: '3', category: 'L' },
];
const INCLUSIVE_RATES: readonly TaxRateInput[] = [
  { percentage: '20', category: 'S', inclusive: true },
  { percentage: '7', category: 'S', inclusive: true },
  { percentage: '2.5', category: 'S', inclusive: true },
  { percentage: '0', category: 'Z', inclusive: true },
];

const modeArb = fc.constantFrom<RoundingMode>('half_up', 'half_even');
const currencyArb = fc.constantFrom('EUR', 'JPY', 'BHD', 'USD');
/** A decimal string with 0–3 decimals built from digits, never through floating point. */
function decimalString(n: number, decimals: number): string {
  if (decimals === 0) return String(n);
  const digits = String(n).padStart(decimals + 1, '0');
  return `${digits.slice(0, -decimals)}.${digits.slice(-decimals)}`;
}
const quantityArb = fc
  .tuple(fc.integer({ min: 0, max: 100_000 }), fc.integer({ min: 0, max: 3 }))
  .map(([n, d]) => decimalString(n, d));
const lineDiscountArb = fc.oneof(
  fc.integer({ min: 0, max: 100_000 }).map((n) => ({ percentage: decimalString(n, 3) })),
  fc.integer({ min: 0, max: 500 }).map((amount) => ({ amount })),
);

function lineArb(rates: readonly TaxRateInput[]): fc.Arbitrary<InvoiceLineInput> {
  return fc.record(
    {
      quantity: quantityArb,
      unit_amount: fc.integer({ min: 0, max: 1_000_000 }),
      discounts: fc.array(lineDiscountArb, { maxLength: 2 }),
      tax_rates: fc.subarray([...rates], { maxLength: 3 }),
    },
    { requiredKeys: ['quantity', 'unit_amount', 'tax_rates'] },
  );
}

function docAdjustmentArb(rates: readonly TaxRateInput[]): fc.Arbitrary<DocumentAdjustmentInput> {
  return fc.record(
    {
      amount: fc.integer({ min: 0, max: 5_000 }),
      tax_rates: fc.subarray([...rates], { minLength: 1, maxLength: 1 }),
    },
    { requiredKeys: ['amount'] },
  );
}

/** Computes, treating the two legitimate refusals of random input (discounts too large) as "skip". */
function tryCompute(input: InvoiceInput, rounding: RoundingMode): InvoiceTotals | undefined {
  try {
    return computeInvoice(input, { rounding });
  } catch (e) {
    if (isDomainError(e, 'discount_invalid')) return undefined;
    throw e;
  }
}

function sum(values: Iterable<bigint>): bigint {
  let t = 0n;
  for (const v of values) t += v;
  return t;
}

describe('invoice computation properties', () => {
  it('exclusive: totals reconcile and each group is its base × rate rounded once', () => {
    fc.assert(
      fc.property(
        currencyArb,
        modeArb,
        fc.array(lineArb(EXCLUSIVE_RATES), { maxLength: 8 }),
        fc.array(docAdjustmentArb(EXCLUSIVE_RATES.filter((r) => !r.compound)), { maxLength: 2 }),
        fc.array(docAdjustmentArb(EXCLUSIVE_RATES.filter((r) => !r.compound)), { maxLength: 2 }),
        (currency, rounding, lines, discounts, charges) => {
          const r = tryCompute({ currency, lines, discounts, charges }, rounding);
          if (r === undefined) return;
          // total = Σ line nets − document discounts + document charges + Σ group taxes = net + tax
          assert.equal(sum(r.lines.map((l) => l.net_amount)), r.line_extension_amount);
          assert.equal(r.line_extension_amount, r.subtotal);
          assert.equal(
            r.tax_exclusive_amount,
            r.line_extension_amount - r.allowance_total_amount + r.charge_total_amount,
          );
          assert.equal(r.tax_amount, sum(r.tax_breakdown.map((g) => g.tax_amount)));
          assert.equal(r.total, r.tax_exclusive_amount + r.tax_amount);
          assert.equal(r.amount_due, r.total);
          assert.equal(sum(r.partitions.map((p) => p.taxable_amount)), r.tax_exclusive_amount);
          assert.equal(sum(r.partitions.map((p) => p.discount_amount)), r.allowance_total_amount);
          assert.equal(sum(r.partitions.map((p) => p.charge_amount)), r.charge_total_amount);
          for (const g of r.tax_breakdown) {
            // BR-CO-17, against money.percentOf as the reference.
            assert.equal(g.tax_amount, percentOf(g.taxable_amount, g.percentage, rounding), g.key);
            assert.equal(sum(r.partitions.map((p) => p.taxes[g.key] ?? 0n)), g.tax_amount, g.key);
            if (!g.compound) {
              const base = sum(
                r.partitions.filter((p) => p.group_keys.includes(g.key)).map((p) => p.taxable_amount),
              );
              assert.equal(g.taxable_amount, base, g.key);
            }
          }
          // Line shares add up to each partition exactly.
          r.partitions.forEach((p, i) => {
            const members = r.lines.filter((l) => l.partition === i);
            if (members.length === 0) return;
            assert.equal(sum(members.map((l) => l.taxable_share)), p.taxable_amount);
            for (const k of p.group_keys)
              assert.equal(sum(members.map((l) => l.tax_shares[k] ?? 0n)), p.taxes[k] ?? 0n);
          });
          // Each line: quantity × price rounded once, less its discounts.
          r.lines.forEach((l, i) => {
            const input = lines[i];
            assert.ok(input);
            assert.equal(
              l.gross_amount,
              mulQuantity(BigInt(input.unit_amount as number), input.quantity, rounding),
            );
            assert.equal(l.net_amount, l.gross_amount - l.discount_amount);
          });
        },
      ),
      { numRuns: 400 },
    );
  });

  it('line order does not change any total (tax is computed per group, not per line)', () => {
    fc.assert(
      fc.property(
        currencyArb,
        modeArb,
        fc.array(lineArb(EXCLUSIVE_RATES), { minLength: 2, maxLength: 8 }),
        (currency, rounding, lines) => {
          const a = tryCompute({ currency, lines }, rounding);
          const b = tryCompute({ currency, lines: [...lines].reverse() }, rounding);
          if (a === undefined || b === undefined) return;
          assert.equal(a.total, b.total);
          assert.equal(a.tax_amount, b.tax_amount);
          const byKey = (t: InvoiceTotals) =>
            Object.fromEntries(t.tax_breakdown.map((g) => [g.key, [g.taxable_amount, g.tax_amount]]));
          assert.deepEqual(byKey(a), byKey(b));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('line order changes no figure at all: groups, partitions, lines; with document adjustments; both price modes', () => {
    /** Everything order-independent, keyed by content: lines of one partition and amount are interchangeable. */
    const figures = (t: InvoiceTotals) => {
      const keyOf = (p: number) => JSON.stringify(t.partitions[p]?.group_keys);
      // Bigints as text, object keys sorted (maps of group keys fill in order of first appearance).
      const text = (v: unknown) =>
        JSON.stringify(v, (_, x) =>
          typeof x === 'bigint'
            ? x.toString()
            : x !== null && typeof x === 'object' && !Array.isArray(x)
              ? Object.fromEntries(Object.entries(x).sort(([k], [l]) => (k < l ? -1 : k > l ? 1 : 0)))
              : x,
        );
      return {
        totals: text([
          t.subtotal,
          t.line_extension_amount,
          t.allowance_total_amount,
          t.charge_total_amount,
          t.tax_exclusive_amount,
          t.tax_amount,
          t.total,
        ]),
        groups: Object.fromEntries(
          t.tax_breakdown.map((g) => [g.key, text([g.taxable_amount, g.tax_amount])]),
        ),
        partitions: Object.fromEntries(t.partitions.map((p, i) => [keyOf(i), text(p)])),
        adjustments: t.document_adjustments.map(text),
        lines: t.lines
          .map((l) => text([keyOf(l.partition), l.amount, l.net_amount, l.taxable_share, l.tax_shares]))
          .sort(),
      };
    };
    const simple = EXCLUSIVE_RATES.filter((r) => !r.compound);
    const caseArb = fc.oneof(
      fc.record({
        lines: fc.array(lineArb(EXCLUSIVE_RATES), { minLength: 2, maxLength: 8 }),
        discounts: fc.array(docAdjustmentArb(simple), { maxLength: 2 }),
        charges: fc.array(docAdjustmentArb(simple), { maxLength: 2 }),
      }),
      fc.record({
        lines: fc.array(lineArb(INCLUSIVE_RATES), { minLength: 2, maxLength: 8 }),
        discounts: fc.array(
          fc.integer({ min: 0, max: 5_000 }).map((amount) => ({ amount })),
          { maxLength: 2 },
        ),
        charges: fc.constant([]),
      }),
    );
    fc.assert(
      fc.property(
        currencyArb,
        modeArb,
        caseArb.chain((c) =>
          fc
            .shuffledSubarray(
              c.lines.map((_, i) => i),
              { minLength: c.lines.length, maxLength: c.lines.length },
            )
            .map((order) => ({ ...c, shuffled: order.map((i) => c.lines[i] as InvoiceLineInput) })),
        ),
        (currency, rounding, { lines, shuffled, discounts, charges }) => {
          const a = tryCompute({ currency, lines, discounts, charges }, rounding);
          const b = tryCompute({ currency, lines: shuffled, discounts, charges }, rounding);
          assert.equal(a === undefined, b === undefined);
          if (a === undefined || b === undefined) return;
          assert.deepEqual(figures(a), figures(b));
        },
      ),
      { numRuns: 400 },
    );
  });

  it('inclusive, one rate per line: each group tax is within one minor unit of net × rate (BR-CO-17)', () => {
    const oneRateLine = lineArb(INCLUSIVE_RATES).map((l) => ({
      ...l,
      tax_rates: (l.tax_rates ?? []).slice(0, 1),
    }));
    fc.assert(
      fc.property(
        currencyArb,
        modeArb,
        fc.array(oneRateLine, { maxLength: 8 }),
        (currency, rounding, lines) => {
          const r = tryCompute({ currency, lines }, rounding);
          if (r === undefined) return;
          for (const g of r.tax_breakdown) {
            // tax = gross − round(gross/(1+r)) differs from round(net × r) by e × (1 + r) with |e| ≤ ½, so ≤ 1 for r ≤ 100 %.
            const diff = g.tax_amount - percentOf(g.taxable_amount, g.percentage, rounding);
            assert.ok(diff >= -1n && diff <= 1n, `${g.key}: ${diff}`);
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it('inclusive: the total is what the customer saw and tax = gross − net per partition', () => {
    fc.assert(
      fc.property(
        currencyArb,
        modeArb,
        fc.array(lineArb(INCLUSIVE_RATES), { maxLength: 8 }),
        fc.array(
          fc.integer({ min: 0, max: 5_000 }).map((amount) => ({ amount })),
          { maxLength: 2 },
        ),
        (currency, rounding, lines, discounts) => {
          const r = tryCompute({ currency, lines, discounts }, rounding);
          if (r === undefined) return;
          const discount = sum(r.document_adjustments.map((a) => a.amount));
          assert.equal(r.total, r.subtotal - discount);
          assert.equal(r.total, r.tax_exclusive_amount + r.tax_amount);
          assert.equal(r.tax_exclusive_amount, r.line_extension_amount - r.allowance_total_amount);
          assert.ok(r.allowance_total_amount >= 0n);
          assert.equal(sum(r.lines.map((l) => l.net_amount)), r.line_extension_amount);
          for (const p of r.partitions) {
            const gross = p.line_amount - p.discount_amount;
            assert.equal(sum(Object.values(p.taxes)), gross - p.taxable_amount);
            if (p.group_keys.length === 1) {
              const rate = r.tax_breakdown.find((g) => g.key === p.group_keys[0]);
              assert.ok(rate);
              // net = gross × 100 / (100 + rate), rounded once.
              const { num, den } = parseRate(rate.percentage);
              assert.equal(p.taxable_amount, divRound(gross * 100n * den, 100n * den + num, rounding));
            }
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});
