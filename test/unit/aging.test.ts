import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AGING_BUCKETS, agingBucket, agingReport } from '../../src/domain/aging.js';
import { addDays } from '../../src/domain/dates.js';
import { isDomainError } from '../../src/domain/errors.js';

describe('aging', () => {
  it('buckets by days past due with inclusive upper bounds', () => {
    const cases: [number, string][] = [
      [-10, 'current'],
      [0, 'current'],
      [1, 'd1_30'],
      [30, 'd1_30'],
      [31, 'd31_60'],
      [60, 'd31_60'],
      [61, 'd61_90'],
      [90, 'd61_90'],
      [91, 'over_90'],
      [4000, 'over_90'],
    ];
    for (const [days, bucket] of cases) assert.equal(agingBucket(days), bucket, String(days));
  });

  it('reports totals per bucket and per customer as of a date', () => {
    const r = agingReport(
      [
        { invoice: 'inv_1', customer: 'cus_b', due_date: '2026-03-31', amount_remaining: 1000n }, // due today
        { invoice: 'inv_2', customer: 'cus_a', due_date: '2026-03-01', amount_remaining: 250n }, // 30 days
        { invoice: 'inv_3', customer: 'cus_a', due_date: '2026-01-29', amount_remaining: 75n }, // 61 days
        { invoice: 'inv_4', customer: 'cus_b', due_date: '2025-12-01', amount_remaining: 5n }, // 120 days
        { invoice: 'inv_5', customer: 'cus_c', due_date: '2025-01-01', amount_remaining: 0n }, // settled
      ],
      '2026-03-31',
    );
    assert.deepEqual(r.buckets, { current: 1000n, d1_30: 250n, d31_60: 0n, d61_90: 75n, over_90: 5n });
    assert.equal(r.total, 1330n);
    assert.deepEqual(
      r.customers.map((c) => [c.customer, c.total]),
      [
        ['cus_a', 325n],
        ['cus_b', 1005n],
      ],
    );
    assert.throws(
      () =>
        agingReport(
          [{ invoice: 'i', customer: 'c', due_date: '2026-01-01', amount_remaining: -1n }],
          '2026-01-01',
        ),
      (e) => isDomainError(e, 'amount_invalid') && e.param === 'items.0.amount_remaining',
    );
    assert.throws(
      () => agingReport([], '2026-02-30'),
      (e) => isDomainError(e, 'date_invalid'),
    );
  });

  it('bucket totals add up to the total and items move to older buckets as time passes (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: -200, max: 400 }), fc.bigInt({ min: 0n, max: 10n ** 9n })), {
          maxLength: 20,
        }),
        fc.integer({ min: 0, max: 100 }),
        (items, later) => {
          const asOf = '2026-06-15';
          const input = items.map(([offset, amount], i) => ({
            invoice: `inv_${i}`,
            customer: `cus_${i % 3}`,
            due_date: addDays(asOf, -offset),
            amount_remaining: amount,
          }));
          const now = agingReport(input, asOf);
          assert.equal(
            AGING_BUCKETS.reduce((a, b) => a + now.buckets[b], 0n),
            now.total,
          );
          assert.equal(
            now.customers.reduce((a, c) => a + c.total, 0n),
            now.total,
          );
          const then = agingReport(input, addDays(asOf, later));
          assert.equal(then.total, now.total);
          // Cumulative amount in "over_90", then "d61_90 or older", … never shrinks with time.
          let olderNow = 0n;
          let olderThen = 0n;
          for (const b of [...AGING_BUCKETS].reverse()) {
            olderNow += now.buckets[b];
            olderThen += then.buckets[b];
            assert.ok(olderThen >= olderNow, b);
          }
        },
      ),
    );
  });
});
