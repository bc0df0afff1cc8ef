import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DomainError, type ErrorCode } from '../../src/domain/errors.js';
import {
  add,
  allocate,
  allocateEvenly,
  assertCurrency,
  compare,
  currencyExponent,
  divRound,
  formatMinor,
  formatRational,
  isCurrency,
  isZero,
  money,
  mulQuantity,
  mulRate,
  negate,
  parseDecimal,
  parseQuantity,
  parseRate,
  percentOf,
  type RoundingMode,
  subtract,
} from '../../src/domain/money.js';

const MAX = 10n ** 15n;
const MODES: readonly RoundingMode[] = ['half_up', 'half_even'];

const amountArb = fc.bigInt({ min: -MAX, max: MAX });
const modeArb = fc.constantFrom<RoundingMode>(...MODES);
const currencyArb = fc.constantFrom('JPY', 'EUR', 'USD', 'BHD', 'KWD', 'CLP');
/** A decimal string with 0–6 decimals, plus the exact scaled integer it denotes. */
const decimalArb = fc
  .tuple(fc.bigInt({ min: 0n, max: 10n ** 12n }), fc.integer({ min: 0, max: 6 }))
  .map(([scaled, decimals]) => {
    const digits = scaled.toString().padStart(decimals + 1, '0');
    const cut = digits.length - decimals;
    const text = decimals === 0 ? digits : `${digits.slice(0, cut)}.${digits.slice(cut)}`;
    return { text, scaled, den: 10n ** BigInt(decimals) };
  });

function throwsCode(fn: () => unknown, code: ErrorCode): void {
  assert.throws(fn, (e: unknown) => e instanceof DomainError && e.code === code);
}

const abs = (x: bigint): bigint => (x < 0n ? -x : x);

describe('currencies', () => {
  it('uses ISO 4217 exponents', () => {
    assert.equal(currencyExponent('JPY'), 0);
    assert.equal(currencyExponent('EUR'), 2);
    assert.equal(currencyExponent('USD'), 2);
    assert.equal(currencyExponent('BHD'), 3);
    assert.equal(currencyExponent('KWD'), 3);
    assert.equal(currencyExponent('CLP'), 0);
    assert.equal(currencyExponent('CLF'), 4);
    assert.equal(currencyExponent('eur'), 2);
  });

  it('normalises codes to uppercase', () => {
    assert.equal(assertCurrency('eur'), 'EUR');
    assert.equal(money(5n, 'jpy').currency, 'JPY');
  });

  it('refuses unknown, malformed and non-monetary codes', () => {
    for (const code of ['ABC', 'EURO', 'EU', '', ' EUR', 'EUR ', 'E1R', 'XAU', 'XXX', 'XTS', 'XDR', 'HRK']) {
      throwsCode(() => assertCurrency(code), 'currency_unknown');
      assert.equal(isCurrency(code), false, code);
    }
    throwsCode(() => currencyExponent('XAU'), 'currency_unknown');
    throwsCode(() => money(1n, 'ZZZ'), 'currency_unknown');
    throwsCode(() => parseDecimal('1', 'ZZZ'), 'currency_unknown');
    assert.throws(() => assertCurrency('ABC'), { message: 'Unknown currency "ABC"', param: 'currency' });
  });

  it('refuses fund codes unless explicitly allowed', () => {
    throwsCode(() => assertCurrency('CLF'), 'currency_unknown');
    throwsCode(() => assertCurrency('USN'), 'currency_unknown');
    assert.equal(assertCurrency('clf', { allowFunds: true }), 'CLF');
  });
});

