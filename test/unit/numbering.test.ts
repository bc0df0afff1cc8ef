import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isDomainError } from '../../src/domain/errors.js';
import { parseNumberPattern, renderNumber, sequenceScope } from '../../src/domain/numbering.js';

describe('document numbering', () => {
  it('renders series patterns', () => {
    assert.equal(renderNumber('INV-{YYYY}-{seq:6}', '2026-03-09', 123), 'INV-2026-000123');
    assert.equal(renderNumber('CN{YY}{MM}/{seq:4}', '2026-03-09', 7n), 'CN2603/0007');
    assert.equal(renderNumber('{YYYY}.{MM}.{DD}-{seq}', '2026-12-01', 42), '2026.12.01-42');
    assert.equal(renderNumber('Q-{seq:3}', '2026-01-01', 12345), 'Q-12345'); // grows, never truncates
  });

  it('rejects bad patterns and sequences', () => {
    for (const p of [
      '',
      'INV',
      'INV-{seq}-{seq}',
      'INV-{seq:0}',
      'INV-{seq:13}',
      'INV-{YYYYY}-{seq}',
      'INV {seq}',
      'INV-<{seq}>',
      `${'X'.repeat(60)}{seq}`,
    ]) {
      assert.throws(
        () => parseNumberPattern(p),
        (e) => isDomainError(e, 'numbering_pattern_invalid'),
        p,
      );
    }
    assert.throws(
      () => renderNumber('INV-{seq}', '2026-01-01', 0),
      (e) => isDomainError(e, 'validation_failed'),
    );
    assert.throws(
      () => renderNumber('INV-{seq}', '2026-01-01', 1.5),
      (e) => isDomainError(e, 'validation_failed'),
    );
    assert.throws(
      () => renderNumber('INV-{seq}', '2026-02-30', 1),
      (e) => isDomainError(e, 'date_invalid'),
    );
  });

  it('restarts counters only where the rendered date keeps numbers unique', () => {
    assert.equal(sequenceScope('INV-{YYYY}-{seq:6}', '2026-03-09'), '2026');
    assert.equal(sequenceScope('INV-{YYYY}{MM}-{seq}', '2026-03-09'), '2026-03');
    assert.equal(sequenceScope('INV-{YY}{MM}{DD}-{seq}', '2026-03-09'), '2026-03-09');
    assert.equal(sequenceScope('INV-{MM}-{seq}', '2026-03-09'), '');
    assert.equal(sequenceScope('INV-{seq:6}', '2026-03-09'), '');
    assert.equal(parseNumberPattern('INV-{YYYY}-{seq:6}').period, 'year');
  });
});
