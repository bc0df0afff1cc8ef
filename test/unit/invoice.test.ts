import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ErrorCode, isDomainError } from '../../src/domain/errors.js';
import { computeInvoice, type InvoiceInput } from '../../src/domain/invoice.js';

const S20 = { percentage: '20', category: 'S' };
const S10 = { percentage: '10', category: 'S' };
const UP = { rounding: 'half_up' } as const;
const EVEN = { rounding: 'half_even' } as const;

function fails(input: InvoiceInput, code: ErrorCode, param: string): void {
  assert.throws(
    () => computeInvoice(input, UP),
    (e) => isDomainError(e, code) && e.param === param,
    `expected ${code} at ${param}`,
  );
}

describe('computeInvoice', () => {
  it('computes a simple exclusive invoice', () => {
    const r = computeInvoice(
      {
        currency: 'EUR',
        lines: [
          { quantity: '2', unit_amount: 1250, tax_rates: [S20] },
          { quantity: '1', unit_amount: 999, tax_rates: [S10] },
        ],
      },
      UP,
    );
    assert.equal(r.subtotal, 3499n);
    assert.equal(r.tax_amount, 500n + 100n); // 25.00 × 20 % = 5.00; 9.99 × 10 % = 0.999 → 1.00
    assert.equal(r.total, 4099n);
    assert.equal(r.amount_due, 4099n);
    assert.deepEqual(
      r.tax_breakdown.map((g) => [g.key, g.taxable_amount, g.tax_amount]),
      [
        ['S:20', 2500n, 500n],
        ['S:10', 999n, 100n],
      ],
    );
  });

  it('rounds tax once per group, not per line (BR-CO-17)', () => {
    // Three lines of 0.05 at 10 %: per line 0.005 → 0.01 each (0.03); per group 0.15 × 10 % = 0.015 → 0.02.
    const r = computeInvoice(
      { currency: 'EUR', lines: [1, 2, 3].map(() => ({ quantity: '1', unit_amount: 5, tax_rates: [S10] })) },
      UP,
    );
    assert.equal(r.tax_amount, 2n);
    const even = computeInvoice(
      { currency: 'EUR', lines: [1, 2, 3].map(() => ({ quantity: '1', unit_amount: 5, tax_rates: [S10] })) },
      EVEN,
    );
    assert.equal(even.tax_amount, 2n); // 1.5 cents → 2 (even)
    const even2 = computeInvoice(
      { currency: 'EUR', lines: [{ quantity: '1', unit_amount: 25, tax_rates: [S10] }] },
      EVEN,
    );
    assert.equal(even2.tax_amount, 2n); // 2.5 cents → 2 under half-even
    assert.equal(
      computeInvoice({ currency: 'EUR', lines: [{ quantity: '1', unit_amount: 25, tax_rates: [S10] }] }, UP)
        .tax_amount,
      3n,
    );
  });

  it('uses the currency exponent: JPY has no minor unit, BHD has three', () => {
    const jpy = computeInvoice(
      { currency: 'JPY', lines: [{ quantity: '3', unit_amount: 333, tax_rates: [S10] }] },
      UP,
    );
    assert.equal(jpy.exponent, 0);
    assert.equal(jpy.tax_amount, 100n); // 999 × 10 % = 99.9 → 100 yen
    const bhd = computeInvoice(
      {
        currency: 'BHD',
        lines: [{ quantity: '1', unit_amount: 1234, tax_rates: [{ percentage: '10', category: 'S' }] }],
      },
      UP,
    );
    assert.equal(bhd.exponent, 3);
    assert.equal(bhd.tax_amount, 123n); // 1.234 × 10 % = 0.1234 → 0.123
  });

  it('supports sub-minor unit prices and a price base quantity', () => {
    const r = computeInvoice(
      {
        currency: 'EUR',
        lines: [
          { quantity: '16000', unit_amount_decimal: '0.101' }, // 0.00101 EUR × 16000 = 16.16
          { quantity: '132', unit_amount: 1524, price_base_quantity: '12' }, // 15.24 per 12 → 167.64
          { quantity: '3', unit_amount_decimal: '33.335' }, // 3 × 33.335 = 100.005 cents → 100
        ],
      },
      UP,
    );
    assert.deepEqual(
      r.lines.map((l) => l.net_amount),
      [1616n, 16764n, 100n],
    );
  });

  it('applies line discounts and charges as rounded amounts', () => {
    const r = computeInvoice(
      {
        currency: 'EUR',
        lines: [
          {
            quantity: '3',
            unit_amount: 1999,
            discounts: [{ percentage: '12.5' }, { amount: 100 }],
            charges: [{ amount: 250, reason: 'Packaging' }],
            tax_rates: [S20],
          },
        ],
      },
      UP,
    );
    const [line] = r.lines;
    assert.ok(line);
    assert.equal(line.gross_amount, 5997n);
    assert.equal(line.discount_amount, 750n + 100n); // 59.97 × 12.5 % = 7.49625 → 7.50
    assert.equal(line.charge_amount, 250n);
    assert.equal(line.amount, 5397n);
    assert.equal(r.tax_amount, 1079n); // 53.97 × 20 % = 10.794 → 10.79
  });

  it('spreads a document discount over tax groups with allocate, summing exactly', () => {
    const r = computeInvoice(
      {
        currency: 'EUR',
        lines: [
          { quantity: '1', unit_amount: 1000, tax_rates: [S20] },
          { quantity: '1', unit_amount: 1000, tax_rates: [S10] },
          { quantity: '1', unit_amount: 1000 },
        ],
        discounts: [{ amount: 100 }],
      },
      UP,
    );
    // 100 over three equal partitions: 33.33 each, the leftover cent goes to the first partition in
    // key order (["S:10"] < ["S:20"] < []), whatever the order of the lines.
    assert.deepEqual(
      r.partitions.map((p) => p.discount_amount),
      [33n, 34n, 33n],
    );
    assert.equal(r.allowance_total_amount, 100n);
    assert.equal(r.tax_exclusive_amount, 2900n);
    assert.equal(r.tax_amount, 193n + 97n); // 9.67 × 20 % = 1.934; 9.66 × 10 % = 0.966
    assert.equal(r.total, 2900n + 290n);
  });

  it('targets a document discount or charge at one rate set (EN 16931 allowance with a VAT category)', () => {
    const r = computeInvoice(
      {
        currency: 'EUR',
        lines: [
          { quantity: '1', unit_amount: 1000, tax_rates: [S20] },
          { quantity: '1', unit_amount: 1000, tax_rates: [S10] },
        ],
        discounts: [{ percentage: '10', tax_rates: [S10] }],
        charges: [{ amount: 500, tax_rates: [{ percentage: '25', category: 'S' }], reason: 'Freight' }],
      },
      UP,
    );
    assert.deepEqual(
      r.tax_breakdown.map((g) => [g.key, g.taxable_amount, g.tax_amount]),
      [
        ['S:20', 1000n, 200n],
        ['S:10', 900n, 90n],
        ['S:25', 500n, 125n],
      ],
    );
    assert.equal(r.allowance_total_amount, 100n);
    assert.equal(r.charge_total_amount, 500n);
    assert.equal(r.total, 2400n + 415n);
  });

  it('applies compound taxes on the net plus the line’s simple taxes', () => {
    const gst = { percentage: '5', category: 'S' };
    const qst = { percentage: '9.975', category: 'S', compound: true };
    const r = computeInvoice(
      {
        currency: 'CAD',
        lines: [
          { quantity: '1', unit_amount: 10000, tax_rates: [gst, qst] },
          { quantity: '1', unit_amount: 5000, tax_rates: [gst] },
        ],
      },
      UP,
    );
    // GST on 150.00 = 7.50, of which line 1 carries 5.00; QST base 100.00 + 5.00 = 105.00 → 10.47375 → 10.47.
    assert.deepEqual(
      r.tax_breakdown.map((g) => [g.key, g.taxable_amount, g.tax_amount]),
      [
        ['S:5', 15000n, 750n],
        ['S:9.975:compound', 10500n, 1047n],
      ],
    );
    assert.equal(r.total, 15000n + 750n + 1047n);
  });

  it('gives the same compound base whatever the line order (regression: fast-check seed -2022014904)', () => {
    // The 20 % tax (1 166 470 427) is split over its three partitions to build the compound base:
    // exact shares 730 421 310.6, 420 890 921.8 and 15 158 194.6, two cents left over. One goes to
    // the .8; the two .6 tie, and the tie used to go to whichever partition came first in line
    // order, so the compound base was 4 382 527 864 one way round and 4 382 527 863 the other. Ties
    // now go by partition key (["AE:0:Reverse charge","S:20"] before ["S:20","S:9.975:compound"]).
    const lines: InvoiceInput['lines'] = [
      {
        quantity: '4480.7',
        unit_amount: 815075,
        tax_rates: [
          { percentage: '20', category: 'S' },
          { percentage: '9.975', category: 'S', compound: true },
        ],
      },
      {
        quantity: '17168',
        unit_amount: 221748,
        discounts: [{ amount: 152 }, { percentage: '44.721' }],
        tax_rates: [{ percentage: '20', category: 'S' }],
      },
      {
        quantity: '1685.6',
        unit_amount: 59110,
        discounts: [{ percentage: '23.932' }],
        tax_rates: [
          { percentage: '20', category: 'S' },
          { percentage: '0', category: 'AE', exemption_reason: 'Reverse charge' },
        ],
      },
      { quantity: '0', unit_amount: 0, tax_rates: [] },
    ];
    const byKey = (r: ReturnType<typeof computeInvoice>) =>
      Object.fromEntries(r.tax_breakdown.map((g) => [g.key, [g.taxable_amount, g.tax_amount]]));
    const partitionsByKey = (r: ReturnType<typeof computeInvoice>) =>
      Object.fromEntries(
        r.partitions.map((p) => [JSON.stringify(p.group_keys), [p.taxable_amount, p.taxes]]),
      );
    const forward = computeInvoice({ currency: 'EUR', lines }, UP);
    const backward = computeInvoice({ currency: 'EUR', lines: [...lines].reverse() }, UP);
    for (const r of [forward, backward]) {
      assert.deepEqual(byKey(r), {
        'S:20': [5832352135n, 1166470427n],
        'S:9.975:compound': [4382527863n, 437157154n], // (3 652 106 553 + 730 421 310) × 9.975 % = 437 157 154.33
        'AE:0:Reverse charge': [75790973n, 0n],
      });
      assert.equal(r.tax_exclusive_amount, 5832352135n);
      assert.equal(r.tax_amount, 1603627581n);
      assert.equal(r.total, 7435979716n);
    }
    assert.deepEqual(partitionsByKey(forward), partitionsByKey(backward));
    assert.deepEqual(
      forward.lines.map((l) => [l.net_amount, l.taxable_share, l.tax_shares]),
      backward.lines.map((l) => [l.net_amount, l.taxable_share, l.tax_shares]).reverse(),
    );
  });

  it('splits a tie between lines by amount, not by position', () => {
    // Inclusive 20 %: gross 9 + 801 = 810 → net 675; exact line nets 7.5 and 667.5, a tie for
    // the leftover cent, which goes to the larger line in either order.
    const inc20 = { percentage: '20', category: 'S', inclusive: true };
    const lines = [
      { quantity: '3', unit_amount: 3, tax_rates: [inc20] },
      { quantity: '3', unit_amount: 267, tax_rates: [inc20] },
    ];
    const forward = computeInvoice({ currency: 'EUR', lines }, UP);
    const backward = computeInvoice({ currency: 'EUR', lines: [...lines].reverse() }, UP);
    assert.deepEqual(
      forward.lines.map((l) => l.net_amount),
      [7n, 668n],
    );
    assert.deepEqual(
      backward.lines.map((l) => l.net_amount),
      [668n, 7n],
    );
  });

  it('converts inclusive prices to net per group, rounded once, tax = gross − net', () => {
    const inc20 = { percentage: '20', category: 'S', inclusive: true };
    const r = computeInvoice(
      {
        currency: 'GBP',
        lines: [1, 2, 3].map(() => ({ quantity: '1', unit_amount: 999, tax_rates: [inc20] })),
      },
      UP,
    );
    // 29.97 gross → 29.97 / 1.2 = 24.975 → 24.98 net, tax 4.99 (per line it would be 8.33 + 1.66 each).
    assert.equal(r.subtotal, 2997n);
    assert.equal(r.tax_exclusive_amount, 2498n);
    assert.equal(r.tax_amount, 499n);
    assert.equal(r.total, 2997n);
    assert.deepEqual(
      r.lines.map((l) => l.net_amount),
      [833n, 833n, 832n],
    );
  });

  it('reverse charge and exemptions charge no tax but appear in the breakdown', () => {
    const r = computeInvoice(
      {
        currency: 'EUR',
        lines: [
          {
            quantity: '1',
            unit_amount: 5000,
            tax_rates: [{ percentage: '0', category: 'AE', exemption_reason: 'Reverse charge' }],
          },
          {
            quantity: '1',
            unit_amount: 700,
            tax_rates: [{ percentage: '0', category: 'E', exemption_reason: 'Art. 132' }],
          },
        ],
      },
      UP,
    );
    assert.equal(r.tax_amount, 0n);
    assert.equal(r.total, 5700n);
    assert.deepEqual(
      r.tax_breakdown.map((g) => [g.category, g.exemption_reason, g.taxable_amount]),
      [
        ['AE', 'Reverse charge', 5000n],
        ['E', 'Art. 132', 700n],
      ],
    );
  });

  it('keeps groups apart whatever the text of their exemption reasons', () => {
    const odd = { percentage: '0', category: 'E', exemption_reason: 'Art. 132|1 "j", \\n' };
    const r = computeInvoice(
      {
        currency: 'EUR',
        lines: [
          { quantity: '1', unit_amount: 100, tax_rates: [odd, S20] },
          { quantity: '1', unit_amount: 50, tax_rates: [odd] },
        ],
        discounts: [{ amount: 10, tax_rates: [odd] }],
      },
      UP,
    );
    assert.deepEqual(
      r.tax_breakdown.map((g) => [g.category, g.taxable_amount, g.tax_amount]),
      [
        ['E', 140n, 0n],
        ['S', 100n, 20n],
      ],
    );
    assert.deepEqual(r.document_adjustments[0]?.group_keys, [`E:0:${odd.exemption_reason}`]);
  });

  it('subtracts the prepaid amount from the amount due', () => {
    const r = computeInvoice(
      {
        currency: 'EUR',
        lines: [{ quantity: '1', unit_amount: 1000, tax_rates: [S20] }],
        prepaid_amount: 200,
      },
      UP,
    );
    assert.equal(r.amount_due, 1000n);
    fails(
      { currency: 'EUR', lines: [{ quantity: '1', unit_amount: 1000 }], prepaid_amount: 1001 },
      'amount_invalid',
      'prepaid_amount',
    );
  });

  it('reports validation errors with stable codes and param paths', () => {
    const ok = { quantity: '1', unit_amount: 100 };
    fails({ currency: 'XYZ', lines: [] }, 'currency_unknown', 'currency');
    fails(
      { currency: 'EUR', lines: [ok, ok, { quantity: '1.2345678', unit_amount: 1 }] },
      'quantity_invalid',
      'lines.2.quantity',
    );
    fails(
      { currency: 'EUR', lines: [{ quantity: '-1', unit_amount: 1 }] },
      'quantity_invalid',
      'lines.0.quantity',
    );
    fails(
      { currency: 'EUR', lines: [{ quantity: '1', unit_amount: -5 }] },
      'amount_invalid',
      'lines.0.unit_amount',
    );
    fails(
      { currency: 'EUR', lines: [{ quantity: '1', unit_amount: 1.5 }] },
      'amount_invalid',
      'lines.0.unit_amount',
    );
    fails({ currency: 'EUR', lines: [{ quantity: '1' }] }, 'amount_invalid', 'lines.0');
    fails(
      { currency: 'EUR', lines: [{ quantity: '1', unit_amount_decimal: '0.1234567' }] },
      'amount_invalid',
      'lines.0.unit_amount_decimal',
    );
    fails(
      { currency: 'EUR', lines: [{ quantity: '1', unit_amount: 1, price_base_quantity: '0' }] },
      'quantity_invalid',
      'lines.0.price_base_quantity',
    );
    fails(
      { currency: 'EUR', lines: [ok, { ...ok, tax_rates: [S20, { percentage: '0', category: 'E' }] }] },
      'tax_rate_invalid',
      'lines.1.tax_rates.1.exemption_reason',
    );
    fails(
      { currency: 'EUR', lines: [{ ...ok, tax_rates: [S20, S20] }] },
      'tax_rate_invalid',
      'lines.0.tax_rates.1',
    );
    fails(
      { currency: 'EUR', lines: [{ ...ok, discounts: [{ percentage: '101' }] }] },
      'discount_invalid',
      'lines.0.discounts.0.percentage',
    );
    fails(
      { currency: 'EUR', lines: [{ ...ok, discounts: [{ percentage: '1', amount: 1 }] }] },
      'discount_invalid',
      'lines.0.discounts.0',
    );
    fails(
      { currency: 'EUR', lines: [{ ...ok, discounts: [{ amount: 101 }] }] },
      'discount_invalid',
      'lines.0.discounts',
    );
    fails({ currency: 'EUR', lines: [ok], discounts: [{ amount: 101 }] }, 'discount_invalid', 'discounts');
    fails({ currency: 'EUR', lines: [], discounts: [{ amount: 1 }] }, 'discount_invalid', 'discounts');
    fails(
      { currency: 'EUR', lines: [ok], discounts: [{ amount: -1 }] },
      'discount_invalid',
      'discounts.0.amount',
    );
    fails(
      { currency: 'EUR', lines: [{ ...ok, tax_rates: [S20] }], discounts: [{ amount: 1, tax_rates: [S10] }] },
      'discount_invalid',
      'discounts',
    );
    fails(
      {
        currency: 'EUR',
        lines: [
          { ...ok, tax_rates: [{ ...S20, inclusive: true }] },
          { ...ok, tax_rates: [S10] },
        ],
      },
      'tax_inclusive_mixed',
      'lines',
    );
    fails(
      {
        currency: 'EUR',
        lines: [{ ...ok, tax_rates: [{ ...S20, inclusive: true }] }],
        charges: [{ amount: 1 }],
      },
      'discount_invalid',
      'charges.0',
    );
    assert.throws(
      () => computeInvoice({ currency: 'EUR', lines: [] }, { rounding: 'bankers' as never }),
      (e) => isDomainError(e, 'validation_failed') && e.param === 'rounding',
    );
  });

  it('refuses wrongly typed lists with a DomainError, never a TypeError', () => {
    const ok = { quantity: '1', unit_amount: 100 };
    fails({ currency: 'EUR', lines: [ok], discounts: 'ten' as never }, 'validation_failed', 'discounts');
    fails(
      { currency: 'EUR', lines: [{ ...ok, discounts: {} as never }] },
      'validation_failed',
      'lines.0.discounts',
    );
    fails(
      { currency: 'EUR', lines: [{ ...ok, charges: 1 as never }] },
      'validation_failed',
      'lines.0.charges',
    );
    fails(
      { currency: 'EUR', lines: [{ ...ok, tax_rates: true as never }] },
      'validation_failed',
      'lines.0.tax_rates',
    );
    fails(
      { currency: 'EUR', lines: [ok], charges: [{ amount: 1, tax_rates: 'S' as never }] },
      'validation_failed',
      'charges.0.tax_rates',
    );
    fails({ currency: 'EUR', lines: 'x' as never }, 'validation_failed', 'lines');
    fails({ currency: 'EUR', lines: [null as never] }, 'validation_failed', 'lines.0');
  });

  it('bounds the number of lines', () => {
    const line = { quantity: '1', unit_amount: 1 };
    assert.equal(
      computeInvoice({ currency: 'EUR', lines: Array.from({ length: 1000 }, () => line) }, UP).total,
      1000n,
    );
    fails({ currency: 'EUR', lines: Array.from({ length: 1001 }, () => line) }, 'validation_failed', 'lines');
  });

  it('computes an empty draft as zero', () => {
    const r = computeInvoice({ currency: 'EUR', lines: [] }, UP);
    assert.equal(r.total, 0n);
    assert.equal(r.tax_breakdown.length, 0);
  });
});
