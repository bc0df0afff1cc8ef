/**
 * CSV (RFC 4180) with formula-injection escaping (DESIGN.md §6): a text cell that starts with
 * `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed with `'`, so a spreadsheet shows it
 * as text instead of running it. Numbers are written as numbers (a negative amount stays -100).
 */
export type CsvValue = string | number | bigint | boolean | null | undefined;

/** One cell: neutralised when it could start a formula, quoted when it holds `"`, `,` or a line break. */
export function csvCell(value: CsvValue): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean')
    return String(value);
  let s = value;
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** One CSV line (CRLF-terminated, as RFC 4180 says). */
export function csvLine(cells: readonly CsvValue[]): string {
  return `${cells.map(csvCell).join(',')}\r\n`;
}

/** A whole table: the header, then one line per row, the columns in the header's order. */
export function csvTable(columns: readonly string[], rows: readonly Record<string, CsvValue>[]): string {
  return csvLine(columns) + rows.map((r) => csvLine(columns.map((c) => r[c]))).join('');
}
