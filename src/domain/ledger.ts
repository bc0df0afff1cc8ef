/**
 * Double-entry ledger (DESIGN.md §4). Every financial event posts one balanced journal entry in
 * the document's currency; the constructor refuses an unbalanced one, so no code path can write
 * one. Receivable and customer-credit lines name their customer (and receivable lines their
 * invoice), which is what lets `verifyLedger` prove AR per customer equals the open remainders.
 */
import type { CreditNoteTotals } from './credit-note.js';
import { DomainError } from './errors.js';
import type { InvoiceTotals } from './invoice.js';
import type { InvoiceStatus } from './invoice-transitions.js';
import { assertCurrency } from './money.js';

/** The chart of accounts. */
export const ACCOUNTS = [
  'accounts_receivable',
  'revenue',
  'tax_payable',
  'customer_credit',
  'cash',
  'refunds',
  'bad_debt',
  'fx_gain_loss',
] as const;

/** One ledger account. */
export type Account = (typeof ACCOUNTS)[number];

/** Normal balance side of each account (debit for assets and expenses). */
export const ACCOUNT_NORMAL_SIDE: Readonly<Record<Account, 'debit' | 'credit'>> = {
  accounts_receivable: 'debit',
  revenue: 'credit',
  tax_payable: 'credit',
  customer_credit: 'credit',
  cash: 'debit',
  refunds: 'debit',
  bad_debt: 'debit',
  fx_gain_loss: 'credit',
};

/** One line of a journal entry: exactly one of debit or credit is positive. */
export interface JournalLine {
  readonly account: Account;
  readonly debit: bigint;
  readonly credit: bigint;
  readonly customer?: string;
  readonly invoice?: string;
  /** Tax group key on tax lines, so tax reports can read the ledger. */
  readonly tax_group?: string;
}

/** What caused an entry. */
export type PostingKind =
  | 'invoice_finalized'
  | 'invoice_voided'
  | 'invoice_uncollectible'
  | 'credit_note'
  | 'payment_received'
  | 'credit_applied'
  | 'refund'
  | 'fx_settlement';

/** A balanced journal entry in one currency. */
export interface JournalEntry {
  readonly kind: PostingKind;
  readonly currency: string;
  /** The document that caused it (`inv_…`, `cn_…`, `pay_…`, `ref_…`). */
  readonly reference: string;
  readonly lines: readonly JournalLine[];
}

function invalid(message: string, param = 'lines'): DomainError {
  return new DomainError('ledger_entry_invalid', message, param);
}

/** Builds a journal entry; throws `ledger_entry_invalid` on a malformed line and `ledger_unbalanced` unless debits = credits. */
export function journalEntry(
  kind: PostingKind,
  currency: string,
  reference: string,
  lines: readonly JournalLine[],
): JournalEntry {
  const code = assertCurrency(currency);
  if (lines.length < 2) throw invalid('An entry needs at least two lines');
  let debits = 0n;
  let credits = 0n;
  lines.forEach((l, i) => {
    if (!ACCOUNTS.includes(l.account)) throw invalid('Unknown account', `lines.${i}.account`);
    if (typeof l.debit !== 'bigint' || typeof l.credit !== 'bigint' || l.debit < 0n || l.credit < 0n) {
      throw invalid('Debit and credit must be non-negative bigints', `lines.${i}`);
    }
    if ((l.debit === 0n) === (l.credit === 0n))
      throw invalid('Exactly one of debit or credit must be positive', `lines.${i}`);
    if ((l.account === 'accounts_receivable' || l.account === 'customer_credit') && !l.customer) {
      throw invalid('Receivable and customer-credit lines must name the customer', `lines.${i}.customer`);
    }
    if (l.account === 'accounts_receivable' && !l.invoice) {
      throw invalid('Receivable lines must name the invoice', `lines.${i}.invoice`);
    }
    debits += l.debit;
    credits += l.credit;
  });
  if (debits !== credits) {
    throw new DomainError('ledger_unbalanced', 'Journal entry does not balance', 'lines', {
      debits: debits.toString(),
      credits: credits.toString(),
    });
  }
  return Object.freeze({
    kind,
    currency: code,
    reference,
    lines: Object.freeze(lines.map((l) => Object.freeze({ ...l }))),
  });
}

