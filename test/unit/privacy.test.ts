import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { registeredTables } from '../../src/adapters/crypto/encrypted-columns.js';
import { retainUntil } from '../../src/app/privacy.js';
import { classifiedFields } from '../../src/app/processing-records.js';
import { csvCell, csvLine, csvTable } from '../../src/domain/csv.js';

describe('csv', () => {
  it('neutralises cells that a spreadsheet would run as a formula', () => {
    for (const v of ['=1+1', '+1', '-1', '@SUM(A1)', '\tx', '\rx'])
      assert.ok(csvCell(v).replace(/^"/, '').startsWith("'"), v);
    assert.equal(csvCell('=HYPERLINK("x")'), `"'=HYPERLINK(""x"")"`);
    assert.equal(csvCell('plain'), 'plain');
    assert.equal(csvCell('a,b'), '"a,b"');
    assert.equal(csvCell('line\nbreak'), '"line\nbreak"');
  });
  it('writes numbers as numbers and nulls as empty cells', () => {
    assert.equal(csvCell(-100), '-100');
    assert.equal(csvCell(12n), '12');
    assert.equal(csvCell(null), '');
    assert.equal(csvLine(['a', 1, null, true]), 'a,1,,true\r\n');
    assert.equal(csvTable(['x', 'y'], [{ x: '=a', y: 2 }]), "x,y\r\n'=a,2\r\n");
  });
});

describe('retention period', () => {
  it('adds whole years to the issue date (29 February → 28 February)', () => {
    assert.equal(retainUntil('2026-03-01', 10), '2036-03-01');
    assert.equal(retainUntil('2024-02-29', 1), '2025-02-28');
    assert.equal(retainUntil('2024-02-29', 4), '2028-02-29');
    assert.equal(retainUntil('2026-12-31', 10), '2036-12-31');
  });
});

describe('data classification', () => {
  it('every field of every registered encrypted table declares its category, purpose, basis and retention', () => {
    assert.ok(registeredTables().length >= 2);
    const { fields, unclassified } = classifiedFields();
    assert.deepEqual(
      unclassified,
      [],
      `encrypted fields without a data category: ${unclassified.join(', ')}`,
    );
    for (const f of fields) {
      assert.ok(
        f.category && f.purpose && f.legal_basis && f.retention && f.subjects,
        `${f.table}.${f.column}`,
      );
    }
    const registered = registeredTables().flatMap((t) => t.columns.map((c) => `${t.spec.table}.${c.column}`));
    for (const c of registered)
      assert.ok(
        fields.some((f) => `${f.table}.${f.column}` === c),
        c,
      );
  });
});
