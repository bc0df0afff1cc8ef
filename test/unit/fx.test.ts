import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isDomainError } from '../../src/domain/errors.js';
import { convertMinor, parseFxRate } from '../../src/domain/fx.js';

describe('fx conversion', () => {
  it('applies the rate and the exponent difference exactly, rounding once', () => {
    // 123.45 USD × 0.912345 = 112.628990… EUR → 112.63
    assert.equal(convertMinor(12345n, parseFxRate('USD', 'EUR', '0.912345'), 'half_up'), 11263n);
    // 10000 JPY × 0.006123 = 61.23 EUR
    assert.equal(convertMinor(10000n, parseFxRate('JPY', 'EUR', '0.006123'), 'half_up'), 6123n);
    // 1.005 BHD × 2.5 = 2.5125 EUR → 2.51
    assert.equal(convertMinor(1005n, parseFxRate('BHD', 'EUR', '2.5'), 'half_up'), 251n);
    // 0.05 EUR × 150 = 7.5 JPY: a tie, 8 half-up, 8 half-even (7 is odd)
    assert.equal(convertMinor(5n, parseFxRate('EUR', 'JPY', '150'), 'half_up'), 8n);
    assert.equal(convertMinor(5n, parseFxRate('EUR', 'JPY', '150'), 'half_even'), 8n);
    // 0.03 EUR × 150 = 4.5 JPY: half-up 5, half-even 4
    assert.equal(convertMinor(3n, parseFxRate('EUR', 'JPY', '150'), 'half_up'), 5n);
    assert.equal(convertMinor(3n, parseFxRate('EUR', 'JPY', '150'), 'half_even'), 4n);
    assert.equal(convertMinor(-12345n, parseFxRate('USD', 'EUR', '0.912345'), 'half_up'), -11263n);
  });

  it('rejects zero, negative, over-precise rates and unknown currencies', () => {
    for (const rate of ['0', '-1', '1.1234567', 'abc']) {
      assert.throws(
        () => parseFxRate('USD', 'EUR', rate),
        (e) => isDomainError(e, 'rate_invalid') && e.param === 'fx_rate',
      );
    }
    assert.throws(
      () => parseFxRate('USD', 'ZZZ', '1'),
      (e) => isDomainError(e, 'currency_unknown'),
    );
  });
});
