import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type ErrorCode, isDomainError } from '../../src/domain/errors.js';
import {
  allowedInvoiceActions,
  applyInvoiceAction,
  draftInvoiceState,
  INVOICE_STATUSES,
  INVOICE_TRANSITIONS,
  type InvoiceAction,
  type InvoiceState,
  type InvoiceStatus,
} from '../../src/domain/invoice-transitions.js';

const ACTIONS: readonly InvoiceAction[] = [
  { type: 'edit' },
  { type: 'delete' },
  { type: 'finalize' },
  { type: 'pay', amount: 100n },
  { type: 'apply_credit', amount: 100n },
  { type: 'void' },
  { type: 'mark_uncollectible' },
];

/** The legal (status, action) pairs, written out independently of the table. */
const LEGAL: Record<InvoiceStatus, readonly string[]> = {
  draft: ['edit', 'delete', 'finalize'],
  open: ['pay', 'apply_credit', 'void', 'mark_uncollectible'],
  paid: [],
  void: [],
  uncollectible: ['pay', 'void'],
};

const WRONG_STATUS_CODE: Record<string, ErrorCode> = {
  edit: 'invoice_not_draft',
  delete: 'invoice_not_draft',
  finalize: 'invoice_not_draft',
  pay: 'invoice_not_open',
  apply_credit: 'invoice_not_open',
  void: 'invoice_not_open',
  mark_uncollectible: 'invoice_not_open',
};

function stateIn(status: InvoiceStatus): InvoiceState {
  return { ...draftInvoiceState(2, 1000n, 1000n), status };
}

function open(amount = 1000n): InvoiceState {
  return applyInvoiceAction(draftInvoiceState(1, amount, amount), { type: 'finalize' });
}

describe('invoice transitions', () => {
  it('the table allows exactly the transitions of DESIGN.md §3', () => {
    for (const status of INVOICE_STATUSES) {
      assert.deepEqual(allowedInvoiceActions(status).sort(), [...(LEGAL[status] ?? [])].sort(), status);
    }
    assert.equal(INVOICE_TRANSITIONS.length, 7);
  });

  it('refuses every illegal (status, action) pair with a stable code', () => {
    for (const status of INVOICE_STATUSES) {
      for (const action of ACTIONS) {
        if (LEGAL[status].includes(action.type)) continue;
        assert.throws(
          () => applyInvoiceAction(stateIn(status), action),
          (e) => isDomainError(e, WRONG_STATUS_CODE[action.type]) && e.param === 'status',
          `${action.type} from ${status}`,
        );
      }
    }
  });

  it('refuses an unknown or missing action as a validation error', () => {
    for (const action of [{ type: 'refund' }, { type: 'toString' }, null, undefined]) {
      assert.throws(
        () => applyInvoiceAction(open(), action as never),
        (e) => isDomainError(e, 'validation_failed') && e.param === 'action',
      );
    }
  });

  it('finalize opens a draft with its amount due remaining', () => {
    const s = open(1000n);
    assert.equal(s.status, 'open');
    assert.equal(s.amount_remaining, 1000n);
    assert.throws(
      () => applyInvoiceAction(draftInvoiceState(0, 0n, 0n), { type: 'finalize' }),
      (e) => isDomainError(e, 'invoice_empty'),
    );
    assert.throws(
      () => applyInvoiceAction(draftInvoiceState(1, -5n, -5n), { type: 'finalize' }),
      (e) => isDomainError(e, 'amount_invalid'),
    );
    assert.equal(open(0n).status, 'paid');
  });

  it('partial payment stays open; full payment settles', () => {
    let s = applyInvoiceAction(open(1000n), { type: 'pay', amount: 400n });
    assert.equal(s.status, 'open');
    assert.equal(s.amount_remaining, 600n);
    assert.equal(s.amount_paid, 400n);
    assert.throws(
      () => applyInvoiceAction(s, { type: 'pay', amount: 601n }),
      (e) => isDomainError(e, 'amount_exceeds_remaining'),
    );
    assert.throws(
      () => applyInvoiceAction(s, { type: 'pay', amount: 0n }),
      (e) => isDomainError(e, 'amount_invalid'),
    );
    s = applyInvoiceAction(s, { type: 'pay', amount: 600n });
    assert.equal(s.status, 'paid');
    assert.equal(s.amount_remaining, 0n);
  });

  it('applied credit reduces the remainder and can settle the invoice', () => {
    let s = applyInvoiceAction(open(1000n), { type: 'apply_credit', amount: 300n });
    assert.equal(s.status, 'open');
    assert.equal(s.amount_credited, 300n);
    s = applyInvoiceAction(s, { type: 'apply_credit', amount: 700n });
    assert.equal(s.status, 'paid');
  });

  it('void refuses an invoice with payments; uncollectible can still be paid or voided', () => {
    const paidPart = applyInvoiceAction(open(), { type: 'pay', amount: 1n });
    assert.throws(
      () => applyInvoiceAction(paidPart, { type: 'void' }),
      (e) => isDomainError(e, 'invoice_has_payments'),
    );
    const voided = applyInvoiceAction(open(), { type: 'void' });
    assert.equal(voided.status, 'void');
    assert.equal(voided.amount_remaining, 0n);
    const bad = applyInvoiceAction(open(), { type: 'mark_uncollectible' });
    assert.equal(bad.status, 'uncollectible');
    assert.equal(bad.amount_remaining, 1000n);
    const partly = applyInvoiceAction(bad, { type: 'pay', amount: 10n });
    assert.equal(partly.status, 'uncollectible');
    assert.equal(applyInvoiceAction(partly, { type: 'pay', amount: 990n }).status, 'paid');
    assert.equal(applyInvoiceAction(bad, { type: 'void' }).status, 'void');
  });

  it('never lets amount_remaining go negative or paid + credited exceed the amount due (property)', () => {
    const actionArb = fc.oneof(
      fc.record({ type: fc.constant('pay' as const), amount: fc.bigInt({ min: -5n, max: 1500n }) }),
      fc.record({ type: fc.constant('apply_credit' as const), amount: fc.bigInt({ min: -5n, max: 1500n }) }),
      fc.constantFrom<InvoiceAction>(
        { type: 'void' },
        { type: 'mark_uncollectible' },
        { type: 'finalize' },
        { type: 'edit' },
      ),
    );
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 2000n }),
        fc.array(actionArb, { maxLength: 12 }),
        (due, actions) => {
          let s = draftInvoiceState(1, due, due);
          for (const a of actions) {
            try {
              s = applyInvoiceAction(s, a);
            } catch (e) {
              assert.ok(isDomainError(e), String(e));
            }
            assert.ok(s.amount_remaining >= 0n);
            if (s.status !== 'draft' && s.status !== 'void') {
              assert.equal(s.amount_paid + s.amount_credited + s.amount_remaining, s.amount_due);
            }
            if (s.status === 'paid') assert.equal(s.amount_remaining, 0n);
          }
        },
      ),
    );
  });
});
