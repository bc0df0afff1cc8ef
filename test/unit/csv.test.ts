import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { csvCell, csvDocument, csvLine } from '../../src/domain/csv.js';
import { parseCsv } from '../helpers/csv.js';

describe('CSV writer', () => {
  it('escapes cells that a spreadsheet would evaluate as formulas', () => {
    assert.equal(csvCell('=1+1'), "'=1+1");
    assert.equal(csvCell('+41 44 000'), "'+41 44 000");
    assert.equal(csvCell('-2+3'), "'-2+3");
    assert.equal(csvCell('@SUM(A1)'), "'@SUM(A1)");
    assert.equal(csvCell('\t=cmd'), "'\t=cmd");
    assert.equal(csvCell('\r=cmd'), `"'\r=cmd"`);
    assert.equal(csvCell('=HYPERLINK("x")'), `"'=HYPERLINK(""x"")"`);
    assert.equal(csvCell('plain'), 'plain');
    assert.equal(csvCell('a=b'), 'a=b');
  });

  it('keeps numeric cells (bigint and integers) as plain numbers, negatives included', () => {
    assert.equal(csvCell(-1500n), '-1500');
    assert.equal(csvCell(-7), '-7');
    assert.equal(csvCell(0), '0');
    assert.equal(csvCell(null), '');
    assert.equal(csvCell(true), 'true');
    assert.throws(() => csvCell(1.5));
    // a negative amount given as text is text, and escaped
    assert.equal(csvCell('-1500'), "'-1500");
  });

  it('quotes per RFC 4180 and ends records with CRLF', () => {
    assert.equal(csvLine(['a,b', 'say "hi"', 'line\nbreak', 3n]), '"a,b","say ""hi""","line\nbreak",3\r\n');
    assert.equal(csvDocument(['x', 'y'], [[1, 'z']]), 'x,y\r\n1,z\r\n');
  });

  it('round-trips any text: read back, a cell is the text, or the text behind one added quote when it starts like a formula', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: 'binary', maxLength: 20 }), { minLength: 1, maxLength: 6 }),
        (cells) => {
          const [row] = parseCsv(csvLine(cells));
          assert.ok(row);
          assert.equal(row.length, cells.length);
          row.forEach((got, i) => {
            const want = cells[i] as string;
            if (/^[=+\-@\t\r]/.test(want)) assert.equal(got, `'${want}`);
            else assert.equal(got, want);
            assert.ok(!/^[=+\-@\t\r]/.test(got), 'no cell read back starts like a formula');
          });
        },
      ),
    );
  });
});
