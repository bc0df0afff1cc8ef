/**
 * Property: after any sequence of invoices (create + finalise, back-dated), payments (explicit or
 * oldest-first, back-dated), credit notes, refunds, voids, write-offs, unapplications and credit
 * applications — all through the real use cases on real PostgreSQL —
 *   - `verifyOrgLedger` passes,
 *   - AR aging as of today = sum of open invoice remainders = the ledger's AR balance,
 *   - no invoice has a negative remainder,
 *   - AR aging as of a random past date equals the direct definition (remainder at that date of
 *     every invoice issued by then and not voided or written off by then, bucketed by the pure
 *     `agingReport` of src/domain/aging.ts), computed here from the raw rows.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { inOrg } from '../../src/adapters/db/index.js';
import { systemCtx } from '../../src/app/context.js';
import { createCreditNote } from '../../src/app/credit-notes.js';
import { createCustomer } from '../../src/app/customers.js';
import {
  createInvoice,
  finalizeInvoice,
  isoDay,
  markUncollectible,
  voidInvoice,
} from '../../src/app/invoices.js';
import { verifyOrgLedger } from '../../src/app/ledger.js';
import { createOrg } from '../../src/app/orgs.js';
import { applyCredit, recordPayment, unapplyPayment } from '../../src/app/payments.js';
import { systemClock } from '../../src/app/ports.js';
import { createRefund } from '../../src/app/refunds.js';
import { agingAggregate } from '../../src/app/reports.js';
import { type AgingItem, agingReport } from '../../src/domain/aging.js';
import { addDays } from '../../src/domain/dates.js';
import { isDomainError } from '../../src/domain/errors.js';
import { testCipher } from '../helpers/crypto.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let t: TestDatabase;
const deps = () => ({ db: t.db, cipher: testCipher(), clock: systemClock });

before(async () => {
  t = await createTestDatabase();
});
after(() => t.drop());

const day = (offset: number) => addDays('2026-01-01', offset);

type Cmd =
  | { k: 'invoice'; c: number; amount: number; issue: number; terms: number }
  | { k: 'pay'; c: number; amount: number; received: number; target: number | null }
  | { k: 'credit_note'; i: number; amount: number }
  | { k: 'refund'; c: number; amount: number }
  | { k: 'void'; i: number }
  | { k: 'uncollectible'; i: number }
  | { k: 'unapply'; p: number }
  | { k: 'apply_credit'; c: number; i: number; amount: number };

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      k: fc.constant('invoice' as const),
      c: fc.nat(2),
      amount: fc.integer({ min: 1, max: 50_000 }),
      issue: fc.nat(300),
      terms: fc.nat(120),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      k: fc.constant('pay' as const),
      c: fc.nat(2),
      amount: fc.integer({ min: 1, max: 40_000 }),
      received: fc.nat(320),
      target: fc.option(fc.nat(20), { nil: null }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('credit_note' as const),
      i: fc.nat(20),
      amount: fc.integer({ min: 1, max: 20_000 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('refund' as const),
      c: fc.nat(2),
      amount: fc.integer({ min: 1, max: 10_000 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('void' as const), i: fc.nat(20) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('uncollectible' as const), i: fc.nat(20) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('unapply' as const), p: fc.nat(20) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('apply_credit' as const),
      c: fc.nat(2),
      i: fc.nat(20),
      amount: fc.integer({ min: 1, max: 20_000 }),
    }),
  },
);

/** Business refusals (remainder exceeded, not open, no credit…) are expected; anything else fails the property. */
async function tolerate(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (e) {
    if (!isDomainError(e) || e.code === 'internal_error' || e.code === 'ledger_unbalanced') throw e;
  }
}

