import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type CreditNoteTotals,
  type CreditRequest,
  computeCreditNote,
  creditableRemainder,
  splitCreditApplication,
} from '../../src/domain/credit-note.js';
import { isDomainError } from '../../src/domain/errors.js';
import { computeInvoice, type InvoiceTotals } from '../../src/domain/invoice.js';
import {
  applyInvoiceAction,
  draftInvoiceState,
  type InvoiceState,
} from '../../src/domain/invoice-transitions.js';
import {
  customerCreditBalance,
  type JournalEntry,
  journalEntry,
  postCreditApplied,
  postCreditNote,
  postFxSettlement,
  postInvoiceFinalized,
  postInvoiceUncollectible,
  postInvoiceVoided,
  postPaymentReceived,
  postRefund,
  trialBalance,
  verifyLedger,
} from '../../src/domain/ledger.js';

const UP = { rounding: 'half_up' } as const;

/** Math.min does not take bigints. */
function minBig(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
const REF = { invoice: 'inv_1', customer: 'cus_1' };

function sampleInvoice(): InvoiceTotals {
  return computeInvoice(
    {
      currency: 'EUR',
      lines: [
        { quantity: '1', unit_amount: 10000, tax_rates: [{ percentage: '20', category: 'S' }] },
        { quantity: '1', unit_amount: 5000, tax_rates: [{ percentage: '5', category: 'S' }] },
      ],
    },
    UP,
  );
}

function amounts(e: JournalEntry | null): string[] {
  assert.ok(e);
  return e.lines.map(
    (l) =>
      `${l.account}${l.tax_group ? `[${l.tax_group}]` : ''} ${l.debit > 0n ? 'Dr' : 'Cr'} ${l.debit || l.credit}`,
  );
}

describe('journal entries', () => {
  it('refuse to be unbalanced or malformed', () => {
    assert.throws(
      () =>
        journalEntry('refund', 'EUR', 'ref_1', [
          { account: 'cash', debit: 100n, credit: 0n },
          { account: 'refunds', debit: 0n, credit: 99n },
        ]),
      (e) => isDomainError(e, 'ledger_unbalanced'),
    );
    const bad = [
      [{ account: 'cash', debit: 1n, credit: 0n }],
      [
        { account: 'cash', debit: 1n, credit: 1n },
        { account: 'refunds', debit: 0n, credit: 0n },
      ],
      [
        { account: 'cash', debit: -1n, credit: 0n },
        { account: 'refunds', debit: 0n, credit: -1n },
      ],
      [
        { account: 'cash', debit: 1n, credit: 0n },
        { account: 'accounts_receivable', debit: 0n, credit: 1n, customer: 'cus_1' },
      ],
      [
        { account: 'cash', debit: 1n, credit: 0n },
        { account: 'customer_credit', debit: 0n, credit: 1n },
      ],
      [
        { account: 'cash', debit: 1n, credit: 0n },
        { account: 'petty_cash' as never, debit: 0n, credit: 1n },
      ],
    ] as const;
    for (const lines of bad) {
      assert.throws(
        () => journalEntry('refund', 'EUR', 'ref_1', lines),
        (e) => isDomainError(e, 'ledger_entry_invalid'),
      );
    }
    const ok = journalEntry('refund', 'eur', 'ref_1', [
      { account: 'refunds', debit: 5n, credit: 0n },
      { account: 'cash', debit: 0n, credit: 5n },
    ]);
    assert.equal(ok.currency, 'EUR');
    assert.ok(Object.isFrozen(ok.lines));
  });

  it('finalisation debits AR and credits revenue and tax per group', () => {
    assert.deepEqual(amounts(postInvoiceFinalized(REF, sampleInvoice())), [
      'accounts_receivable Dr 17250',
      'revenue Cr 15000',
      'tax_payable[S:20] Cr 2000',
      'tax_payable[S:5] Cr 250',
    ]);
    const prepaid = computeInvoice(
      { currency: 'EUR', lines: [{ quantity: '1', unit_amount: 1000 }], prepaid_amount: 400 },
      UP,
    );
    assert.deepEqual(amounts(postInvoiceFinalized(REF, prepaid)), [
      'accounts_receivable Dr 600',
      'customer_credit Dr 400',
      'revenue Cr 1000',
    ]);
    assert.equal(postInvoiceFinalized(REF, computeInvoice({ currency: 'EUR', lines: [] }, UP)), null);
  });

  it('credit note, payment with overpayment, credit application and refunds', () => {
    const inv = sampleInvoice();
    const cn = computeCreditNote(inv, 'open', [], { kind: 'lines', lines: [{ line: 1 }] }, UP);
    assert.deepEqual(
      amounts(
        postCreditNote({ ...REF, credit_note: 'cn_1' }, cn, splitCreditApplication(cn.total, 'open', 17250n)),
      ),
      ['revenue Dr 5000', 'tax_payable[S:5] Dr 250', 'accounts_receivable Cr 5250'],
    );
    assert.deepEqual(
      amounts(
        postCreditNote({ ...REF, credit_note: 'cn_2' }, cn, splitCreditApplication(cn.total, 'paid', 0n)),
      ).at(-1),
      'customer_credit Cr 5250',
    );
    assert.deepEqual(
      amounts(
        postPaymentReceived({ payment: 'pay_1', customer: 'cus_1', currency: 'EUR', amount: 13000n }, [
          { invoice: 'inv_1', amount: 12000n },
        ]),
      ),
      ['cash Dr 13000', 'accounts_receivable Cr 12000', 'customer_credit Cr 1000'],
    );
    assert.throws(
      () =>
        postPaymentReceived({ payment: 'pay_1', customer: 'cus_1', currency: 'EUR', amount: 10n }, [
          { invoice: 'inv_1', amount: 11n },
        ]),
      (e) => isDomainError(e, 'amount_invalid'),
    );
    assert.deepEqual(amounts(postCreditApplied({ ...REF, reference: 'pay_1' }, 'EUR', 700n)), [
      'customer_credit Dr 700',
      'accounts_receivable Cr 700',
    ]);
    assert.deepEqual(
      amounts(
        postRefund({ refund: 'ref_1', customer: 'cus_1', currency: 'EUR', amount: 300n }, 'customer_credit'),
      ),
      ['customer_credit Dr 300', 'cash Cr 300'],
    );
    assert.deepEqual(
      amounts(postRefund({ refund: 'ref_2', customer: 'cus_1', currency: 'EUR', amount: 300n }, 'goodwill')),
      ['refunds Dr 300', 'cash Cr 300'],
    );
  });

  it('void and write-off reverse what is left', () => {
    const inv = sampleInvoice();
    const left = { tax_exclusive_amount: 15000n, taxes: creditableRemainder(inv, []).taxes };
    const voided = (from: 'open' | 'uncollectible', remaining: bigint) =>
      amounts(postInvoiceVoided(REF, 'EUR', from, left, remaining));
    const reversal = ['revenue Dr 15000', 'tax_payable[S:20] Dr 2000', 'tax_payable[S:5] Dr 250'];
    assert.deepEqual(voided('open', 17250n), [...reversal, 'accounts_receivable Cr 17250']);
    assert.deepEqual(amounts(postInvoiceUncollectible(REF, 'EUR', 17250n)), [
      'bad_debt Dr 17250',
      'accounts_receivable Cr 17250',
    ]);
    assert.deepEqual(voided('uncollectible', 17250n).at(-1), 'bad_debt Cr 17250');
    // a remainder above what is left to reverse (credit already given to the customer) takes
    // the difference back from customer credit
    assert.deepEqual(voided('open', 17350n), [
      ...reversal,
      'customer_credit Dr 100',
      'accounts_receivable Cr 17350',
    ]);
  });

  it('FX settlement books the realised gain or loss', () => {
    const ref = { ...REF, payment: 'pay_1' };
    assert.deepEqual(amounts(postFxSettlement(ref, 'EUR', 9000n, 9200n)), [
      'cash Dr 9200',
      'accounts_receivable Cr 9000',
      'fx_gain_loss Cr 200',
    ]);
    assert.deepEqual(amounts(postFxSettlement(ref, 'EUR', 9000n, 8900n)), [
      'cash Dr 8900',
      'fx_gain_loss Dr 100',
      'accounts_receivable Cr 9000',
    ]);
  });

  it('verifyLedger reports unbalanced entries, a non-zero trial balance and AR differences', () => {
    const inv = sampleInvoice();
    const entries = [postInvoiceFinalized(REF, inv)].filter((e): e is JournalEntry => e !== null);
    const open = [{ ...REF, currency: 'EUR', status: 'open' as const, amount_remaining: 17250n }];
    assert.deepEqual(verifyLedger(entries, open), []);
    assert.ok(trialBalance(entries).balanced);
    const problems = verifyLedger(entries, [{ ...open[0]!, amount_remaining: 17000n }]);
    assert.deepEqual(
      problems.map((p) => p.check),
      ['receivable_per_customer', 'receivable_per_invoice'],
    );
    const odd = { invoice: 'inv:1', customer: 'cus:x' };
    const oddEntries = [postInvoiceFinalized(odd, inv)].filter((e): e is JournalEntry => e !== null);
    assert.deepEqual(
      verifyLedger(oddEntries, []).map((p) => [p.check, p.details.customer ?? p.details.invoice]),
      [
        ['receivable_per_customer', 'cus:x'],
        ['receivable_per_invoice', 'inv:1'],
      ],
    );
    // A tampered row (as read back from storage) bypasses the constructor; verify still catches it.
    const tampered: JournalEntry = {
      ...entries[0]!,
      lines: [{ ...entries[0]!.lines[0]!, debit: 17251n }, ...entries[0]!.lines.slice(1)],
    };
    const checks = verifyLedger([tampered], open).map((p) => p.check);
    assert.ok(checks.includes('entry_unbalanced'));
    assert.ok(checks.includes('trial_balance'));
  });
});

interface SimInvoice {
  readonly id: string;
  readonly customer: string;
  readonly totals: InvoiceTotals;
  state: InvoiceState;
  credits: CreditNoteTotals[];
}

type Op =
  | {
      readonly op: 'invoice';
      readonly customer: number;
      readonly lines: readonly { quantity: string; unit_amount: number; rate: number }[];
    }
  | { readonly op: 'pay'; readonly invoice: number; readonly amount: bigint }
  | { readonly op: 'credit'; readonly invoice: number; readonly request: CreditRequest }
  | { readonly op: 'void' | 'uncollectible' | 'apply_credit'; readonly invoice: number }
  | { readonly op: 'refund'; readonly customer: number; readonly amount: bigint; readonly goodwill: boolean };

const RATES = [
  [{ percentage: '20', category: 'S' }],
  [{ percentage: '5.5', category: 'S' }],
  [{ percentage: '0', category: 'AE', exemption_reason: 'Reverse charge' }],
  [
    { percentage: '5', category: 'S' },
    { percentage: '9.975', category: 'S', compound: true },
  ],
] as const;

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    op: fc.constant('invoice' as const),
    customer: fc.integer({ min: 0, max: 2 }),
    lines: fc.array(
      fc.record({
        quantity: fc
          .integer({ min: 1, max: 400 })
          .map((n) => `${Math.floor(n / 4)}.${['00', '25', '5', '75'][n % 4]}`),
        unit_amount: fc.integer({ min: 0, max: 50_000 }),
        rate: fc.integer({ min: 0, max: RATES.length - 1 }),
      }),
      { minLength: 1, maxLength: 4 },
    ),
  }),
  fc.record({
    op: fc.constant('pay' as const),
    invoice: fc.nat(),
    amount: fc.bigInt({ min: 1n, max: 200_000n }),
  }),
  fc.record({
    op: fc.constant('credit' as const),
    invoice: fc.nat(),
    request: fc.oneof(
      fc.constant<CreditRequest>({ kind: 'full' }),
      fc.bigInt({ min: 1n, max: 50_000n }).map((amount): CreditRequest => ({ kind: 'amount', amount })),
      fc.constant<CreditRequest>({ kind: 'lines', lines: [{ line: 0, quantity: '0.25' }] }),
    ),
  }),
  fc.record({
    op: fc.constantFrom('void' as const, 'uncollectible' as const, 'apply_credit' as const),
    invoice: fc.nat(),
  }),
  fc.record({
    op: fc.constant('refund' as const),
    customer: fc.integer({ min: 0, max: 2 }),
    amount: fc.bigInt({ min: 1n, max: 20_000n }),
    goodwill: fc.boolean(),
  }),
);

