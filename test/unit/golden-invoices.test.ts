// Golden invoices: worked examples whose totals were computed by hand (see each fixture's
// comment), and official EN 16931 UBL examples whose totals our computation must reproduce.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  computeInvoice,
  type DocumentAdjustmentInput,
  type InvoiceInput,
  type InvoiceTotals,
} from '../../src/domain/invoice.js';
import { currencyExponent, parseDecimal, type RoundingMode } from '../../src/domain/money.js';
import type { TaxRateInput } from '../../src/domain/tax.js';
import type { GoldenInvoice } from '../fixtures/golden-invoices/types.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const goldenDir = path.join(here, '..', 'fixtures', 'golden-invoices');
const en16931Dir = path.join(here, '..', 'fixtures', 'en16931');

const goldenFiles = readdirSync(goldenDir)
  .filter((f) => /^g\d+.*\.ts$/.test(f))
  .sort();

describe('golden invoices (computed by hand)', () => {
  it('there are at least 12 worked examples', () => {
    assert.ok(goldenFiles.length >= 12, `only ${goldenFiles.length}`);
  });

  for (const file of goldenFiles) {
    it(file, async () => {
      const mod = (await import(pathToFileURL(path.join(goldenDir, file)).href)) as {
        default: GoldenInvoice;
      };
      const g = mod.default;
      const r = computeInvoice(g.input, g.options);
      const e = g.expected;
      assert.deepEqual(
        r.lines.map((l) => l.amount),
        e.lines,
        'line amounts',
      );
      assert.deepEqual(
        r.lines.map((l) => l.net_amount),
        e.line_nets ?? e.lines,
        'line nets',
      );
      assert.deepEqual(
        r.tax_breakdown.map((t) => [t.key, t.taxable_amount, t.tax_amount]),
        e.tax_breakdown,
        'tax breakdown',
      );
      assert.equal(r.subtotal, e.subtotal, 'subtotal');
      assert.equal(r.allowance_total_amount, e.allowance_total ?? 0n, 'allowance total');
      assert.equal(r.charge_total_amount, e.charge_total ?? 0n, 'charge total');
      assert.equal(r.tax_exclusive_amount, e.tax_exclusive, 'tax exclusive');
      assert.equal(r.tax_amount, e.tax, 'tax');
      assert.equal(r.total, e.total, 'total');
      assert.equal(r.amount_due, e.amount_due, 'amount due');
      // The reconciliation of DESIGN.md §3 holds on every example.
      assert.equal(
        r.total,
        r.line_extension_amount - r.allowance_total_amount + r.charge_total_amount + r.tax_amount,
      );
    });
  }
});

interface Vat {
  readonly category: string;
  readonly percent?: string;
  readonly exemption_reason?: string;
}
interface Adjustment {
  readonly percentage?: string;
  readonly base?: string;
  readonly amount: string;
  readonly vat?: Vat;
}
interface En16931Example {
  readonly source: string;
  readonly currency: string;
  readonly rounding: RoundingMode;
  readonly lines: readonly {
    readonly id: string;
    readonly quantity: string;
    readonly price: string;
    readonly base_quantity?: string;
    readonly allowances?: readonly Adjustment[];
    readonly charges?: readonly Adjustment[];
    readonly vat: Vat;
    readonly line_extension: string;
  }[];
  readonly allowances?: readonly Adjustment[];
  readonly charges?: readonly Adjustment[];
  readonly prepaid?: string;
  readonly expected: {
    readonly line_extension: string;
    readonly tax_exclusive: string;
    readonly tax_inclusive: string;
    readonly allowance_total?: string;
    readonly charge_total?: string;
    readonly prepaid?: string;
    readonly payable: string;
    readonly tax_total: string;
    readonly subtotals: readonly { category: string; percent?: string; taxable: string; tax: string }[];
  };
}

/** "0.00880" EUR → "0.88" cents: moves the decimal point by the currency exponent, exactly. */
function majorToMinorDecimal(major: string, exponent: number): string {
  const [int = '0', frac = ''] = major.split('.');
  const padded = frac.padEnd(exponent, '0');
  const whole = `${int}${padded.slice(0, exponent)}`.replace(/^0+(?=\d)/, '');
  const rest = padded.slice(exponent).replace(/0+$/, '');
  return rest === '' ? whole : `${whole}.${rest}`;
}

function rateOf(vat: Vat): TaxRateInput {
  return {
    percentage: vat.percent ?? '0',
    category: vat.category,
    ...(vat.exemption_reason !== undefined ? { exemption_reason: vat.exemption_reason } : {}),
  };
}

function toInput(x: En16931Example): InvoiceInput {
  const exponent = currencyExponent(x.currency);
  const adj = (a: Adjustment): DocumentAdjustmentInput => ({
    ...(a.percentage !== undefined
      ? { percentage: a.percentage }
      : { amount: parseDecimal(a.amount, x.currency) }),
    ...(a.vat !== undefined ? { tax_rates: [rateOf(a.vat)] } : {}),
  });
  return {
    currency: x.currency,
    lines: x.lines.map((l) => ({
      quantity: l.quantity,
      unit_amount_decimal: majorToMinorDecimal(l.price, exponent),
      ...(l.base_quantity !== undefined ? { price_base_quantity: l.base_quantity } : {}),
      ...(l.allowances ? { discounts: l.allowances.map(adj) } : {}),
      ...(l.charges ? { charges: l.charges.map(adj) } : {}),
      tax_rates: [rateOf(l.vat)],
    })),
    ...(x.allowances ? { discounts: x.allowances.map(adj) } : {}),
    ...(x.charges ? { charges: x.charges.map(adj) } : {}),
    ...(x.prepaid !== undefined ? { prepaid_amount: parseDecimal(x.prepaid, x.currency) } : {}),
  };
}

