import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  addDays,
  assertIsoDate,
  compareDates,
  daysBetween,
  dueDateFromTerms,
  isIsoDate,
} from '../../src/domain/dates.js';
import { isDomainError } from '../../src/domain/errors.js';

describe('ISO dates', () => {
  it('validates calendar dates including leap years', () => {
    assert.equal(assertIsoDate('2024-02-29'), '2024-02-29');
    assert.equal(isIsoDate('2023-02-29'), false);
    assert.equal(isIsoDate('1900-02-29'), false);
    assert.equal(isIsoDate('2000-02-29'), true);
    assert.equal(isIsoDate('2026-13-01'), false);
    assert.equal(isIsoDate('2026-04-31'), false);
    assert.equal(isIsoDate('2026-1-01'), false);
    assert.equal(isIsoDate('2026-01-01T00:00:00Z'), false);
    assert.throws(
      () => assertIsoDate('2026-02-30', 'issue_date'),
      (e) => isDomainError(e, 'date_invalid') && e.param === 'issue_date',
    );
  });

  it('adds days across month, year and leap boundaries', () => {
    assert.equal(addDays('2026-01-31', 1), '2026-02-01');
    assert.equal(addDays('2024-02-28', 1), '2024-02-29');
    assert.equal(addDays('2023-02-28', 1), '2023-03-01');
    assert.equal(addDays('2026-12-31', 1), '2027-01-01');
    assert.equal(addDays('2026-03-01', -1), '2026-02-28');
    assert.equal(addDays('1970-01-01', 0), '1970-01-01');
    assert.equal(addDays('1969-12-31', 1), '1970-01-01');
    assert.throws(
      () => addDays('2026-01-01', 1.5),
      (e) => isDomainError(e, 'date_invalid'),
    );
  });

  it('due date is issue date plus payment terms', () => {
    assert.equal(dueDateFromTerms('2026-01-15', 30), '2026-02-14');
    assert.equal(dueDateFromTerms('2026-12-15', 30), '2027-01-14');
    assert.equal(dueDateFromTerms('2026-01-15', 0), '2026-01-15');
    assert.throws(
      () => dueDateFromTerms('2026-01-15', -1),
      (e) => isDomainError(e, 'date_invalid'),
    );
  });

  it('daysBetween and compareDates agree with addDays (property, checked against Date.UTC)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -200_000, max: 2_900_000 }),
        fc.integer({ min: -5000, max: 5000 }),
        (dayNumber, offset) => {
          const iso = new Date(dayNumber * 86_400_000).toISOString().slice(0, 10);
          const expected = new Date((dayNumber + offset) * 86_400_000).toISOString().slice(0, 10);
          assert.equal(addDays(iso, offset), expected);
          assert.equal(daysBetween(iso, expected), offset);
          assert.equal(compareDates(expected, iso), offset === 0 ? 0 : offset > 0 ? 1 : -1);
        },
      ),
    );
  });
});