describe('ledger invariants under random operations (property)', () => {
  it('every entry balances, the trial balance is zero and AR per customer equals open remainders', () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { maxLength: 40 }),
        fc.constantFrom('half_up' as const, 'half_even' as const),
        (ops, rounding) => {
          const entries: JournalEntry[] = [];
          const invoices: SimInvoice[] = [];
          const customers = ['cus_a', 'cus_b', 'cus_c'];
          let seq = 0;
          const push = (e: JournalEntry | null): void => {
            if (e !== null) entries.push(e);
          };
          for (const op of ops) {
            try {
              if (op.op === 'invoice') {
                const totals = computeInvoice(
                  {
                    currency: 'EUR',
                    lines: op.lines.map((l) => ({
                      quantity: l.quantity,
                      unit_amount: l.unit_amount,
                      tax_rates: RATES[l.rate] ?? [],
                    })),
                  },
                  { rounding },
                );
                const id = `inv_${++seq}`;
                const customer = customers[op.customer] ?? 'cus_a';
                const state = applyInvoiceAction(
                  draftInvoiceState(op.lines.length, totals.total, totals.amount_due),
                  { type: 'finalize' },
                );
                invoices.push({ id, customer, totals, state, credits: [] });
                push(postInvoiceFinalized({ invoice: id, customer }, totals));
                continue;
              }
              if (op.op === 'refund') {
                const customer = customers[op.customer] ?? 'cus_a';
                if (!op.goodwill) {
                  const balance = customerCreditBalance(entries, customer, 'EUR');
                  if (balance <= 0n) continue;
                  const amount = minBig(op.amount, balance);
                  push(
                    postRefund(
                      { refund: `ref_${++seq}`, customer, currency: 'EUR', amount },
                      'customer_credit',
                    ),
                  );
                } else {
                  push(
                    postRefund(
                      { refund: `ref_${++seq}`, customer, currency: 'EUR', amount: op.amount },
                      'goodwill',
                    ),
                  );
                }
                continue;
              }
              const inv = invoices.length > 0 ? invoices[op.invoice % invoices.length] : undefined;
              if (inv === undefined) continue;
              const ref = { invoice: inv.id, customer: inv.customer };
              if (op.op === 'pay') {
                const payable = inv.state.status === 'open' || inv.state.status === 'uncollectible';
                const allocated = payable ? minBig(op.amount, inv.state.amount_remaining) : 0n;
                const before = inv.state.status;
                if (allocated > 0n)
                  inv.state = applyInvoiceAction(inv.state, { type: 'pay', amount: allocated });
                push(
                  postPaymentReceived(
                    { payment: `pay_${++seq}`, customer: inv.customer, currency: 'EUR', amount: op.amount },
                    allocated > 0n
                      ? [{ invoice: inv.id, amount: allocated, written_off: before === 'uncollectible' }]
                      : [],
                  ),
                );
              } else if (op.op === 'credit') {
                const cn = computeCreditNote(inv.totals, inv.state.status, inv.credits, op.request, {
                  rounding,
                });
                const application = splitCreditApplication(
                  cn.total,
                  inv.state.status,
                  inv.state.amount_remaining,
                );
                if (application.applied_to_invoice > 0n) {
                  inv.state = applyInvoiceAction(inv.state, {
                    type: 'apply_credit',
                    amount: application.applied_to_invoice,
                  });
                }
                inv.credits.push(cn);
                push(postCreditNote({ ...ref, credit_note: `cn_${++seq}` }, cn, application));
              } else if (op.op === 'void') {
                const from = inv.state.status;
                const next = applyInvoiceAction(inv.state, { type: 'void' });
                const left = creditableRemainder(inv.totals, inv.credits);
                const net = left.partitions.reduce((a, b) => a + b, 0n);
                push(
                  postInvoiceVoided(
                    ref,
                    'EUR',
                    from as 'open' | 'uncollectible',
                    { tax_exclusive_amount: net, taxes: left.taxes },
                    inv.state.amount_remaining,
                  ),
                );
                inv.state = next;
              } else if (op.op === 'uncollectible') {
                inv.state = applyInvoiceAction(inv.state, { type: 'mark_uncollectible' });
                push(postInvoiceUncollectible(ref, 'EUR', inv.state.amount_remaining));
              } else if (op.op === 'apply_credit') {
                const balance = customerCreditBalance(entries, inv.customer, 'EUR');
                if (balance <= 0n || inv.state.status !== 'open') continue;
                const amount = minBig(balance, inv.state.amount_remaining);
                inv.state = applyInvoiceAction(inv.state, { type: 'apply_credit', amount });
                push(postCreditApplied({ ...ref, reference: `pay_${++seq}` }, 'EUR', amount));
              }
            } catch (e) {
              // Refused operations (illegal transition, over-credit) must be DomainErrors and change nothing.
              assert.ok(isDomainError(e), String(e));
            }
            const view = invoices.map((i) => ({
              invoice: i.id,
              customer: i.customer,
              currency: 'EUR',
              status: i.state.status,
              amount_remaining: i.state.amount_remaining,
            }));
            assert.deepEqual(verifyLedger(entries, view), []);
            for (const c of customers)
              assert.ok(customerCreditBalance(entries, c, 'EUR') >= 0n, 'negative customer credit');
          }
          assert.ok(trialBalance(entries).balanced);
        },
      ),
      { numRuns: 200 },
    );
  });
});
