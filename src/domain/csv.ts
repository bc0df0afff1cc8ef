/**
 * The one CSV writer of every report and export: RFC 4180 (comma, CRLF, fields quoted when they
 * hold a comma, a quote, CR or LF; quotes doubled) plus formula-injection escaping (DESIGN.md §6).
 *
 * Text cells that start with `=`, `+`, `-`, `@`, a tab or a carriage return are prefixed with a
 * single quote, so a spreadsheet shows them as text instead of evaluating them. Numeric cells
 * (bigint or integer number values, i.e. amounts in minor units and counts) are written as plain
 * integers and never prefixed: "-1500" stays a readable negative number, and a cell that is
 * nothing but an optional minus and digits cannot carry a formula. A negative amount passed as
 * a string is text and IS escaped; callers pass amounts as bigint.
 */

/** A cell: text, a whole number, a boolean, or empty. */
export type CsvCell = string | bigint | number | boolean | null | undefined;

const FORMULA_START = /^[=+\-@\t\r]/;
const NEEDS_QUOTES = /[",\r\n]/;

/** One cell, escaped and quoted as needed. */
export function csvCell(value: CsvCell): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new TypeError('CSV numeric cells are whole numbers');
    return String(value);
  }
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  const text = FORMULA_START.test(value) ? `'${value}` : value;
  return NEEDS_QUOTES.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** One record, terminated by CRLF. */
export function csvLine(cells: readonly CsvCell[]): string {
  return `${cells.map(csvCell).join(',')}\r\n`;
}

/** A whole document from a header and rows (small reports; large exports stream `csvLine`s). */
export function csvDocument(header: readonly string[], rows: Iterable<readonly CsvCell[]>): string {
  let out = csvLine(header);
  for (const r of rows) out += csvLine(r);
  return out;
}

/** A value of a named column (the privacy export's row objects). */
export type CsvValue = CsvCell;

/** A whole table from row objects: the header, then one line per row, the columns in the header's order. */
export function csvTable(columns: readonly string[], rows: readonly Record<string, CsvValue>[]): string {
  return csvDocument(
    columns,
    rows.map((r) => columns.map((c) => r[c])),
  );
}
