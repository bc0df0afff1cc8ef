import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isDomainError } from '../../src/domain/errors.js';
import { taxGroupKey, VAT_CATEGORIES, validateTaxRate } from '../../src/domain/tax.js';

function rejects(fn: () => unknown, param: string): void {
  assert.throws(fn, (e) => isDomainError(e, 'tax_rate_invalid') && e.param === param);
}

describe('tax rates', () => {
  it('accepts a standard rate and normalises the percentage', () => {
    const r = validateTaxRate({ percentage: '20.000', category: 'S' });
    assert.equal(r.percentage, '20');
    assert.deepEqual(r.rate, { num: 20n, den: 1n });
    assert.equal(r.inclusive, false);
    assert.equal(r.compound, false);
    assert.equal(taxGroupKey(r), 'S:20');
  });

  it('knows exactly the EN 16931 categories', () => {
    assert.deepEqual([...VAT_CATEGORIES], ['S', 'Z', 'E', 'AE', 'K', 'G', 'O', 'L', 'M']);
    rejects(() => validateTaxRate({ percentage: '20', category: 'X' }), 'tax_rate.category');
    rejects(() => validateTaxRate({ percentage: '20', category: 's' }), 'tax_rate.category');
  });

  it('requires an exemption reason for E, AE, K, G and O, and refuses one for S, Z, L, M', () => {
    for (const category of ['E', 'AE', 'K', 'G', 'O']) {
      rejects(() => validateTaxRate({ percentage: '0', category }), 'tax_rate.exemption_reason');
      rejects(
        () => validateTaxRate({ percentage: '0', category, exemption_reason: '  ' }),
        'tax_rate.exemption_reason',
      );
      const ok = validateTaxRate({ percentage: '0', category, exemption_reason: 'Article 135' });
      assert.equal(ok.exemption_reason, 'Article 135');
    }
    assert.equal(
      validateTaxRate({ percentage: '0', category: 'AE', exemption_reason_code: 'VATEX-EU-AE' })
        .exemption_reason_code,
      'VATEX-EU-AE',
    );
    for (const category of ['S', 'Z', 'L', 'M']) {
      const percentage = category === 'Z' ? '0' : '7';
      rejects(
        () => validateTaxRate({ percentage, category, exemption_reason: 'no' }),
        'tax_rate.exemption_reason',
      );
    }
  });

  it('enforces the rate of each category', () => {
    for (const category of ['Z', 'E', 'AE', 'K', 'G', 'O']) {
      rejects(
        () => validateTaxRate({ percentage: '5', category, exemption_reason: 'r' }),
        'tax_rate.percentage',
      );
    }
    rejects(() => validateTaxRate({ percentage: '0', category: 'S' }), 'tax_rate.percentage');
    assert.equal(validateTaxRate({ percentage: '0', category: 'L' }).percentage, '0');
    assert.equal(validateTaxRate({ percentage: '9.5', category: 'M' }).percentage, '9.5');
  });

  it('rejects malformed, negative, over-precise and over-100 percentages', () => {
    for (const percentage of ['-1', '1e2', '20%', '', '7.1234567', '100.000001', '101']) {
      rejects(
        () => validateTaxRate({ percentage, category: 'S' }, 'lines.0.tax_rates.1'),
        'lines.0.tax_rates.1.percentage',
      );
    }
    assert.equal(validateTaxRate({ percentage: '7.123456', category: 'S' }).percentage, '7.123456');
  });

  it('compound rates are positive and exclusive', () => {
    rejects(
      () => validateTaxRate({ percentage: '5', category: 'S', compound: true, inclusive: true }),
      'tax_rate.compound',
    );
    rejects(() => validateTaxRate({ percentage: '0', category: 'L', compound: true }), 'tax_rate.compound');
    const r = validateTaxRate({ percentage: '9.975', category: 'S', compound: true });
    assert.equal(taxGroupKey(r), 'S:9.975:compound');
  });

  it('refuses a non-text or oversized exemption reason', () => {
    rejects(
      () => validateTaxRate({ percentage: '0', category: 'E', exemption_reason: 5 as never }),
      'tax_rate.exemption_reason',
    );
    rejects(
      () => validateTaxRate({ percentage: '0', category: 'E', exemption_reason: 'x'.repeat(301) }),
      'tax_rate.exemption_reason',
    );
    rejects(
      () =>
        validateTaxRate({
          percentage: '0',
          category: 'E',
          exemption_reason: 'ok',
          exemption_reason_code: [] as never,
        }),
      'tax_rate.exemption_reason_code',
    );
  });

  it('keeps exempt amounts with different reasons in different groups', () => {
    const a = validateTaxRate({ percentage: '0', category: 'E', exemption_reason: 'Medical' });
    const b = validateTaxRate({ percentage: '0', category: 'E', exemption_reason: 'Education' });
    assert.notEqual(taxGroupKey(a), taxGroupKey(b));
  });
});

describe('validateTaxRate keeps the result for a frozen input only', () => {
  it('a frozen input gives one frozen result; an unfrozen one is validated afresh each time', () => {
    const frozen = Object.freeze({ percentage: '19', category: 'S' as const });
    const a = validateTaxRate(frozen);
    assert.equal(validateTaxRate(frozen), a);
    assert.ok(Object.isFrozen(a));
    const open: { percentage: string; category: 'S' } = { percentage: '19', category: 'S' };
    assert.equal(validateTaxRate(open).percentage, '19');
    open.percentage = '7';
    assert.equal(validateTaxRate(open).percentage, '7', 'a changed input is not answered from memory');
    open.percentage = '190';
    assert.throws(
      () => validateTaxRate(open),
      (e: unknown) => isDomainError(e),
    );
  });
});