type Side = Omit<JournalLine, 'debit' | 'credit'> & { readonly amount: bigint };

/** Builds an entry from debit and credit sides, dropping zero amounts; null when nothing is left to post. */
function post(
  kind: PostingKind,
  currency: string,
  reference: string,
  debits: readonly Side[],
  credits: readonly Side[],
): JournalEntry | null {
  const toLine = (s: Side, debit: boolean): JournalLine => {
    const { amount, ...rest } = s;
    if (amount < 0n) throw invalid('Posting amounts must not be negative');
    return { ...rest, debit: debit ? amount : 0n, credit: debit ? 0n : amount };
  };
  const lines = [
    ...debits.filter((s) => s.amount !== 0n).map((s) => toLine(s, true)),
    ...credits.filter((s) => s.amount !== 0n).map((s) => toLine(s, false)),
  ];
  if (lines.length === 0) return null;
  return journalEntry(kind, currency, reference, lines);
}

/** Identifies an invoice and its customer on postings. */
export interface InvoiceRef {
  readonly invoice: string;
  readonly customer: string;
}

function taxSides(taxes: Readonly<Record<string, bigint>>): Side[] {
  return Object.entries(taxes).map(([tax_group, amount]) => ({ account: 'tax_payable', tax_group, amount }));
}

/** Finalisation: AR for the amount due (a prepayment comes out of customer credit), revenue net, tax per group. */
export function postInvoiceFinalized(ref: InvoiceRef, totals: InvoiceTotals): JournalEntry | null {
  const taxes = Object.fromEntries(totals.tax_breakdown.map((g) => [g.key, g.tax_amount]));
  return post(
    'invoice_finalized',
    totals.currency,
    ref.invoice,
    [
      {
        account: 'accounts_receivable',
        customer: ref.customer,
        invoice: ref.invoice,
        amount: totals.amount_due,
      },
      { account: 'customer_credit', customer: ref.customer, amount: totals.prepaid_amount },
    ],
    [{ account: 'revenue', amount: totals.tax_exclusive_amount }, ...taxSides(taxes)],
  );
}

/** What is left of an invoice's revenue and tax after credit notes (see `creditableRemainder`). */
export interface RevenueRemainder {
  readonly tax_exclusive_amount: bigint;
  readonly taxes: Readonly<Record<string, bigint>>;
}

/** Revenue plus tax of an invoice not yet credited: what a void reverses. */
export function remainderTotal(remainder: RevenueRemainder): bigint {
  return remainder.tax_exclusive_amount + Object.values(remainder.taxes).reduce((a, b) => a + b, 0n);
}

/**
 * Void: reverses the revenue and tax not yet credited. The open remainder leaves AR (or, for an
 * uncollectible invoice, the written-off amount leaves bad debt); any rest was prepaid or already
 * credited to the customer and goes back to customer credit. When the remainder is larger than
 * what is left to reverse (a credit note went to customer credit while the invoice was paid, and
 * the payment was unapplied since), the difference is taken back from customer credit: the
 * caller checks that the customer still holds that much.
 */
export function postInvoiceVoided(
  ref: InvoiceRef,
  currency: string,
  from: Extract<InvoiceStatus, 'open' | 'uncollectible'>,
  remainder: RevenueRemainder,
  amountRemaining: bigint,
): JournalEntry | null {
  const reversed = remainderTotal(remainder);
  const credit: Side = {
    account: 'customer_credit',
    customer: ref.customer,
    amount: reversed >= amountRemaining ? reversed - amountRemaining : amountRemaining - reversed,
  };
  const settled: Side =
    from === 'open'
      ? {
          account: 'accounts_receivable',
          customer: ref.customer,
          invoice: ref.invoice,
          amount: amountRemaining,
        }
      : { account: 'bad_debt', amount: amountRemaining };
  return post(
    'invoice_voided',
    currency,
    ref.invoice,
    [
      { account: 'revenue', amount: remainder.tax_exclusive_amount },
      ...taxSides(remainder.taxes),
      ...(reversed < amountRemaining ? [credit] : []),
    ],
    [settled, ...(reversed >= amountRemaining ? [credit] : [])],
  );
}

