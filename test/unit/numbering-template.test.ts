import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { numberTemplate, renderNumber } from '../../src/domain/numbering.js';

// The database renders a finalised invoice's number from this template in the statement that
// takes the sequence; it must be exactly renderNumber's output, for any pattern, date and number.
const render = (t: { prefix: string; width: number; suffix: string }, n: bigint) =>
  t.prefix + n.toString().padStart(t.width, '0') + t.suffix;

describe('numberTemplate', () => {
  it('splits the default patterns around the sequence', () => {
    assert.deepEqual(numberTemplate('INV-{YYYY}-{seq:6}', '2026-03-01'), {
      prefix: 'INV-2026-',
      width: 6,
      suffix: '',
    });
    assert.deepEqual(numberTemplate('{seq}/{YY}{MM}', '2026-11-25'), {
      prefix: '',
      width: 1,
      suffix: '/2611',
    });
    assert.deepEqual(numberTemplate('A{DD}.{seq:3}.B{MM}', '2026-01-09'), {
      prefix: 'A09.',
      width: 3,
      suffix: '.B01',
    });
  });

  it('renders exactly what renderNumber renders (property), including numbers wider than the padding', () => {
    const literal = fc.stringMatching(/^[A-Za-z0-9\-_/.]{0,5}$/);
    const token = fc.constantFrom('{YYYY}', '{YY}', '{MM}', '{DD}');
    const piece = fc.oneof(literal, token);
    fc.assert(
      fc.property(
        fc.array(piece, { maxLength: 4 }),
        fc.array(piece, { maxLength: 4 }),
        fc.integer({ min: 1, max: 12 }),
        fc.date({ min: new Date('1900-01-01'), max: new Date('2999-12-31'), noInvalidDate: true }),
        fc.bigInt({ min: 1n, max: 10n ** 15n }),
        (before, after, width, d, n) => {
          const pattern = `${before.join('')}{seq:${width}}${after.join('')}`;
          if (pattern.length > 64) return;
          const date = d.toISOString().slice(0, 10);
          assert.equal(render(numberTemplate(pattern, date), n), renderNumber(pattern, date, n));
        },
      ),
    );
  });
});
