import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AGING_BOUNDS, agingBucket } from '../../src/domain/aging.js';
import { isDomainError } from '../../src/domain/errors.js';
import {
  assertGroupable,
  daysSalesOutstanding,
  reportPeriod,
  runningBalance,
} from '../../src/domain/reports.js';

describe('report periods', () => {
  it('accepts from ≤ to and counts both ends', () => {
    assert.deepEqual(reportPeriod('2026-01-01', '2026-01-31'), {
      from: '2026-01-01',
      to: '2026-01-31',
      days: 31,
    });
    assert.equal(reportPeriod('2024-02-01', '2024-02-29').days, 29);
    assert.equal(reportPeriod('2026-03-03', '2026-03-03').days, 1);
  });
  it('refuses from after to, impossible dates and runaway day grouping with date_invalid', () => {
    for (const [f, t] of [
      ['2026-02-01', '2026-01-31'],
      ['2026-02-30', '2026-03-01'],
      ['2026-1-01', '2026-03-01'],
      ['0001-01-01', '9999-12-31'],
    ] as const) {
      assert.throws(
        () => reportPeriod(f, t),
        (e) => isDomainError(e, 'date_invalid'),
        `${f}..${t}`,
      );
    }
    assert.throws(
      () => assertGroupable(reportPeriod('2000-01-01', '2026-01-01'), 'day'),
      (e) => isDomainError(e, 'date_invalid'),
    );
    assertGroupable(reportPeriod('2000-01-01', '2026-01-01'), 'month');
  });
});

describe('DSO', () => {
  it('is receivables ÷ credit sales × days, half-up to 2 (or 1) decimals', () => {
    assert.equal(daysSalesOutstanding(17_000n, 17_000n, 31), '31.00');
    assert.equal(daysSalesOutstanding(1n, 3n, 30), '10.00');
    assert.equal(daysSalesOutstanding(1n, 3n, 1), '0.33');
    assert.equal(daysSalesOutstanding(2n, 3n, 1), '0.67');
    assert.equal(daysSalesOutstanding(1n, 8n, 1), '0.13'); // 0.125 → half-up
    assert.equal(daysSalesOutstanding(1n, 8n, 1, 1), '0.1');
    assert.equal(daysSalesOutstanding(0n, 5n, 90), '0.00');
    assert.equal(daysSalesOutstanding(5n, 0n, 90), null);
  });
  it('never drifts from the exact ratio by more than half a unit in the last place', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 10n ** 15n }),
        fc.bigInt({ min: 1n, max: 10n ** 15n }),
        fc.integer({ min: 1, max: 3660 }),
        (ar, sales, days) => {
          const s = daysSalesOutstanding(ar, sales, days) as string;
          const [w, f] = s.split('.');
          const scaled = BigInt(`${w}${f}`); // hundredths
          const exact2 = ar * BigInt(days) * 200n; // 2 × exact hundredths × sales
          assert.ok(scaled * 2n * sales - exact2 <= sales && exact2 - scaled * 2n * sales < sales);
        },
      ),
    );
  });
});

describe('aging buckets', () => {
  it('boundaries 0/1/30/31/60/61/90/91 fall where the report says', () => {
    assert.deepEqual(AGING_BOUNDS, [30, 60, 90]);
    const got = [-5, 0, 1, 30, 31, 60, 61, 90, 91, 400].map(agingBucket);
    assert.deepEqual(got, [
      'current',
      'current',
      'd1_30',
      'd1_30',
      'd31_60',
      'd31_60',
      'd61_90',
      'd61_90',
      'over_90',
      'over_90',
    ]);
  });
});

describe('statement running balance', () => {
  const e = (debit: bigint, credit: bigint) => ({
    date: '2026-01-01',
    type: 'invoice' as const,
    id: 'x',
    number: null,
    debit,
    credit,
    applied: 0n,
    invoice: null,
  });
  it('starts from the opening balance and ends at the closing balance', () => {
    const { lines, closing } = runningBalance(600n, [e(2000n, 0n), e(0n, 2500n), e(0n, 100n)]);
    assert.deepEqual(
      lines.map((l) => l.balance),
      [2600n, 100n, 0n],
    );
    assert.equal(closing, 0n);
  });
  it('closing = opening + Σ debits − Σ credits, for any lines', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: -(10n ** 12n), max: 10n ** 12n }),
        fc.array(fc.tuple(fc.bigInt({ min: 0n, max: 10n ** 9n }), fc.bigInt({ min: 0n, max: 10n ** 9n }))),
        (opening, xs) => {
          const { lines, closing } = runningBalance(
            opening,
            xs.map(([d, c]) => e(d, c)),
          );
          assert.equal(
            closing,
            xs.reduce((s, [d, c]) => s + d - c, opening),
          );
          assert.equal(lines.at(-1)?.balance ?? opening, closing);
        },
      ),
    );
  });
});