/** Write-off: the open remainder moves from AR to bad debt. */
export function postInvoiceUncollectible(
  ref: InvoiceRef,
  currency: string,
  amountRemaining: bigint,
): JournalEntry | null {
  return post(
    'invoice_uncollectible',
    currency,
    ref.invoice,
    [{ account: 'bad_debt', amount: amountRemaining }],
    [
      {
        account: 'accounts_receivable',
        customer: ref.customer,
        invoice: ref.invoice,
        amount: amountRemaining,
      },
    ],
  );
}

/** Credit note: revenue and tax go down; the invoice's AR by the applied part, customer credit by the rest. */
export function postCreditNote(
  ref: InvoiceRef & { readonly credit_note: string },
  credit: CreditNoteTotals,
  application: { readonly applied_to_invoice: bigint; readonly customer_credit: bigint },
): JournalEntry | null {
  if (application.applied_to_invoice + application.customer_credit !== credit.total) {
    throw invalid('Credit application must add up to the credit note total', 'application');
  }
  return post(
    'credit_note',
    credit.currency,
    ref.credit_note,
    [{ account: 'revenue', amount: credit.tax_exclusive_amount }, ...taxSides(credit.taxes)],
    [
      {
        account: 'accounts_receivable',
        customer: ref.customer,
        invoice: ref.invoice,
        amount: application.applied_to_invoice,
      },
      { account: 'customer_credit', customer: ref.customer, amount: application.customer_credit },
    ],
  );
}

/** Where a payment goes: an open invoice (AR) or a written-off one (a bad-debt recovery). */
export interface PaymentAllocation {
  readonly invoice: string;
  readonly amount: bigint;
  readonly written_off?: boolean;
}

/** Payment received: cash in; allocations settle invoices; whatever is not allocated becomes customer credit. */
export function postPaymentReceived(
  payment: {
    readonly payment: string;
    readonly customer: string;
    readonly currency: string;
    readonly amount: bigint;
  },
  allocations: readonly PaymentAllocation[],
): JournalEntry | null {
  const allocated = allocations.reduce((a, x) => a + x.amount, 0n);
  if (payment.amount <= 0n)
    throw new DomainError('amount_invalid', 'Payment amount must be positive', 'amount');
  if (allocations.some((a) => a.amount <= 0n)) {
    throw new DomainError('amount_invalid', 'Allocations must be positive', 'allocations');
  }
  if (allocated > payment.amount) {
    throw new DomainError('amount_invalid', 'Allocations exceed the payment amount', 'allocations');
  }
  return post(
    'payment_received',
    payment.currency,
    payment.payment,
    [{ account: 'cash', amount: payment.amount }],
    [
      ...allocations.map(
        (a): Side =>
          a.written_off === true
            ? { account: 'bad_debt', amount: a.amount }
            : {
                account: 'accounts_receivable',
                customer: payment.customer,
                invoice: a.invoice,
                amount: a.amount,
              },
      ),
      { account: 'customer_credit', customer: payment.customer, amount: payment.amount - allocated },
    ],
  );
}

/** Applies existing customer credit (an overpayment or credit note) to an open invoice. */
export function postCreditApplied(
  ref: InvoiceRef & { readonly reference: string },
  currency: string,
  amount: bigint,
): JournalEntry | null {
  if (amount <= 0n) throw new DomainError('amount_invalid', 'Amount must be positive', 'amount');
  return post(
    'credit_applied',
    currency,
    ref.reference,
    [{ account: 'customer_credit', customer: ref.customer, amount }],
    [{ account: 'accounts_receivable', customer: ref.customer, invoice: ref.invoice, amount }],
  );
}

/**
 * Refund paid out: from the customer's credit balance (after a credit note or overpayment), or as a
 * goodwill refund booked against revenue through the refunds contra account.
 */
