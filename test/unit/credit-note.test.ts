import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type CreditNoteTotals,
  type CreditRequest,
  computeCreditNote,
  creditableRemainder,
  splitCreditApplication,
} from '../../src/domain/credit-note.js';
import { isDomainError } from '../../src/domain/errors.js';
import { computeInvoice, type InvoiceTotals } from '../../src/domain/invoice.js';
import { percentOf } from '../../src/domain/money.js';

const UP = { rounding: 'half_up' } as const;

/** n / 10^decimals as a decimal string, built from digits (no floating point). */
function cents(n: number, decimals: number): string {
  const digits = String(n).padStart(decimals + 1, '0');
  return `${digits.slice(0, -decimals)}.${digits.slice(-decimals)}`;
}
const S20 = { percentage: '20', category: 'S' };
const S5 = { percentage: '5', category: 'S' };

function invoice(): InvoiceTotals {
  return computeInvoice(
    {
      currency: 'EUR',
      lines: [
        { quantity: '3', unit_amount: 1000, tax_rates: [S20] }, // 30.00
        { quantity: '2', unit_amount: 2500, tax_rates: [S5] }, // 50.00
      ],
    },
    UP,
  );
}

describe('credit notes', () => {
  it('credits the whole invoice, then nothing more', () => {
    const inv = invoice();
    assert.equal(inv.total, 3000n + 600n + 5000n + 250n);
    const full = computeCreditNote(inv, 'open', [], { kind: 'full' }, UP);
    assert.equal(full.total, inv.total);
    assert.deepEqual(full.taxes, { 'S:20': 600n, 'S:5': 250n });
    assert.deepEqual(
      full.tax_breakdown.map((g) => [g.key, g.taxable_amount, g.tax_amount]),
      [
        ['S:20', 3000n, 600n],
        ['S:5', 5000n, 250n],
      ],
    );
    assert.throws(
      () => computeCreditNote(inv, 'open', [full], { kind: 'full' }, UP),
      (e) => isDomainError(e, 'credit_exceeds_remaining'),
    );
    assert.throws(
      () => computeCreditNote(inv, 'open', [full], { kind: 'amount', amount: 1 }, UP),
      (e) => isDomainError(e, 'credit_exceeds_remaining') && e.param === 'amount',
    );
  });

  it('splits an amount over the invoice components in proportion, exactly', () => {
    const inv = invoice(); // components: 3000, 5000 net; 600, 250 tax; total 8850
    const cn = computeCreditNote(inv, 'paid', [], { kind: 'amount', amount: 1000 }, UP);
    // 1000 × 3000/8850 = 338.98, × 5000/8850 = 564.97, × 600/8850 = 67.80, × 250/8850 = 28.25
    // floors 338 + 564 + 67 + 28 = 997; the 3 left go to the largest remainders (.98, .97, .80).
    assert.deepEqual(cn.partitions, [339n, 565n]);
    assert.deepEqual(cn.taxes, { 'S:20': 68n, 'S:5': 28n });
    assert.equal(cn.total, 1000n);
    assert.throws(
      () => computeCreditNote(inv, 'open', [], { kind: 'amount', amount: 8851 }, UP),
      (e) => isDomainError(e, 'credit_exceeds_remaining'),
    );
    assert.throws(
      () => computeCreditNote(inv, 'open', [], { kind: 'amount', amount: 0 }, UP),
      (e) => isDomainError(e, 'amount_invalid'),
    );
  });

  it('credits lines by quantity and completes a line exactly', () => {
    const inv = invoice();
    const one = computeCreditNote(
      inv,
      'open',
      [],
      { kind: 'lines', lines: [{ line: 0, quantity: '1' }] },
      UP,
    );
    assert.equal(one.tax_exclusive_amount, 1000n);
    assert.equal(one.tax_amount, 200n);
    assert.equal(one.lines[0]?.quantity, '1');
    const rest = computeCreditNote(inv, 'open', [one], { kind: 'lines', lines: [{ line: 0 }] }, UP);
    assert.equal(rest.lines[0]?.quantity, '2');
    assert.equal(rest.total, 2400n);
    assert.throws(
      () =>
        computeCreditNote(
          inv,
          'open',
          [one, rest],
          { kind: 'lines', lines: [{ line: 0, quantity: '0.5' }] },
          UP,
        ),
      (e) => isDomainError(e, 'credit_exceeds_remaining') && e.param === 'lines.0.quantity',
    );
    assert.throws(
      () => computeCreditNote(inv, 'open', [], { kind: 'lines', lines: [{ line: 5 }] }, UP),
      (e) => isDomainError(e, 'validation_failed') && e.param === 'lines.0.line',
    );
    assert.throws(
      () => computeCreditNote(inv, 'open', [], { kind: 'lines', lines: [{ line: 1, quantity: '0' }] }, UP),
      (e) => isDomainError(e, 'quantity_invalid'),
    );
  });

  it('refuses an unknown credit kind', () => {
    for (const request of [{ kind: 'half' }, null]) {
      assert.throws(
        () => computeCreditNote(invoice(), 'open', [], request as never, UP),
        (e) => isDomainError(e, 'validation_failed') && e.param === 'kind',
      );
    }
  });

  it('only finalised invoices that are open or paid can be credited', () => {
    for (const status of ['draft', 'void', 'uncollectible'] as const) {
      assert.throws(
        () => computeCreditNote(invoice(), status, [], { kind: 'full' }, UP),
        (e) => isDomainError(e, 'invoice_not_open'),
      );
    }
  });

  it('applies to the open remainder first and turns the rest into customer credit', () => {
    assert.deepEqual(splitCreditApplication(1000n, 'open', 400n), {
      applied_to_invoice: 400n,
      customer_credit: 600n,
    });
    assert.deepEqual(splitCreditApplication(300n, 'open', 400n), {
      applied_to_invoice: 300n,
      customer_credit: 0n,
    });
    assert.deepEqual(splitCreditApplication(300n, 'paid', 0n), {
      applied_to_invoice: 0n,
      customer_credit: 300n,
    });
  });

  it('keeps each credited group tax close to its base × rate (property)', () => {
    // A credit of an exact total cannot always satisfy tax = round(base × rate) too (with 20 %,
    // no net gives a total of 0.03), so the split is proportional. Its error is bounded: the tax
    // and base parts are each within one unit of their exact shares, so |tax − round(base × rate)| ≤ 2
    // (random search finds at most 1).
    const rates = [S20, S5, { percentage: '7.125', category: 'S' }];
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            quantity: fc.integer({ min: 1, max: 50 }).map(String),
            unit_amount: fc.integer({ min: 1, max: 100_000 }),
            rate: fc.integer({ min: 0, max: 2 }),
          }),
          { minLength: 1, maxLength: 5 },
        ),
        fc.bigInt({ min: 1n, max: 1000n }),
        (lines, permille) => {
          const inv = computeInvoice(
            { currency: 'EUR', lines: lines.map((l) => ({ ...l, tax_rates: [rates[l.rate] ?? S20] })) },
            UP,
          );
          const amount = (inv.total * permille) / 1000n;
          if (amount === 0n) return;
          const cn = computeCreditNote(inv, 'open', [], { kind: 'amount', amount }, UP);
          for (const g of cn.tax_breakdown) {
            const diff = g.tax_amount - percentOf(g.taxable_amount, g.percentage, 'half_up');
            assert.ok(diff >= -2n && diff <= 2n, `${g.key}: ${diff}`);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('never credits more than the invoice, per component and in total (property)', () => {
    const rate = fc.constantFrom(
      S20,
      S5,
      { percentage: '7.5', category: 'S' },
      { percentage: '0', category: 'E', exemption_reason: 'Exempt' },
    );
    const lineArb = fc.record({
      quantity: fc.integer({ min: 1, max: 5000 }).map((n) => cents(n, 2)),
      unit_amount: fc.integer({ min: 0, max: 100_000 }),
      tax_rates: fc.uniqueArray(rate, { maxLength: 2, selector: (r) => r.percentage }),
    });
    const requestArb = (lineCount: number): fc.Arbitrary<CreditRequest> =>
      fc.oneof(
        fc.constant<CreditRequest>({ kind: 'full' }),
        fc.bigInt({ min: 1n, max: 500_000n }).map((amount): CreditRequest => ({ kind: 'amount', amount })),
        fc
          .uniqueArray(
            fc.record({
              line: fc.integer({ min: 0, max: lineCount - 1 }),
              quantity: fc.option(
                fc.integer({ min: 1, max: 3000 }).map((n) => cents(n, 3)),
                { nil: undefined },
              ),
            }),
            { minLength: 1, maxLength: lineCount, selector: (l) => l.line },
          )
          .map(
            (lines): CreditRequest => ({
              kind: 'lines',
              lines: lines.map((l) => (l.quantity === undefined ? { line: l.line } : l)),
            }),
          ),
      );
    fc.assert(
      fc.property(
        fc
          .array(lineArb, { minLength: 1, maxLength: 5 })
          .chain((lines) =>
            fc.tuple(
              fc.constant(lines),
              fc.option(fc.integer({ min: 0, max: 10_000 }), { nil: undefined }),
              fc.constantFrom('half_up' as const, 'half_even' as const),
              fc.array(requestArb(lines.length), { maxLength: 8 }),
            ),
          ),
        ([lines, discount, rounding, requests]) => {
          let inv: InvoiceTotals;
          try {
            inv = computeInvoice(
              {
                currency: 'EUR',
                lines,
                ...(discount !== undefined ? { discounts: [{ amount: discount }] } : {}),
              },
              { rounding },
            );
          } catch (e) {
            if (isDomainError(e, 'discount_invalid')) return; // discount larger than the lines
            throw e;
          }
          const notes: CreditNoteTotals[] = [];
          for (const request of requests) {
            try {
              notes.push(computeCreditNote(inv, 'open', notes, request, { rounding }));
            } catch (e) {
              assert.ok(
                isDomainError(e, 'credit_exceeds_remaining') || isDomainError(e, 'amount_invalid'),
                String(e),
              );
            }
            const left = creditableRemainder(inv, notes);
            assert.ok(left.total >= 0n);
            for (const p of left.partitions) assert.ok(p >= 0n, 'partition over-credited');
            for (const t of Object.values(left.taxes)) assert.ok(t >= 0n, 'tax over-credited');
            const credited = notes.reduce((a, n) => a + n.total, 0n);
            assert.equal(credited + left.total, inv.total);
            for (const n of notes) assert.equal(n.total, n.tax_exclusive_amount + n.tax_amount);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