describe('money values', () => {
  it('accepts bigint, safe integer and integer-string amounts only', () => {
    assert.equal(money(1999n, 'EUR').amount, 1999n);
    assert.equal(money(-5, 'EUR').amount, -5n);
    assert.equal(money('123456789012345678901', 'EUR').amount, 123456789012345678901n);
    for (const bad of [1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, '1.0', '1e3', ' 1', '', '+1']) {
      throwsCode(() => money(bad, 'EUR'), 'amount_invalid');
    }
  });

  it('adds, subtracts, negates and compares', () => {
    const a = money(1050n, 'EUR');
    const b = money(250n, 'EUR');
    assert.deepEqual(add(a, b), money(1300n, 'EUR'));
    assert.deepEqual(subtract(a, b), money(800n, 'EUR'));
    assert.deepEqual(negate(a), money(-1050n, 'EUR'));
    assert.equal(compare(a, b), 1);
    assert.equal(compare(b, a), -1);
    assert.equal(compare(a, a), 0);
    assert.equal(isZero(subtract(a, a)), true);
    assert.equal(isZero(a), false);
  });

  it('refuses mixing currencies', () => {
    const eur = money(100n, 'EUR');
    const usd = money(100n, 'USD');
    throwsCode(() => add(eur, usd), 'currency_mismatch');
    throwsCode(() => subtract(eur, usd), 'currency_mismatch');
    throwsCode(() => compare(eur, usd), 'currency_mismatch');
  });

  it('add and subtract are inverse up to 10^15 minor units', () => {
    fc.assert(
      fc.property(amountArb, amountArb, currencyArb, (x, y, ccy) => {
        const a = money(x, ccy);
        const b = money(y, ccy);
        assert.deepEqual(subtract(add(a, b), b), a);
        assert.deepEqual(add(subtract(a, b), b), a);
        assert.deepEqual(negate(negate(a)), a);
      }),
    );
  });
});

describe('parseDecimal / formatMinor', () => {
  it('parses major-unit decimals to minor units', () => {
    assert.equal(parseDecimal('12.34', 'EUR'), 1234n);
    assert.equal(parseDecimal('12.3', 'EUR'), 1230n);
    assert.equal(parseDecimal('-0.5', 'EUR'), -50n);
    assert.equal(parseDecimal('1000', 'JPY'), 1000n);
    assert.equal(parseDecimal('1.234', 'BHD'), 1234n);
    assert.equal(parseDecimal('0.0001', 'CLF'), 1n);
    assert.equal(parseDecimal('-0', 'EUR'), 0n);
    assert.equal(parseDecimal('9223372036854775.807', 'BHD'), 9223372036854775807n);
  });

  it('refuses excess decimals, garbage, exponents and whitespace', () => {
    throwsCode(() => parseDecimal('12.345', 'EUR'), 'amount_invalid');
    throwsCode(() => parseDecimal('1.0', 'JPY'), 'amount_invalid');
    throwsCode(() => parseDecimal('1.2345', 'BHD'), 'amount_invalid');
    const garbage = [
      '',
      '-',
      '.',
      '.5',
      '5.',
      '+1',
      '1e3',
      '1E3',
      ' 1',
      '1 ',
      '1\n',
      '1,50',
      '1_000',
      '0x10',
      'NaN',
      'Infinity',
      '--1',
      '1.2.3',
      '١٢',
      '1'.repeat(41),
    ];
    for (const input of garbage) throwsCode(() => parseDecimal(input, 'EUR'), 'amount_invalid');
  });

  it('formats minor units exactly', () => {
    assert.equal(formatMinor(1234n, 'EUR'), '12.34');
    assert.equal(formatMinor(-5n, 'EUR'), '-0.05');
    assert.equal(formatMinor(0n, 'EUR'), '0.00');
    assert.equal(formatMinor(1000n, 'JPY'), '1000');
    assert.equal(formatMinor(-1000n, 'JPY'), '-1000');
    assert.equal(formatMinor(1234n, 'BHD'), '1.234');
    assert.equal(formatMinor(1n, 'CLF'), '0.0001');
    assert.equal(formatMinor(10n ** 15n + 1n, 'EUR'), '10000000000000.01');
  });

  it('round-trips format → parse and parse → format up to 10^15 minor units', () => {
    fc.assert(
      fc.property(amountArb, currencyArb, (amount, ccy) => {
        assert.equal(parseDecimal(formatMinor(amount, ccy), ccy), amount);
      }),
    );
    fc.assert(
      fc.property(amountArb, currencyArb, (amount, ccy) => {
        const text = formatMinor(amount, ccy);
        assert.equal(formatMinor(parseDecimal(text, ccy), ccy), text);
      }),
    );
  });
});