export function postRefund(
  refund: {
    readonly refund: string;
    readonly customer: string;
    readonly currency: string;
    readonly amount: bigint;
  },
  source: 'customer_credit' | 'goodwill',
): JournalEntry | null {
  if (refund.amount <= 0n)
    throw new DomainError('amount_invalid', 'Refund amount must be positive', 'amount');
  return post(
    'refund',
    refund.currency,
    refund.refund,
    [
      source === 'customer_credit'
        ? { account: 'customer_credit', customer: refund.customer, amount: refund.amount }
        : { account: 'refunds', amount: refund.amount },
    ],
    [{ account: 'cash', amount: refund.amount }],
  );
}

/**
 * Settlement in the base currency of an invoice booked at the finalisation FX rate and paid at
 * another: AR leaves at its booked value, cash enters at the received value, and the difference is
 * a realised FX gain (credit) or loss (debit).
 */
export function postFxSettlement(
  ref: InvoiceRef & { readonly payment: string },
  baseCurrency: string,
  bookedBaseAmount: bigint,
  receivedBaseAmount: bigint,
): JournalEntry | null {
  const difference = receivedBaseAmount - bookedBaseAmount;
  return post(
    'fx_settlement',
    baseCurrency,
    ref.payment,
    [
      { account: 'cash', amount: receivedBaseAmount },
      { account: 'fx_gain_loss', amount: difference < 0n ? -difference : 0n },
    ],
    [
      {
        account: 'accounts_receivable',
        customer: ref.customer,
        invoice: ref.invoice,
        amount: bookedBaseAmount,
      },
      { account: 'fx_gain_loss', amount: difference > 0n ? difference : 0n },
    ],
  );
}

/** Debits, credits and balance (debits − credits) of one account in one currency. */
export interface AccountBalance {
  readonly currency: string;
  readonly account: Account;
  readonly debit: bigint;
  readonly credit: bigint;
  readonly balance: bigint;
}

/** The trial balance: per currency and account; `balanced` when debits equal credits in every currency. */
export function trialBalance(entries: readonly JournalEntry[]): {
  readonly accounts: readonly AccountBalance[];
  readonly balanced: boolean;
} {
  const totals = new Map<string, { currency: string; account: Account; debit: bigint; credit: bigint }>();
  for (const e of entries) {
    for (const l of e.lines) {
      const key = `${e.currency}:${l.account}`;
      const t = totals.get(key) ?? { currency: e.currency, account: l.account, debit: 0n, credit: 0n };
      t.debit += l.debit;
      t.credit += l.credit;
      totals.set(key, t);
    }
  }
  const accounts = [...totals.values()]
    .sort((a, b) =>
      a.currency === b.currency
        ? ACCOUNTS.indexOf(a.account) - ACCOUNTS.indexOf(b.account)
        : a.currency < b.currency
          ? -1
          : 1,
    )
    .map((t) => ({ ...t, balance: t.debit - t.credit }));
  const net = new Map<string, bigint>();
  for (const a of accounts) net.set(a.currency, (net.get(a.currency) ?? 0n) + a.balance);
  return { accounts, balanced: [...net.values()].every((v) => v === 0n) };
}

/** Receivable balance per invoice from the ledger (debits − credits on AR), keyed by currency and invoice. */
export function receivableByInvoice(entries: readonly JournalEntry[]): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const e of entries) {
    for (const l of e.lines) {
      if (l.account !== 'accounts_receivable' || l.invoice === undefined) continue;
      const key = `${e.currency}:${l.invoice}`;
      out.set(key, (out.get(key) ?? 0n) + l.debit - l.credit);
    }
  }
  return out;
}

/** A customer's unapplied credit balance in one currency (credits − debits on customer credit). */
export function customerCreditBalance(
  entries: readonly JournalEntry[],
  customer: string,
  currency: string,
): bigint {
  let balance = 0n;
  for (const e of entries) {
    if (e.currency !== currency) continue;
    for (const l of e.lines)
      if (l.account === 'customer_credit' && l.customer === customer) balance += l.credit - l.debit;
  }
  return balance;
}

/** Splits a `CUR:id` key at the first colon: currency codes never hold one, ids might. */
function splitCurrencyKey(key: string): [string, string] {
  const at = key.indexOf(':');
  return [key.slice(0, at), key.slice(at + 1)];
}

