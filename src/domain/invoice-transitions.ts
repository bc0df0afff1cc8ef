/**
 * The invoice state machine (DESIGN.md §3) as one table of `{ from, action, guard, apply }`.
 *
 * draft → open (finalize); open → paid (payments or credits reach the amount due); open → void;
 * open → uncollectible; uncollectible → paid | void. Partially paid is `open` with
 * `amount_remaining > 0`. Anything not in the table is refused with a stable code.
 */
import { DomainError, type ErrorCode } from './errors.js';

/** Invoice statuses. */
export const INVOICE_STATUSES = ['draft', 'open', 'paid', 'void', 'uncollectible'] as const;

/** One invoice status. */
export type InvoiceStatus = (typeof INVOICE_STATUSES)[number];

/** The part of an invoice the state machine reads and changes (amounts in minor units). */
export interface InvoiceState {
  readonly status: InvoiceStatus;
  readonly line_count: number;
  readonly total: bigint;
  readonly amount_due: bigint;
  readonly amount_paid: bigint;
  /** Credit-note amounts applied against the amount due (not those turned into customer credit). */
  readonly amount_credited: bigint;
  readonly amount_remaining: bigint;
}

/** Something that can happen to an invoice. */
export type InvoiceAction =
  | { readonly type: 'edit' }
  | { readonly type: 'delete' }
  | { readonly type: 'finalize' }
  | { readonly type: 'pay'; readonly amount: bigint }
  | { readonly type: 'apply_credit'; readonly amount: bigint }
  | { readonly type: 'void' }
  | { readonly type: 'mark_uncollectible' };

/** The action names. */
export type InvoiceActionType = InvoiceAction['type'];

/** One row of the transition table. */
export interface InvoiceTransition<A extends InvoiceActionType = InvoiceActionType> {
  readonly from: readonly InvoiceStatus[];
  readonly action: A;
  /** Throws a DomainError when the action is not allowed in this state. */
  readonly guard: (state: InvoiceState, action: Extract<InvoiceAction, { type: A }>) => void;
  readonly apply: (state: InvoiceState, action: Extract<InvoiceAction, { type: A }>) => InvoiceState;
}

/** Code used when an action is attempted from a status it does not start from. */
const WRONG_STATUS: Record<InvoiceActionType, ErrorCode> = {
  edit: 'invoice_not_draft',
  delete: 'invoice_not_draft',
  finalize: 'invoice_not_draft',
  pay: 'invoice_not_open',
  apply_credit: 'invoice_not_open',
  void: 'invoice_not_open',
  mark_uncollectible: 'invoice_not_open',
};

function positiveWithinRemaining(state: InvoiceState, amount: bigint): void {
  if (typeof amount !== 'bigint' || amount <= 0n) {
    throw new DomainError('amount_invalid', 'Amount must be a positive integer of minor units', 'amount');
  }
  if (amount > state.amount_remaining) {
    throw new DomainError('amount_exceeds_remaining', 'Amount exceeds the amount remaining', 'amount', {
      amount_remaining: state.amount_remaining.toString(),
    });
  }
}

function settle(state: InvoiceState, remaining: bigint): InvoiceStatus {
  return remaining === 0n ? 'paid' : state.status;
}

const noGuard = (): void => {};

/** The transition table; the only definition of what may happen to an invoice. */
export const INVOICE_TRANSITIONS: readonly InvoiceTransition[] = [
  { from: ['draft'], action: 'edit', guard: noGuard, apply: (s) => s } satisfies InvoiceTransition<'edit'>,
  {
    from: ['draft'],
    action: 'delete',
    guard: noGuard,
    apply: (s) => s,
  } satisfies InvoiceTransition<'delete'>,
  {
    from: ['draft'],
    action: 'finalize',
    guard: (s) => {
      if (s.line_count < 1)
        throw new DomainError('invoice_empty', 'An invoice needs at least one line', 'lines');
      if (s.total < 0n || s.amount_due < 0n) {
        throw new DomainError(
          'amount_invalid',
          'An invoice total cannot be negative (issue a credit note)',
          'total',
        );
      }
    },
    // A zero amount due is settled at once, as nothing can ever be paid against it.
    apply: (s) => ({ ...s, status: s.amount_due === 0n ? 'paid' : 'open', amount_remaining: s.amount_due }),
  } satisfies InvoiceTransition<'finalize'>,
  {
    from: ['open', 'uncollectible'],
    action: 'pay',
    guard: (s, a) => positiveWithinRemaining(s, a.amount),
    apply: (s, a) => {
      const remaining = s.amount_remaining - a.amount;
      return {
        ...s,
        status: settle(s, remaining),
        amount_paid: s.amount_paid + a.amount,
        amount_remaining: remaining,
      };
    },
  } satisfies InvoiceTransition<'pay'>,
  {
    from: ['open'],
    action: 'apply_credit',
    guard: (s, a) => positiveWithinRemaining(s, a.amount),
    apply: (s, a) => {
      const remaining = s.amount_remaining - a.amount;
      return {
        ...s,
        status: settle(s, remaining),
        amount_credited: s.amount_credited + a.amount,
        amount_remaining: remaining,
      };
    },
  } satisfies InvoiceTransition<'apply_credit'>,
  {
    from: ['open', 'uncollectible'],
    action: 'void',
    guard: (s) => {
      // Money received must be refunded or credited first, or it would vanish with the invoice.
      if (s.amount_paid > 0n) {
        throw new DomainError('invoice_has_payments', 'An invoice with payments cannot be voided', 'status');
      }
    },
    apply: (s) => ({ ...s, status: 'void', amount_remaining: 0n }),
  } satisfies InvoiceTransition<'void'>,
  {
    from: ['open'],
    action: 'mark_uncollectible',
    guard: noGuard,
    apply: (s) => ({ ...s, status: 'uncollectible' }),
  } satisfies InvoiceTransition<'mark_uncollectible'>,
] as readonly InvoiceTransition[];

/** The table row for an action from a status, if the table has one. */
export function findInvoiceTransition(
  status: InvoiceStatus,
  action: InvoiceActionType,
): InvoiceTransition | undefined {
  return INVOICE_TRANSITIONS.find((t) => t.action === action && t.from.includes(status));
}

/** The actions allowed from a status (before guards). */
export function allowedInvoiceActions(status: InvoiceStatus): InvoiceActionType[] {
  return INVOICE_TRANSITIONS.filter((t) => t.from.includes(status)).map((t) => t.action);
}

/** Applies an action through the table: guard, then apply; throws the row's or the wrong-status code. */
export function applyInvoiceAction(state: InvoiceState, action: InvoiceAction): InvoiceState {
  if (typeof action !== 'object' || action === null || !Object.hasOwn(WRONG_STATUS, action.type)) {
    throw new DomainError('validation_failed', 'Unknown invoice action', 'action');
  }
  const transition = findInvoiceTransition(state.status, action.type);
  if (transition === undefined) {
    throw new DomainError(
      WRONG_STATUS[action.type],
      `Cannot ${action.type} an invoice that is ${state.status}`,
      'status',
      {
        status: state.status,
        action: action.type,
      },
    );
  }
  transition.guard(state, action as never);
  return transition.apply(state, action as never);
}

/** The state of a new draft with the given computed amount due. */
export function draftInvoiceState(lineCount: number, total: bigint, amountDue: bigint): InvoiceState {
  return {
    status: 'draft',
    line_count: lineCount,
    total,
    amount_due: amountDue,
    amount_paid: 0n,
    amount_credited: 0n,
    amount_remaining: amountDue,
  };
}