describe('parseRate / parseQuantity', () => {
  it('parses decimals with up to 6 places into reduced rationals', () => {
    assert.deepEqual(parseRate('20'), { num: 20n, den: 1n });
    assert.deepEqual(parseRate('20.0'), { num: 20n, den: 1n });
    assert.deepEqual(parseRate('7.125'), { num: 57n, den: 8n });
    assert.deepEqual(parseRate('0.000001'), { num: 1n, den: 1000000n });
    assert.deepEqual(parseRate('0'), { num: 0n, den: 1n });
    assert.deepEqual(parseQuantity('0.5'), { num: 1n, den: 2n });
    assert.deepEqual(parseQuantity('1.333333'), { num: 1333333n, den: 1000000n });
  });

  it('refuses negatives unless allowed, and more than 6 decimals', () => {
    throwsCode(() => parseRate('-1'), 'rate_invalid');
    assert.deepEqual(parseRate('-1.5', { allowNegative: true }), { num: -3n, den: 2n });
    throwsCode(() => parseRate('0.0000001'), 'rate_invalid');
    throwsCode(() => parseRate('1e2'), 'rate_invalid');
    throwsCode(() => parseRate(' 20'), 'rate_invalid');
    throwsCode(() => parseRate('20%'), 'rate_invalid');
    throwsCode(() => parseQuantity('-2'), 'quantity_invalid');
    throwsCode(() => parseQuantity('1.3333333'), 'quantity_invalid');
    assert.deepEqual(parseQuantity('-2', { allowNegative: true }), { num: -2n, den: 1n });
  });

  it('parses exactly and formats back canonically', () => {
    fc.assert(
      fc.property(decimalArb, ({ text, scaled, den }) => {
        const r = parseRate(text);
        assert.equal(r.num * den, scaled * r.den);
        assert.deepEqual(parseRate(formatRational(r)), r);
      }),
    );
    assert.equal(formatRational(parseRate('20.000')), '20');
    assert.equal(formatRational(parseRate('7.1250')), '7.125');
    assert.equal(formatRational(parseRate('-0.05', { allowNegative: true })), '-0.05');
  });
});

describe('divRound', () => {
  it('rounds ties away from zero (half_up) or to even (half_even)', () => {
    const cases: [bigint, bigint, bigint, bigint][] = [
      // num, den, half_up, half_even
      [5n, 2n, 3n, 2n],
      [7n, 2n, 4n, 4n],
      [-5n, 2n, -3n, -2n],
      [-7n, 2n, -4n, -4n],
      [1n, 2n, 1n, 0n],
      [-1n, 2n, -1n, 0n],
      [125n, 10n, 13n, 12n], // 0.125 EUR → 0.13 / 0.12
      [135n, 10n, 14n, 14n],
      [124n, 10n, 12n, 12n],
      [126n, 10n, 13n, 13n],
      [-126n, 10n, -13n, -13n],
      [0n, 7n, 0n, 0n],
      [5n, -2n, -3n, -2n],
    ];
    for (const [num, den, up, even] of cases) {
      assert.equal(divRound(num, den, 'half_up'), up, `${num}/${den} half_up`);
      assert.equal(divRound(num, den, 'half_even'), even, `${num}/${den} half_even`);
    }
  });

  it('is symmetric around zero for both modes', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: -(10n ** 24n), max: 10n ** 24n }),
        fc.bigInt({ min: 1n, max: 10n ** 9n }),
        modeArb,
        (n, d, mode) => {
          assert.equal(divRound(-n, d, mode), -divRound(n, d, mode));
        },
      ),
    );
  });

  it('returns a nearest integer, and the modes differ only on exact .5 ties', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: -(10n ** 24n), max: 10n ** 24n }),
        fc.bigInt({ min: 1n, max: 10n ** 9n }),
        (n, d) => {
          const up = divRound(n, d, 'half_up');
          const even = divRound(n, d, 'half_even');
          assert.ok(2n * abs(n - up * d) <= d);
          assert.ok(2n * abs(n - even * d) <= d);
          if (up !== even) {
            assert.equal(2n * abs(n - up * d), d);
            assert.equal(even % 2n, 0n);
            assert.ok(abs(up) > abs(even));
          }
        },
      ),
    );
  });

  it('resolves every .5 tie as specified', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -MAX, max: MAX }), (k) => {
        const n = 2n * k + 1n; // n / 2 = k + 0.5
        const awayFromZero = n > 0n ? k + 1n : k;
        const even = k % 2n === 0n ? k : k + 1n;
        assert.equal(divRound(n, 2n, 'half_up'), awayFromZero);
        assert.equal(divRound(n, 2n, 'half_even'), even);
      }),
    );
  });

  it('refuses a zero denominator', () => {
    assert.throws(() => divRound(1n, 0n, 'half_up'), RangeError);
  });
});

