import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isDomainError } from '../../src/domain/errors.js';
import { draftInvoiceState } from '../../src/domain/invoice-transitions.js';
import {
  allocateOldestFirst,
  approvalThreshold,
  DEFAULT_REFUND_APPROVAL_THRESHOLD,
  drawCredit,
  postAllocationReversed,
  refundNeedsApproval,
  unapplyFromInvoice,
} from '../../src/domain/payments.js';

describe('payment allocation (domain)', () => {
  it('allocates oldest due first, each invoice up to its remainder, the rest unallocated', () => {
    const r = allocateOldestFirst(
      [
        { invoice: 'inv_b', amount_remaining: 500n, due_date: '2026-03-01', issue_date: '2026-01-01' },
        { invoice: 'inv_a', amount_remaining: 300n, due_date: '2026-02-01', issue_date: '2026-01-05' },
        { invoice: 'inv_c', amount_remaining: 900n, due_date: null, issue_date: null },
      ],
      1_000n,
    );
    assert.deepEqual(r.allocations, [
      { invoice: 'inv_a', amount: 300n },
      { invoice: 'inv_b', amount: 500n },
      { invoice: 'inv_c', amount: 200n },
    ]);
    assert.equal(r.unallocated, 0n);
    assert.equal(allocateOldestFirst([], 5n).unallocated, 5n);
  });

  it('property: allocations never exceed a remainder and add up with the rest to the amount', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ r: fc.bigInt({ min: 0n, max: 10_000n }), d: fc.integer({ min: 1, max: 28 }) }), {
          maxLength: 8,
        }),
        fc.bigInt({ min: 1n, max: 50_000n }),
        (invs, amount) => {
          const open = invs.map((x, i) => ({
            invoice: `inv_${i}`,
            amount_remaining: x.r,
            due_date: `2026-01-${String(x.d).padStart(2, '0')}`,
            issue_date: null,
          }));
          const { allocations, unallocated } = allocateOldestFirst(open, amount);
          assert.equal(allocations.reduce((s, a) => s + a.amount, 0n) + unallocated, amount);
          for (const a of allocations) {
            const inv = open.find((o) => o.invoice === a.invoice);
            assert.ok(inv && a.amount > 0n && a.amount <= inv.amount_remaining);
          }
          const total = open.reduce((s, o) => s + o.amount_remaining, 0n);
          assert.equal(unallocated, amount > total ? amount - total : 0n);
        },
      ),
    );
  });

  it('draws other credit first, then payments oldest first, and refuses more than there is', () => {
    const p = [
      { payment: 'pay_1', amount_unapplied: 100n },
      { payment: 'pay_2', amount_unapplied: 50n },
    ];
    assert.deepEqual(drawCredit(180n, 40n, p), [
      { source: 'credit', amount: 40n },
      { source: 'payment', payment: 'pay_1', amount: 100n },
      { source: 'payment', payment: 'pay_2', amount: 40n },
    ]);
    assert.throws(
      () => drawCredit(191n, 40n, p),
      (e) => isDomainError(e, 'credit_insufficient'),
    );
    // negative "other" credit is never drawn
    assert.deepEqual(drawCredit(10n, -5n, p), [{ source: 'payment', payment: 'pay_1', amount: 10n }]);
  });

  it('unapplying reopens a paid invoice and restores its remainder', () => {
    const paid = {
      ...draftInvoiceState(1, 1_000n, 1_000n),
      status: 'paid' as const,
      amount_paid: 1_000n,
      amount_remaining: 0n,
    };
    const next = unapplyFromInvoice(paid, 'payment', 400n);
    assert.equal(next.status, 'open');
    assert.equal(next.amount_paid, 600n);
    assert.equal(next.amount_remaining, 400n);
    assert.throws(
      () => unapplyFromInvoice(next, 'credit', 1n),
      (e) => isDomainError(e, 'amount_invalid'),
    );
    assert.throws(
      () => unapplyFromInvoice({ ...paid, status: 'void' }, 'payment', 1n),
      (e) => isDomainError(e, 'invoice_not_open'),
    );
    const entry = postAllocationReversed(
      { invoice: 'inv_x', customer: 'cus_x', allocation: 'pal_x' },
      'EUR',
      400n,
    );
    assert.deepEqual(
      entry.lines.map((l) => [l.account, l.debit, l.credit]),
      [
        ['accounts_receivable', 400n, 0n],
        ['customer_credit', 0n, 400n],
      ],
    );
  });

  it('four eyes above the threshold; the setting falls back to the default when malformed', () => {
    assert.equal(approvalThreshold(undefined), DEFAULT_REFUND_APPROVAL_THRESHOLD);
    assert.equal(approvalThreshold('abc'), DEFAULT_REFUND_APPROVAL_THRESHOLD);
    assert.equal(approvalThreshold(-1), DEFAULT_REFUND_APPROVAL_THRESHOLD);
    assert.equal(approvalThreshold(0), 0n);
    assert.equal(approvalThreshold('5000'), 5_000n);
    assert.equal(refundNeedsApproval(5_000n, 5_000n), false);
    assert.equal(refundNeedsApproval(5_001n, 5_000n), true);
  });
});