/** The text of the first element named `tag` (namespace prefix included) inside `xml`. */
function element(xml: string, tag: string): string | undefined {
  const m = new RegExp(`<${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</${tag}>`).exec(xml);
  return m?.[1]?.trim();
}

/** LegalMonetaryTotal and the document-currency TaxTotal, read straight from the UBL XML. */
function totalsFromXml(xml: string, currency: string) {
  const lmt = element(xml, 'cac:LegalMonetaryTotal') ?? '';
  const taxTotals = [...xml.matchAll(/<cac:TaxTotal>([\s\S]*?)<\/cac:TaxTotal>/g)].map((m) => m[1] ?? '');
  const taxTotal = taxTotals.find((t) => t.includes(`<cbc:TaxAmount currencyID="${currency}">`)) ?? '';
  const subtotals = [...taxTotal.matchAll(/<cac:TaxSubtotal>([\s\S]*?)<\/cac:TaxSubtotal>/g)].map((m) => {
    const s = m[1] ?? '';
    const category = element(s, 'cac:TaxCategory') ?? '';
    return {
      category: element(category, 'cbc:ID'),
      percent: element(category, 'cbc:Percent'),
      taxable: element(s, 'cbc:TaxableAmount'),
      tax: element(s, 'cbc:TaxAmount'),
    };
  });
  return {
    line_extension: element(lmt, 'cbc:LineExtensionAmount'),
    tax_exclusive: element(lmt, 'cbc:TaxExclusiveAmount'),
    tax_inclusive: element(lmt, 'cbc:TaxInclusiveAmount'),
    allowance_total: element(lmt, 'cbc:AllowanceTotalAmount'),
    charge_total: element(lmt, 'cbc:ChargeTotalAmount'),
    prepaid: element(lmt, 'cbc:PrepaidAmount'),
    payable: element(lmt, 'cbc:PayableAmount'),
    tax_total: element(taxTotal.split('<cac:TaxSubtotal>')[0] ?? '', 'cbc:TaxAmount'),
    subtotals,
    line_extensions: [
      ...xml.matchAll(/<cac:InvoiceLine>[\s\S]*?<cbc:LineExtensionAmount[^>]*>([^<]*)</g),
    ].map((m) => m[1]),
  };
}

const en16931Files = readdirSync(en16931Dir)
  .filter((f) => f.endsWith('.json'))
  .sort();

describe('official EN 16931 UBL examples', () => {
  it('uses at least three examples', () => {
    assert.ok(en16931Files.length >= 3);
  });

  for (const file of en16931Files) {
    it(file, () => {
      const x = JSON.parse(readFileSync(path.join(en16931Dir, file), 'utf8')) as En16931Example;
      const xml = readFileSync(path.join(en16931Dir, x.source), 'utf8');
      const fromXml = totalsFromXml(xml, x.currency);

      // The extraction matches the source document.
      const e = x.expected;
      assert.equal(fromXml.line_extension, e.line_extension);
      assert.equal(fromXml.tax_exclusive, e.tax_exclusive);
      assert.equal(fromXml.tax_inclusive, e.tax_inclusive);
      assert.equal(fromXml.allowance_total, e.allowance_total);
      assert.equal(fromXml.charge_total, e.charge_total);
      assert.equal(fromXml.prepaid, e.prepaid);
      assert.equal(fromXml.payable, e.payable);
      assert.equal(fromXml.tax_total, e.tax_total);
      assert.deepEqual(
        fromXml.subtotals,
        e.subtotals.map((s) => ({
          category: s.category,
          percent: s.percent,
          taxable: s.taxable,
          tax: s.tax,
        })),
      );
      assert.deepEqual(
        fromXml.line_extensions,
        x.lines.map((l) => l.line_extension),
      );

      // Our computation reproduces it to the minor unit.
      const c = x.currency;
      const m = (s: string | undefined): bigint => parseDecimal(s ?? '0', c);
      const r: InvoiceTotals = computeInvoice(toInput(x), { rounding: x.rounding });
      assert.deepEqual(
        r.lines.map((l) => l.net_amount),
        x.lines.map((l) => m(l.line_extension)),
        'line nets (BT-131)',
      );
      assert.equal(r.line_extension_amount, m(e.line_extension), 'BT-106');
      assert.equal(r.allowance_total_amount, m(e.allowance_total), 'BT-107');
      assert.equal(r.charge_total_amount, m(e.charge_total), 'BT-108');
      assert.equal(r.tax_exclusive_amount, m(e.tax_exclusive), 'BT-109');
      assert.equal(r.tax_amount, m(e.tax_total), 'BT-110');
      assert.equal(r.total, m(e.tax_inclusive), 'BT-112');
      assert.equal(r.prepaid_amount, m(e.prepaid), 'BT-113');
      assert.equal(r.amount_due, m(e.payable), 'BT-115');
      assert.deepEqual(
        r.tax_breakdown.map((g) => [g.category, g.percentage, g.taxable_amount, g.tax_amount]),
        e.subtotals.map((s) => [s.category, s.percent ?? '0', m(s.taxable), m(s.tax)]),
        'VAT breakdown (BG-23)',
      );
      // Stated allowance/charge amounts equal the ones we derive from their percentages.
      const stated = [...(x.allowances ?? []), ...(x.charges ?? [])].map((a) => m(a.amount));
      assert.deepEqual(
        r.document_adjustments.map((a) => a.amount),
        stated,
      );
    });
  }
});