describe('mulRate / percentOf / mulQuantity', () => {
  it('matches hand-checked examples', () => {
    assert.equal(percentOf(1999n, '20', 'half_up'), 400n); // 399.8
    assert.equal(percentOf(1999n, '19.6', 'half_up'), 392n); // 391.804
    assert.equal(percentOf(250n, '5', 'half_up'), 13n); // 12.5
    assert.equal(percentOf(250n, '5', 'half_even'), 12n);
    assert.equal(percentOf(-250n, '5', 'half_up'), -13n);
    assert.equal(percentOf(-250n, '5', 'half_even'), -12n);
    assert.equal(percentOf(10000n, '7.125', 'half_up'), 713n); // 712.5
    assert.equal(percentOf(10000n, '7.125', 'half_even'), 712n);
    assert.equal(mulRate(125n, '0.1', 'half_up'), 13n); // 12.5
    assert.equal(mulRate(125n, '0.1', 'half_even'), 12n);
    assert.equal(mulRate(100000n, '1.085', 'half_up'), 108500n);
    assert.equal(mulRate(1n, '0.000001', 'half_up'), 0n);
    assert.equal(mulQuantity(999n, '3', 'half_up'), 2997n);
    assert.equal(mulQuantity(999n, '0.5', 'half_up'), 500n); // 499.5
    assert.equal(mulQuantity(999n, '0.5', 'half_even'), 500n); // 499.5 → even 500
    assert.equal(mulQuantity(1001n, '0.5', 'half_even'), 500n); // 500.5 → even 500
    assert.equal(mulQuantity(300n, '1.333333', 'half_up'), 400n); // 399.9999
    assert.equal(mulQuantity(300n, parseQuantity('-1', { allowNegative: true }), 'half_up'), -300n);
  });

  it('accepts pre-parsed rationals identically to strings', () => {
    fc.assert(
      fc.property(amountArb, decimalArb, modeArb, (amount, { text }, mode) => {
        assert.equal(mulRate(amount, parseRate(text), mode), mulRate(amount, text, mode));
        assert.equal(percentOf(amount, parseRate(text), mode), percentOf(amount, text, mode));
      }),
    );
  });

  it('is the identity for "1" and "100" % with no precision loss up to 10^15', () => {
    fc.assert(
      fc.property(amountArb, modeArb, (amount, mode) => {
        assert.equal(mulRate(amount, '1', mode), amount);
        assert.equal(mulRate(amount, '1.000000', mode), amount);
        assert.equal(percentOf(amount, '100', mode), amount);
        assert.equal(mulQuantity(amount, '1', mode), amount);
        assert.equal(mulRate(amount, '0', mode), 0n);
      }),
    );
  });

  it('rounds the exact product once to the nearest minor unit', () => {
    fc.assert(
      fc.property(amountArb, decimalArb, modeArb, (amount, { text, scaled, den }, mode) => {
        const result = mulRate(amount, text, mode);
        assert.ok(2n * abs(amount * scaled - result * den) <= den);
      }),
    );
  });

  it('refuses malformed or negative rates', () => {
    throwsCode(() => mulRate(100n, '-1', 'half_up'), 'rate_invalid');
    throwsCode(() => percentOf(100n, '20.0000001', 'half_up'), 'rate_invalid');
    throwsCode(() => mulQuantity(100n, 'abc', 'half_up'), 'quantity_invalid');
  });
});

