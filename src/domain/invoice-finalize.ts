/**
 * Finalisation as one pure step, split in two so that a failed finalisation burns no number
 * (DESIGN.md §3): `prepareFinalization` checks everything that can fail (totals, state,
 * dates, number pattern, FX rate) and builds the ledger entry; only then does the caller take
 * the next number of the series (last statement before commit) and render it with
 * `numberPrepared`, which cannot fail for a positive sequence.
 */
import { assertIsoDate, compareDates, dueDateFromTerms, type IsoDate } from './dates.js';
import { DomainError } from './errors.js';
import { convertMinor, parseFxRate } from './fx.js';
import { type ComputeOptions, computeInvoice, type InvoiceInput, type InvoiceTotals } from './invoice.js';
import { applyInvoiceAction, type InvoiceState } from './invoice-transitions.js';
import { type InvoiceRef, type JournalEntry, postInvoiceFinalized } from './ledger.js';
import { type NumberPattern, parseNumberPattern, renderNumber, sequenceScope } from './numbering.js';

/** Everything finalisation needs besides the sequence number. */
export interface FinalizationRequest {
  readonly ref: InvoiceRef;
  readonly input: InvoiceInput;
  readonly options: ComputeOptions;
  readonly state: InvoiceState;
  readonly series_pattern: string;
  readonly issue_date: IsoDate;
  /** Either net payment terms in days or an explicit due date (not before the issue date). */
  readonly due: { readonly payment_terms_days: number } | { readonly due_date: IsoDate };
  /** Rate to the org's base currency, recorded for reporting when the invoice is in another currency. */
  readonly fx?: { readonly base_currency: string; readonly rate: string };
}

/** A finalisation that has passed every check and only lacks its number. */
export interface PreparedFinalization {
  readonly totals: InvoiceTotals;
  readonly state: InvoiceState;
  readonly issue_date: IsoDate;
  readonly due_date: IsoDate;
  readonly pattern: NumberPattern;
  /** The counter scope within the series for this issue date (see `sequenceScope`). */
  readonly sequence_scope: string;
  readonly entry: JournalEntry | null;
  readonly fx?: { readonly base_currency: string; readonly rate: string; readonly total_base: bigint };
}

/** Validates and computes a finalisation up to, but excluding, the number; throws DomainError. */
export function prepareFinalization(request: FinalizationRequest): PreparedFinalization {
  const pattern = parseNumberPattern(request.series_pattern);
  const issueDate = assertIsoDate(request.issue_date, 'issue_date');
  let dueDate: IsoDate;
  if ('due_date' in request.due) {
    dueDate = assertIsoDate(request.due.due_date, 'due_date');
    if (compareDates(dueDate, issueDate) < 0) {
      throw new DomainError('date_invalid', 'Due date must not be before the issue date', 'due_date');
    }
  } else {
    dueDate = dueDateFromTerms(issueDate, request.due.payment_terms_days);
  }
  const totals = computeInvoice(request.input, request.options);
  // The stored draft's amounts are recomputed, so a stale draft can never be finalised with old totals.
  const state = applyInvoiceAction(
    {
      ...request.state,
      line_count: totals.lines.length,
      total: totals.total,
      amount_due: totals.amount_due,
      amount_remaining: totals.amount_due,
    },
    { type: 'finalize' },
  );
  let fx: PreparedFinalization['fx'];
  if (request.fx !== undefined && request.fx.base_currency.toUpperCase() !== totals.currency) {
    const rate = parseFxRate(totals.currency, request.fx.base_currency, request.fx.rate);
    fx = {
      base_currency: rate.to,
      rate: request.fx.rate,
      total_base: convertMinor(totals.total, rate, request.options.rounding),
    };
  }
  return {
    totals,
    state,
    issue_date: issueDate,
    due_date: dueDate,
    pattern,
    sequence_scope: sequenceScope(pattern, issueDate),
    entry: postInvoiceFinalized(request.ref, totals),
    ...(fx !== undefined ? { fx } : {}),
  };
}

/** The document number of a prepared finalisation for the sequence taken from the series. */
export function numberPrepared(prepared: PreparedFinalization, sequence: number | bigint): string {
  return renderNumber(prepared.pattern, prepared.issue_date, sequence);
}