async function run(cmds: Cmd[], asOfOffset: number) {
  const org = (await createOrg(t.db, { name: 'Prop', baseCurrency: 'EUR' })).id;
  const ctx = systemCtx(org);
  const d = deps();
  const customers: string[] = [];
  for (let i = 0; i < 3; i++)
    customers.push((await createCustomer(d, ctx, { name: `P${i}`, currency: 'EUR' })).id);
  const invoices: { id: string; customer: string }[] = [];
  const payments: string[] = [];
  const pick = <T>(xs: T[], i: number): T | undefined => (xs.length ? xs[i % xs.length] : undefined);
  for (const c of cmds) {
    if (c.k === 'invoice') {
      const customer = customers[c.c] as string;
      const draft = await createInvoice(d, ctx, {
        customer,
        currency: 'EUR',
        due_date: day(c.issue + c.terms),
        lines: [{ description: 'x', quantity: '1', unit_amount: c.amount }],
      });
      await finalizeInvoice(d, ctx, draft.id, { issue_date: day(c.issue) });
      invoices.push({ id: draft.id, customer });
    } else if (c.k === 'pay') {
      const customer = customers[c.c] as string;
      const target =
        c.target === null
          ? undefined
          : pick(
              invoices.filter((i) => i.customer === customer),
              c.target,
            );
      await tolerate(
        recordPayment(d, ctx, {
          customer,
          amount: c.amount,
          currency: 'EUR',
          method: 'bank_transfer',
          received_on: day(c.received),
          ...(target
            ? { allocations: [{ invoice: target.id, amount: c.amount }], excess: 'credit' as const }
            : {}),
        }).then((p) => payments.push(p.id)),
      );
    } else if (c.k === 'credit_note') {
      const inv = pick(invoices, c.i);
      if (inv)
        await tolerate(createCreditNote(d, ctx, { invoice: inv.id, amount: c.amount, reason: 'other' }));
    } else if (c.k === 'refund') {
      await tolerate(
        createRefund(d, ctx, { customer: customers[c.c] as string, amount: c.amount, reason: 'prop' }),
      );
    } else if (c.k === 'void') {
      const inv = pick(invoices, c.i);
      if (inv) await tolerate(voidInvoice(d, ctx, inv.id));
    } else if (c.k === 'uncollectible') {
      const inv = pick(invoices, c.i);
      if (inv) await tolerate(markUncollectible(d, ctx, inv.id));
    } else if (c.k === 'unapply') {
      const p = pick(payments, c.p);
      if (p) {
        const alloc = await t.db
          .selectFrom('payment_allocations')
          .select('invoice_id')
          .where('payment_id', '=', p)
          .where('unapplied_at', 'is', null)
          .executeTakeFirst();
        if (alloc) await tolerate(unapplyPayment(d, ctx, p, { invoice: alloc.invoice_id }));
      }
    } else {
      const inv = pick(invoices, c.i);
      if (inv)
        await tolerate(applyCredit(d, ctx, customers[c.c] as string, { invoice: inv.id, amount: c.amount }));
    }
  }

  const ledger = await verifyOrgLedger(d, ctx);
  assert.equal(ledger.ok, true, JSON.stringify(ledger.problems));
  const ar = ledger.trial_balance.find((a) => a.account === 'accounts_receivable');
  const rows = await t.db.selectFrom('invoices').selectAll().where('org_id', '=', org).execute();
  assert.ok(
    rows.every((r) => r.amount_remaining >= 0n),
    'no negative remainder',
  );
  const openSum = rows.filter((r) => r.status === 'open').reduce((s, r) => s + r.amount_remaining, 0n);
  const today = isoDay(new Date());
  const nowAging = await inOrg(t.db, org, (tx) => agingAggregate(tx, today, { limit: 100 }));
  assert.equal(nowAging.total, openSum, 'aging total today = sum of open remainders');
  assert.equal(BigInt(ar?.balance ?? '0'), openSum, 'AR ledger balance = sum of open remainders');

  // as of a past date: the direct definition from the raw rows, bucketed by the pure domain function
  const asOf = day(asOfOffset);
  const allocs = await t.db
    .selectFrom('payment_allocations as a')
    .leftJoin('payments as p', (j) => j.onRef('p.org_id', '=', 'a.org_id').onRef('p.id', '=', 'a.payment_id'))
    .select([
      'a.invoice_id',
      'a.amount',
      'a.created_at',
      'a.unapplied_at',
      'p.created_at as paid_at',
      'p.received_on',
    ])
    .where('a.org_id', '=', org)
    .execute();
  const notes = await t.db
    .selectFrom('credit_notes')
    .select(['invoice_id', 'applied_to_invoice', 'issue_date'])
    .where('org_id', '=', org)
    .execute();
  const items: AgingItem[] = [];
  for (const r of rows) {
    if (r.status === 'draft' || (r.issue_date as string) > asOf) continue;
    if (r.voided_at && isoDay(r.voided_at) <= asOf) continue;
    if (r.uncollectible_at && isoDay(r.uncollectible_at) <= asOf) continue;
    let rem = r.amount_due;
    for (const a of allocs) {
      if (a.invoice_id !== r.id) continue;
      const eff =
        a.paid_at && a.received_on && a.created_at.getTime() === a.paid_at.getTime()
          ? a.received_on
          : isoDay(a.created_at);
      if (eff <= asOf && (a.unapplied_at === null || isoDay(a.unapplied_at) > asOf)) rem -= a.amount;
    }
    for (const n of notes) if (n.invoice_id === r.id && n.issue_date <= asOf) rem -= n.applied_to_invoice;
    // A payment recorded today but received on a past date counts from that date; if an earlier
    // allocation to the same invoice was unapplied only today, both count on that past date and
    // the invoice was over-paid then: it was paid, with nothing left (not a negative remainder).
    if (rem < 0n) rem = 0n;
    items.push({
      invoice: r.id,
      customer: r.customer_id,
      due_date: r.due_date as string,
      amount_remaining: rem,
    });
  }
  const expected = agingReport(items, asOf); // throws on a negative remainder
  const got = await inOrg(t.db, org, (tx) => agingAggregate(tx, asOf, { limit: 100 }));
  assert.deepEqual(got.totals, expected.buckets, `aging buckets as of ${asOf}`);
  assert.equal(got.total, expected.total);
  assert.deepEqual(
    got.customers.map((c) => [c.customer, c.total]),
    expected.customers.map((c) => [c.customer, c.total]),
  );
}

describe('reports property', () => {
  it('ledger verifies and aging = open remainders = AR, today and as of any past date', async () => {
    await fc.assert(fc.asyncProperty(fc.array(cmd, { minLength: 3, maxLength: 14 }), fc.nat(330), run), {
      numRuns: 20,
      examples: [
        // found by CI (seed -423058211): paid, unapplied today, paid again back-dated to the same day
        [
          [
            { k: 'invoice', c: 2, amount: 1, issue: 0, terms: 0 },
            { k: 'pay', c: 2, amount: 1, received: 0, target: null },
            { k: 'unapply', p: 0 },
            { k: 'invoice', c: 0, amount: 1, issue: 0, terms: 0 },
            { k: 'pay', c: 2, amount: 1, received: 0, target: null },
          ],
          0,
        ],
      ],
    });
  });
});