describe('allocate', () => {
  it('matches hand-checked examples', () => {
    assert.deepEqual(allocate(100n, [1n, 1n, 1n]), [34n, 33n, 33n]);
    assert.deepEqual(allocate(-100n, [1n, 1n, 1n]), [-34n, -33n, -33n]);
    assert.deepEqual(allocate(5n, [1n, 1n, 1n, 1n, 1n, 1n]), [1n, 1n, 1n, 1n, 1n, 0n]);
    assert.deepEqual(allocate(100n, [0n, 1n, 0n]), [0n, 100n, 0n]);
    assert.deepEqual(allocate(1000n, [3n, 7n]), [300n, 700n]);
    assert.deepEqual(allocate(1n, [1n, 2n]), [0n, 1n]); // largest remainder wins, not lowest index
    assert.deepEqual(allocate(2n, [1n, 1n, 1n]), [1n, 1n, 0n]);
    assert.deepEqual(allocate(0n, [1n, 2n]), [0n, 0n]);
    assert.deepEqual(allocate(10n, [5n]), [10n]);
  });

  it('refuses invalid weights', () => {
    throwsCode(() => allocate(100n, []), 'allocation_invalid');
    throwsCode(() => allocate(100n, [0n, 0n]), 'allocation_invalid');
    throwsCode(() => allocate(100n, [1n, -1n, 2n]), 'allocation_invalid');
  });

  const weightsArb = fc
    .array(fc.bigInt({ min: 0n, max: 10n ** 6n }), { minLength: 1, maxLength: 20 })
    .filter((ws) => ws.some((w) => w > 0n));

  it('parts sum exactly to the total and each is within 1 of its exact share', () => {
    fc.assert(
      fc.property(amountArb, weightsArb, (total, weights) => {
        const parts = allocate(total, weights);
        const weightSum = weights.reduce((s, w) => s + w, 0n);
        assert.equal(parts.length, weights.length);
        assert.equal(
          parts.reduce((s, p) => s + p, 0n),
          total,
        );
        parts.forEach((part, i) => {
          const w = weights[i] ?? 0n;
          // |part − total·w/W| < 1  ⇔  |part·W − total·w| < W
          assert.ok(abs(part * weightSum - total * w) < weightSum);
          if (w === 0n) assert.equal(part, 0n);
        });
      }),
    );
  });

  it('is deterministic and symmetric for negative totals', () => {
    fc.assert(
      fc.property(amountArb, weightsArb, (total, weights) => {
        assert.deepEqual(allocate(total, weights), allocate(total, weights));
        assert.deepEqual(
          allocate(-total, weights),
          allocate(total, weights).map((p) => -p),
        );
      }),
    );
  });

  it('allocates evenly with larger parts first', () => {
    assert.deepEqual(allocateEvenly(100n, 3), [34n, 33n, 33n]);
    assert.deepEqual(allocateEvenly(-100n, 3), [-34n, -33n, -33n]);
    assert.deepEqual(allocateEvenly(2n, 4), [1n, 1n, 0n, 0n]);
    throwsCode(() => allocateEvenly(100n, 0), 'allocation_invalid');
    throwsCode(() => allocateEvenly(100n, 1.5), 'allocation_invalid');
    fc.assert(
      fc.property(amountArb, fc.integer({ min: 1, max: 50 }), (total, n) => {
        const parts = allocateEvenly(total, n);
        assert.deepEqual(
          parts,
          allocate(
            total,
            Array.from({ length: n }, () => 1n),
          ),
        );
        assert.equal(
          parts.reduce((s, p) => s + p, 0n),
          total,
        );
      }),
    );
  });
});
