import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ErrorCode, isDomainError } from '../../src/domain/errors.js';
import { computeInvoice } from '../../src/domain/invoice.js';
import {
  allowedQuoteActions,
  applyQuoteAction,
  invoiceDraftFromQuote,
  QUOTE_STATUSES,
  type QuoteAction,
  type QuoteContent,
  type QuoteState,
  type QuoteStatus,
} from '../../src/domain/quote.js';

const TODAY = '2026-05-10';
const ACTIONS: readonly QuoteAction[] = [
  { type: 'edit' },
  { type: 'send' },
  { type: 'accept', today: TODAY },
  { type: 'decline' },
  { type: 'expire', today: TODAY },
];
const LEGAL: Record<QuoteStatus, readonly string[]> = {
  draft: ['edit', 'send'],
  sent: ['accept', 'decline', 'expire'],
  accepted: [],
  declined: [],
  expired: [],
};
const CODE: Record<string, ErrorCode> = {
  edit: 'quote_not_draft',
  send: 'quote_not_draft',
  accept: 'quote_not_sent',
  decline: 'quote_not_sent',
  expire: 'quote_not_sent',
};

const sent: QuoteState = { status: 'sent', line_count: 1, expires_on: '2026-05-10' };

describe('quotes', () => {
  it('the table allows exactly draft → sent → accepted | declined | expired', () => {
    for (const status of QUOTE_STATUSES) {
      assert.deepEqual(allowedQuoteActions(status).sort(), [...LEGAL[status]].sort());
      for (const action of ACTIONS) {
        if (LEGAL[status].includes(action.type)) continue;
        assert.throws(
          () => applyQuoteAction({ status, line_count: 1 }, action),
          (e) => isDomainError(e, CODE[action.type]),
          `${action.type} from ${status}`,
        );
      }
    }
  });

  it('refuses an unknown action as a validation error', () => {
    assert.throws(
      () => applyQuoteAction(sent, { type: 'constructor' } as never),
      (e) => isDomainError(e, 'validation_failed') && e.param === 'action',
    );
  });

  it('accepts until the expiry day inclusive, then only expires', () => {
    assert.equal(applyQuoteAction(sent, { type: 'accept', today: '2026-05-10' }).status, 'accepted');
    assert.throws(
      () => applyQuoteAction(sent, { type: 'accept', today: '2026-05-11' }),
      (e) => isDomainError(e, 'quote_expired'),
    );
    assert.throws(
      () => applyQuoteAction(sent, { type: 'expire', today: '2026-05-10' }),
      (e) => isDomainError(e, 'validation_failed'),
    );
    assert.equal(applyQuoteAction(sent, { type: 'expire', today: '2026-05-11' }).status, 'expired');
    assert.equal(applyQuoteAction(sent, { type: 'decline' }).status, 'declined');
    assert.throws(
      () => applyQuoteAction({ status: 'draft', line_count: 0 }, { type: 'send' }),
      (e) => isDomainError(e, 'invoice_empty'),
    );
  });

  it('an accepted quote becomes a draft invoice with the same totals and no shared objects', () => {
    const quote: QuoteContent = {
      customer: 'cus_1',
      currency: 'EUR',
      lines: [
        {
          description: 'Audit',
          quantity: '3',
          unit_amount: 12000,
          discounts: [{ percentage: '5' }],
          tax_rates: [{ percentage: '20', category: 'S' }],
        },
      ],
      discounts: [{ amount: 1000 }],
    };
    assert.throws(
      () => invoiceDraftFromQuote(sent, quote),
      (e) => isDomainError(e, 'quote_not_accepted'),
    );
    const accepted = applyQuoteAction(sent, { type: 'accept', today: TODAY });
    const draft = invoiceDraftFromQuote(accepted, quote);
    assert.equal(draft.customer, 'cus_1');
    const opts = { rounding: 'half_up' } as const;
    assert.equal(computeInvoice(draft, opts).total, computeInvoice(quote, opts).total);
    // 3 × 120.00 = 360.00; − 5 % (18.00) = 342.00; − 10.00 = 332.00; + 20 % (66.40) = 398.40
    assert.equal(computeInvoice(draft, opts).total, 39840n);
    assert.notEqual(draft.lines[0], quote.lines[0]);
    assert.notEqual(draft.lines[0]?.tax_rates?.[0], quote.lines[0]?.tax_rates?.[0]);
  });
});
