import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ErrorCode, isDomainError } from '../../src/domain/errors.js';
import {
  type FinalizationRequest,
  numberPrepared,
  prepareFinalization,
} from '../../src/domain/invoice-finalize.js';
import { draftInvoiceState } from '../../src/domain/invoice-transitions.js';

const request: FinalizationRequest = {
  ref: { invoice: 'inv_1', customer: 'cus_1' },
  input: {
    currency: 'USD',
    lines: [{ quantity: '2', unit_amount: 5000, tax_rates: [{ percentage: '8.875', category: 'S' }] }],
  },
  options: { rounding: 'half_up' },
  // A stale draft: its stored amounts are wrong and must be recomputed.
  state: draftInvoiceState(0, 0n, 0n),
  series_pattern: 'INV-{YYYY}-{seq:6}',
  issue_date: '2026-12-20',
  due: { payment_terms_days: 30 },
  fx: { base_currency: 'EUR', rate: '0.92' },
};

function refused(patch: Partial<FinalizationRequest>, code: ErrorCode, param?: string): void {
  assert.throws(
    () => prepareFinalization({ ...request, ...patch }),
    (e) => isDomainError(e, code) && (param === undefined || e.param === param),
    code,
  );
}

describe('finalisation', () => {
  it('computes totals, opens the invoice, sets the due date, books the entry and converts for reporting', () => {
    const p = prepareFinalization(request);
    // 2 × 50.00 = 100.00; 8.875 % = 8.875 → 8.88; total 108.88
    assert.equal(p.totals.total, 10888n);
    assert.equal(p.state.status, 'open');
    assert.equal(p.state.amount_remaining, 10888n);
    assert.equal(p.state.line_count, 1);
    assert.equal(p.due_date, '2027-01-19');
    assert.equal(p.sequence_scope, '2026');
    assert.deepEqual(
      p.entry?.lines.map((l) => [l.account, l.debit, l.credit]),
      [
        ['accounts_receivable', 10888n, 0n],
        ['revenue', 0n, 10000n],
        ['tax_payable', 0n, 888n],
      ],
    );
    // 108.88 × 0.92 = 100.1696 → 100.17 EUR
    assert.deepEqual(p.fx, { base_currency: 'EUR', rate: '0.92', total_base: 10017n });
    assert.equal(numberPrepared(p, 123), 'INV-2026-000123');
  });

  it('checks everything that can fail before a number is taken', () => {
    refused({ state: { ...draftInvoiceState(1, 0n, 0n), status: 'open' } }, 'invoice_not_draft');
    refused({ input: { currency: 'USD', lines: [] } }, 'invoice_empty');
    refused({ series_pattern: 'INV-{YYYY}' }, 'numbering_pattern_invalid');
    refused({ issue_date: '2026-02-30' }, 'date_invalid', 'issue_date');
    refused({ due: { due_date: '2026-12-19' } }, 'date_invalid', 'due_date');
    refused({ due: { payment_terms_days: -1 } }, 'date_invalid');
    refused({ fx: { base_currency: 'EUR', rate: '0' } }, 'rate_invalid');
    refused(
      { input: { currency: 'USD', lines: [{ quantity: 'x', unit_amount: 1 }] } },
      'quantity_invalid',
      'lines.0.quantity',
    );
  });

  it('records no FX when the invoice is already in the base currency, and accepts an explicit due date', () => {
    const p = prepareFinalization({
      ...request,
      fx: { base_currency: 'usd', rate: '1' },
      due: { due_date: '2026-12-20' },
    });
    assert.equal(p.fx, undefined);
    assert.equal(p.due_date, '2026-12-20');
  });
});
