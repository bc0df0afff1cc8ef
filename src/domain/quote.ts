/**
 * Quotes: draft → sent → accepted | declined | expired, as a transition table like invoices'.
 * Accepting a quote yields the input of a draft invoice with the same lines and discounts, so the
 * invoice computes to exactly the quoted totals.
 */
import { compareDates, type IsoDate } from './dates.js';
import { DomainError, type ErrorCode } from './errors.js';
import type { InvoiceInput } from './invoice.js';

/** Quote statuses. */
export const QUOTE_STATUSES = ['draft', 'sent', 'accepted', 'declined', 'expired'] as const;

/** One quote status. */
export type QuoteStatus = (typeof QUOTE_STATUSES)[number];

/** What the state machine needs of a quote. */
export interface QuoteState {
  readonly status: QuoteStatus;
  readonly line_count: number;
  /** Last day the offer can be accepted, inclusive. */
  readonly expires_on?: IsoDate;
}

/** Something that can happen to a quote; `today` is passed in because the domain has no clock. */
export type QuoteAction =
  | { readonly type: 'edit' }
  | { readonly type: 'send' }
  | { readonly type: 'accept'; readonly today: IsoDate }
  | { readonly type: 'decline' }
  | { readonly type: 'expire'; readonly today: IsoDate };

/** The quote action names. */
export type QuoteActionType = QuoteAction['type'];

/** One row of the quote transition table. */
export interface QuoteTransition {
  readonly from: readonly QuoteStatus[];
  readonly action: QuoteActionType;
  readonly to: QuoteStatus;
  readonly guard: (state: QuoteState, action: QuoteAction) => void;
}

function isPast(state: QuoteState, today: IsoDate): boolean {
  return state.expires_on !== undefined && compareDates(today, state.expires_on) > 0;
}

function todayOf(action: QuoteAction): IsoDate {
  return 'today' in action ? action.today : '';
}

/** The quote transition table. */
export const QUOTE_TRANSITIONS: readonly QuoteTransition[] = [
  { from: ['draft'], action: 'edit', to: 'draft', guard: () => {} },
  {
    from: ['draft'],
    action: 'send',
    to: 'sent',
    guard: (s) => {
      if (s.line_count < 1)
        throw new DomainError('invoice_empty', 'A quote needs at least one line', 'lines');
    },
  },
  {
    from: ['sent'],
    action: 'accept',
    to: 'accepted',
    guard: (s, a) => {
      if (isPast(s, todayOf(a)))
        throw new DomainError('quote_expired', 'The quote has expired', 'expires_on');
    },
  },
  { from: ['sent'], action: 'decline', to: 'declined', guard: () => {} },
  {
    from: ['sent'],
    action: 'expire',
    to: 'expired',
    guard: (s, a) => {
      if (!isPast(s, todayOf(a))) {
        throw new DomainError('validation_failed', 'The quote has not reached its expiry date', 'expires_on');
      }
    },
  },
];

const WRONG_STATUS: Record<QuoteActionType, ErrorCode> = {
  edit: 'quote_not_draft',
  send: 'quote_not_draft',
  accept: 'quote_not_sent',
  decline: 'quote_not_sent',
  expire: 'quote_not_sent',
};

/** The actions allowed from a quote status (before guards). */
export function allowedQuoteActions(status: QuoteStatus): QuoteActionType[] {
  return QUOTE_TRANSITIONS.filter((t) => t.from.includes(status)).map((t) => t.action);
}

/** Applies an action through the table and returns the new status; throws the wrong-status or guard code. */
export function applyQuoteAction(state: QuoteState, action: QuoteAction): QuoteState {
  if (typeof action !== 'object' || action === null || !Object.hasOwn(WRONG_STATUS, action.type)) {
    throw new DomainError('validation_failed', 'Unknown quote action', 'action');
  }
  const t = QUOTE_TRANSITIONS.find((row) => row.action === action.type && row.from.includes(state.status));
  if (t === undefined) {
    throw new DomainError(
      WRONG_STATUS[action.type],
      `Cannot ${action.type} a quote that is ${state.status}`,
      'status',
      {
        status: state.status,
        action: action.type,
      },
    );
  }
  t.guard(state, action);
  return { ...state, status: t.to };
}

/** The content of a quote: what an invoice drafted from it will contain. */
export interface QuoteContent extends InvoiceInput {
  readonly customer: string;
  readonly memo?: string;
}

/** A draft-invoice input from an accepted quote; throws `quote_not_accepted` for any other status. */
export function invoiceDraftFromQuote(
  state: QuoteState,
  quote: QuoteContent,
): InvoiceInput & { readonly customer: string; readonly memo?: string } {
  if (state.status !== 'accepted') {
    throw new DomainError('quote_not_accepted', 'Only an accepted quote becomes an invoice', 'status', {
      status: state.status,
    });
  }
  // Deep copies so later edits to the draft can never reach back into the frozen quote.
  return {
    customer: quote.customer,
    currency: quote.currency,
    lines: quote.lines.map((l) => ({
      ...l,
      ...(l.discounts ? { discounts: l.discounts.map((d) => ({ ...d })) } : {}),
      ...(l.charges ? { charges: l.charges.map((c) => ({ ...c })) } : {}),
      ...(l.tax_rates ? { tax_rates: l.tax_rates.map((r) => ({ ...r })) } : {}),
    })),
    ...(quote.discounts
      ? {
          discounts: quote.discounts.map((d) => ({
            ...d,
            ...(d.tax_rates ? { tax_rates: d.tax_rates.map((r) => ({ ...r })) } : {}),
          })),
        }
      : {}),
    ...(quote.charges
      ? {
          charges: quote.charges.map((c) => ({
            ...c,
            ...(c.tax_rates ? { tax_rates: c.tax_rates.map((r) => ({ ...r })) } : {}),
          })),
        }
      : {}),
    ...(quote.memo !== undefined ? { memo: quote.memo } : {}),
  };
}
