/**
 * Payment allocation rules (issue 6): oldest-due-first automatic allocation, how existing
 * customer credit is drawn, how an allocation is taken back off an invoice, and when a refund
 * needs a second approver. Pure: no I/O, amounts in bigint minor units.
 */
import { DomainError } from './errors.js';
import type { InvoiceState } from './invoice-transitions.js';
import { type JournalEntry, journalEntry } from './ledger.js';

/** How a payment arrived. */
export const PAYMENT_METHODS = ['bank_transfer', 'card', 'cash', 'cheque', 'other'] as const;
/** One payment method. */
export type PaymentMethod = (typeof PAYMENT_METHODS)[number];

/** An open invoice as automatic allocation sees it. */
export interface OpenInvoice {
  readonly invoice: string;
  readonly amount_remaining: bigint;
  readonly due_date: string | null;
  readonly issue_date: string | null;
}

const smaller = (a: bigint, b: bigint): bigint => (a <= b ? a : b);

/** Orders invoices oldest due first (then oldest issued, then id, so the order is total). */
export function oldestDueFirst<T extends OpenInvoice>(invoices: readonly T[]): T[] {
  const key = (d: string | null) => d ?? '9999-12-31';
  return [...invoices].sort((a, b) => {
    if (key(a.due_date) !== key(b.due_date)) return key(a.due_date) < key(b.due_date) ? -1 : 1;
    if (key(a.issue_date) !== key(b.issue_date)) return key(a.issue_date) < key(b.issue_date) ? -1 : 1;
    return a.invoice < b.invoice ? -1 : a.invoice > b.invoice ? 1 : 0;
  });
}

/**
 * Spreads an amount over open invoices, oldest due first, each up to its remainder. What is
 * left over (`unallocated`) becomes customer credit.
 */
export function allocateOldestFirst(
  invoices: readonly OpenInvoice[],
  amount: bigint,
): { allocations: { invoice: string; amount: bigint }[]; unallocated: bigint } {
  if (amount <= 0n) throw new DomainError('amount_invalid', 'Amount must be positive', 'amount');
  let left = amount;
  const allocations: { invoice: string; amount: bigint }[] = [];
  for (const inv of oldestDueFirst(invoices)) {
    if (left === 0n) break;
    if (inv.amount_remaining <= 0n) continue;
    const take = smaller(inv.amount_remaining, left);
    allocations.push({ invoice: inv.invoice, amount: take });
    left -= take;
  }
  return { allocations, unallocated: left };
}

/** A payment whose unapplied money may be drawn, oldest first. */
export interface UnappliedPayment {
  readonly payment: string;
  readonly amount_unapplied: bigint;
}

/** One part of a draw on customer credit. */
export type CreditDraw =
  | { readonly source: 'credit'; readonly amount: bigint }
  | { readonly source: 'payment'; readonly payment: string; readonly amount: bigint };

/**
 * Draws an amount from a customer's credit: first the credit that no payment holds (credit
 * notes, voids), then the payments' unapplied money in the order given (oldest first). This
 * keeps the ledger's customer credit at or above the sum of the payments' unapplied amounts.
 * Throws `credit_insufficient` when there is not enough.
 */
export function drawCredit(
  amount: bigint,
  otherCredit: bigint,
  payments: readonly UnappliedPayment[],
): CreditDraw[] {
  if (amount <= 0n) throw new DomainError('amount_invalid', 'Amount must be positive', 'amount');
  const available =
    (otherCredit > 0n ? otherCredit : 0n) + payments.reduce((s, p) => s + p.amount_unapplied, 0n);
  if (amount > available) {
    throw new DomainError('credit_insufficient', 'The customer does not have that much credit', 'amount', {
      available: available.toString(),
    });
  }
  const draws: CreditDraw[] = [];
  let left = amount;
  if (otherCredit > 0n) {
    const take = smaller(otherCredit, left);
    draws.push({ source: 'credit', amount: take });
    left -= take;
  }
  for (const p of payments) {
    if (left === 0n) break;
    if (p.amount_unapplied <= 0n) continue;
    const take = smaller(p.amount_unapplied, left);
    draws.push({ source: 'payment', payment: p.payment, amount: take });
    left -= take;
  }
  return draws;
}

/**
 * Takes an allocation back off an invoice: the remainder grows again and a paid invoice is open
 * once more. Payment money leaves `amount_paid`, applied credit leaves `amount_credited`.
 */
export function unapplyFromInvoice(
  state: InvoiceState,
  source: 'payment' | 'credit',
  amount: bigint,
): InvoiceState {
  if (amount <= 0n) throw new DomainError('amount_invalid', 'Amount must be positive', 'amount');
  if (state.status !== 'open' && state.status !== 'paid') {
    throw new DomainError(
      'invoice_not_open',
      `Cannot unapply from an invoice that is ${state.status}`,
      'status',
      {
        status: state.status,
      },
    );
  }
  const from = source === 'payment' ? state.amount_paid : state.amount_credited;
  if (amount > from || state.amount_remaining + amount > state.amount_due) {
    throw new DomainError(
      'amount_invalid',
      'The invoice does not carry that much of this allocation',
      'amount',
    );
  }
  return {
    ...state,
    status: 'open',
    amount_paid: source === 'payment' ? state.amount_paid - amount : state.amount_paid,
    amount_credited: source === 'credit' ? state.amount_credited - amount : state.amount_credited,
    amount_remaining: state.amount_remaining + amount,
  };
}

/** Unapplying: the invoice owes again (AR up) and the money is customer credit again. */
export function postAllocationReversed(
  ref: { readonly invoice: string; readonly customer: string; readonly allocation: string },
  currency: string,
  amount: bigint,
): JournalEntry {
  if (amount <= 0n) throw new DomainError('amount_invalid', 'Amount must be positive', 'amount');
  return journalEntry('credit_applied', currency, ref.allocation, [
    {
      account: 'accounts_receivable',
      customer: ref.customer,
      invoice: ref.invoice,
      debit: amount,
      credit: 0n,
    },
    { account: 'customer_credit', customer: ref.customer, debit: 0n, credit: amount },
  ]);
}

/** Refunds above this many minor units wait for a second approver unless the org sets otherwise. */
export const DEFAULT_REFUND_APPROVAL_THRESHOLD = 1_000_000n;

/** Reads the `refunds.approval_threshold` setting (minor units; a non-negative integer or digit string). */
export function approvalThreshold(value: unknown): bigint {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  if (typeof value === 'string' && /^[0-9]{1,18}$/.test(value)) return BigInt(value);
  return DEFAULT_REFUND_APPROVAL_THRESHOLD;
}

/** Four eyes: a refund strictly above the threshold waits for someone other than its requester. */
export function refundNeedsApproval(amount: bigint, threshold: bigint): boolean {
  return amount > threshold;
}