/** An invoice as the invariants see it. */
export interface InvoiceBalanceView {
  readonly invoice: string;
  readonly customer: string;
  readonly currency: string;
  readonly status: InvoiceStatus;
  readonly amount_remaining: bigint;
}

/** One broken invariant, with the figures that disagree (amounts as strings for printing). */
export interface LedgerProblem {
  readonly check: 'entry_unbalanced' | 'trial_balance' | 'receivable_per_customer' | 'receivable_per_invoice';
  readonly message: string;
  readonly details: Readonly<Record<string, string>>;
}

/**
 * The invariants of DESIGN.md §4: every entry balances; the trial balance is zero; AR per customer
 * (and per invoice) equals the open invoices' remainders. Returns the differences, empty when sound.
 */
export function verifyLedger(
  entries: readonly JournalEntry[],
  invoices: readonly InvoiceBalanceView[],
): LedgerProblem[] {
  const problems: LedgerProblem[] = [];
  entries.forEach((e, i) => {
    const debit = e.lines.reduce((a, l) => a + l.debit, 0n);
    const credit = e.lines.reduce((a, l) => a + l.credit, 0n);
    if (debit !== credit) {
      problems.push({
        check: 'entry_unbalanced',
        message: `Entry ${i} (${e.kind} ${e.reference}) does not balance`,
        details: { reference: e.reference, debit: debit.toString(), credit: credit.toString() },
      });
    }
  });
  const tb = trialBalance(entries);
  if (!tb.balanced) {
    const byCurrency = new Map<string, bigint>();
    for (const a of tb.accounts) byCurrency.set(a.currency, (byCurrency.get(a.currency) ?? 0n) + a.balance);
    for (const [currency, difference] of byCurrency) {
      if (difference !== 0n) {
        problems.push({
          check: 'trial_balance',
          message: `Trial balance in ${currency} is off by ${difference}`,
          details: { currency, difference: difference.toString() },
        });
      }
    }
  }

  const ledgerByInvoice = receivableByInvoice(entries);
  const expectedByInvoice = new Map<string, bigint>();
  const expectedByCustomer = new Map<string, bigint>();
  for (const inv of invoices) {
    const expected = inv.status === 'open' ? inv.amount_remaining : 0n;
    const key = `${inv.currency}:${inv.invoice}`;
    expectedByInvoice.set(key, expected);
    const ck = `${inv.currency}:${inv.customer}`;
    expectedByCustomer.set(ck, (expectedByCustomer.get(ck) ?? 0n) + expected);
  }
  const ledgerByCustomer = new Map<string, bigint>();
  for (const e of entries) {
    for (const l of e.lines) {
      if (l.account !== 'accounts_receivable') continue;
      const ck = `${e.currency}:${l.customer ?? ''}`;
      ledgerByCustomer.set(ck, (ledgerByCustomer.get(ck) ?? 0n) + l.debit - l.credit);
    }
  }
  for (const key of new Set([...expectedByCustomer.keys(), ...ledgerByCustomer.keys()])) {
    const ledger = ledgerByCustomer.get(key) ?? 0n;
    const expected = expectedByCustomer.get(key) ?? 0n;
    if (ledger !== expected) {
      const [currency, customer] = splitCurrencyKey(key);
      problems.push({
        check: 'receivable_per_customer',
        message: `AR for ${customer} in ${currency} is ${ledger}, open invoices say ${expected}`,
        details: { customer, currency, ledger: ledger.toString(), expected: expected.toString() },
      });
    }
  }
  for (const key of new Set([...expectedByInvoice.keys(), ...ledgerByInvoice.keys()])) {
    const ledger = ledgerByInvoice.get(key) ?? 0n;
    const expected = expectedByInvoice.get(key) ?? 0n;
    if (ledger !== expected) {
      const [currency, invoice] = splitCurrencyKey(key);
      problems.push({
        check: 'receivable_per_invoice',
        message: `AR for invoice ${invoice} in ${currency} is ${ledger}, expected ${expected}`,
        details: { invoice, currency, ledger: ledger.toString(), expected: expected.toString() },
      });
    }
  }
  return problems;
}
