import { type Selectable, sql } from 'kysely';
import { inOrg, type Tx } from '../adapters/db/index.js';
import type { InvoicesTable, PaymentAllocationsTable, PaymentsTable } from '../adapters/db/schema-billing.js';
import { assertIsoDate } from '../domain/dates.js';
import { DomainError } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import { applyInvoiceAction, type InvoiceState } from '../domain/invoice-transitions.js';
import { postCreditApplied, postPaymentReceived } from '../domain/ledger.js';
import { assertCurrency } from '../domain/money.js';
import {
  allocateOldestFirst,
  type CreditDraw,
  drawCredit,
  type PaymentMethod,
  postAllocationReversed,
  unapplyFromInvoice,
} from '../domain/payments.js';
import type { Actor } from '../domain/permissions.js';
import { recordAudit, recordPiiRead } from './audit.js';
import { authorize } from './authz.js';
import type { Ctx } from './context.js';
import { type BillingDeps, creditBalance, customerResource } from './customers.js';
import { amount, isoDay } from './invoices.js';
import { postEntry } from './ledger.js';
import { fetchPage, type ListPage, type PageParams } from './pagination.js';
import { decryptOrNull } from './shredded.js';
import { emitEvent, invoiceObject, paymentObject } from './webhooks.js';

type InvoiceRow = Selectable<InvoicesTable>;
type PaymentRow = Selectable<PaymentsTable>;
type AllocationRow = Selectable<PaymentAllocationsTable>;

export interface CardInput {
  gateway_token?: string;
  brand?: string;
  last4?: string;
  exp_month?: number;
  exp_year?: number;
}

export interface PaymentInput {
  customer: string;
  amount: number;
  currency: string;
  method: PaymentMethod;
  reference?: string | null;
  received_on?: string;
  /** Explicit allocation; when absent, the payment settles open invoices oldest due first. */
  allocations?: { invoice: string; amount: number }[];
  /** An explicit allocation above an invoice's remainder: refuse (default) or keep the excess as credit. */
  excess?: 'reject' | 'credit';
  card?: CardInput;
}

export interface AllocationView {
  id: string;
  object: 'payment_allocation';
  invoice: string;
  payment: string | null;
  source: 'payment' | 'credit';
  amount: number;
  currency: string;
  written_off: boolean;
  created_at: string;
  unapplied_at: string | null;
}

export interface PaymentView {
  id: string;
  object: 'payment';
  customer: string;
  amount: number;
  currency: string;
  method: PaymentMethod;
  reference: string | null;
  received_on: string;
  amount_applied: number;
  amount_unapplied: number;
  amount_refunded: number;
  allocations: AllocationView[];
  card: {
    brand: string | null;
    last4: string | null;
    exp_month: number | null;
    exp_year: number | null;
  } | null;
  /** The gateway a card payment came through (webhook intake), else null. */
  gateway: 'stripe' | null;
  /** A chargeback opened at the gateway. */
  disputed: boolean;
  disputed_at: string | null;
  dispute_reason: string | null;
  created_at: string;
}

/** Who did it, as a person: a key acts for its creator, so four-eyes and audit compare people. */
export function personOf(actor: Actor): string {
  return actor.userId ?? actor.id;
}

/** The invoice state the transition table reads (settlement never looks at the line count). */
export function invoiceState(row: InvoiceRow): InvoiceState {
  return {
    status: row.status,
    line_count: 1,
    total: row.total,
    amount_due: row.amount_due,
    amount_paid: row.amount_paid,
    amount_credited: row.amount_credited,
    amount_remaining: row.amount_remaining,
  };
}

/** Writes a new settlement state of an invoice (the only columns the database lets move). */
export async function saveInvoiceState(tx: Tx, row: InvoiceRow, next: InvoiceState, now: Date) {
  await tx
    .updateTable('invoices')
    .set({
      status: next.status,
      amount_paid: next.amount_paid,
      amount_credited: next.amount_credited,
      amount_remaining: next.amount_remaining,
      paid_at: next.status === 'paid' ? (row.status === 'paid' ? row.paid_at : now) : null,
      version: sql<number>`version + 1`,
      updated_at: now,
    })
    .where('id', '=', row.id)
    .execute();
  if (next.status === 'paid' && row.status !== 'paid')
    await emitEvent(tx, row.org_id, 'invoice.paid', invoiceObject({ ...row, ...next }), now);
}

/**
 * Locks invoices FOR UPDATE in id order (every money write takes them in this one order, so
 * two writers on the same invoices never deadlock) and returns the rows as they are now.
 */
export async function lockInvoices(tx: Tx, ids: string[]): Promise<Map<string, InvoiceRow>> {
  if (ids.length === 0) return new Map();
  const rows = await tx
    .selectFrom('invoices')
    .selectAll()
    .where('id', 'in', [...new Set(ids)].sort())
    .orderBy('id')
    .forUpdate()
    .execute();
  return new Map(rows.map((r) => [r.id, r]));
}

/** Locks a customer row (NO KEY UPDATE: foreign-key checks still pass) to serialise credit use. */
export async function lockCustomerRow(tx: Tx, id: string) {
  const customer = await tx
    .selectFrom('customers')
    .select(['org_id', 'id', 'owner_user_id', 'currency'])
    .where('id', '=', id)
    .forNoKeyUpdate()
    .executeTakeFirst();
  if (!customer) throw new DomainError('not_found', 'No such customer.', 'customer');
  return customer;
}

/** lockCustomerRow, then the actor's permission on that customer. */
export async function lockCustomer(
  tx: Tx,
  ctx: Ctx,
  id: string,
  permission: 'payments:write' | 'refunds:write' | 'refunds:approve',
) {
  const customer = await lockCustomerRow(tx, id);
  await authorize(tx, ctx, permission, customerResource(customer));
  return customer;
}

/** The customer's credit split into what payments hold unapplied and the rest, read in one snapshot. */
export async function creditPosition(tx: Tx, customerId: string, currency: string) {
  const r = await sql<{ balance: string; unapplied: string }>`
    SELECT
      (SELECT coalesce(sum(l.credit - l.debit), 0)
         FROM journal_lines l JOIN journal_entries e ON e.org_id = l.org_id AND e.id = l.entry_id
        WHERE l.account = 'customer_credit' AND l.customer_id = ${customerId} AND e.currency = ${currency})::text AS balance,
      (SELECT coalesce(sum(amount_unapplied), 0) FROM payments
        WHERE customer_id = ${customerId} AND currency = ${currency})::text AS unapplied`.execute(tx);
  const balance = BigInt(r.rows[0]?.balance ?? '0');
  const unapplied = BigInt(r.rows[0]?.unapplied ?? '0');
  return { balance, unapplied, other: balance - unapplied };
}

/** Payments of a customer with unapplied money, locked in id order, returned oldest first. */
export async function lockUnappliedPayments(tx: Tx, customerId: string, currency: string) {
  const rows = await tx
    .selectFrom('payments')
    .selectAll()
    .where('customer_id', '=', customerId)
    .where('currency', '=', currency)
    .where('amount_unapplied', '>', 0n)
    .orderBy('id')
    .forNoKeyUpdate()
    .execute();
  return rows.sort((a, b) =>
    a.created_at.getTime() !== b.created_at.getTime()
      ? a.created_at.getTime() - b.created_at.getTime()
      : a.id < b.id
        ? -1
        : 1,
  );
}

function allocationView(a: AllocationRow): AllocationView {
  return {
    id: a.id,
    object: 'payment_allocation',
    invoice: a.invoice_id,
    payment: a.payment_id,
    source: a.source,
    amount: amount(a.amount),
    currency: a.currency,
    written_off: a.written_off,
    created_at: a.created_at.toISOString(),
    unapplied_at: a.unapplied_at ? a.unapplied_at.toISOString() : null,
  };
}

async function view(
  deps: BillingDeps,
  tx: Tx,
  row: PaymentRow,
  allocations: AllocationRow[],
): Promise<PaymentView> {
  // null once the customer is erased (their data key destroyed)
  const reference = await decryptOrNull(
    deps.cipher,
    tx,
    { orgId: row.org_id, subject: { type: 'customer', id: row.customer_id } },
    'payments',
    'reference_enc',
    row.id,
    row.reference_enc,
  );
  const active = allocations.filter((a) => a.unapplied_at === null);
  return {
    id: row.id,
    object: 'payment',
    customer: row.customer_id,
    amount: amount(row.amount),
    currency: row.currency,
    method: row.method,
    reference,
    received_on: row.received_on,
    amount_applied: amount(active.reduce((s, a) => s + a.amount, 0n)),
    amount_unapplied: amount(row.amount_unapplied),
    amount_refunded: amount(row.amount_refunded),
    allocations: [...allocations]
      .sort((a, b) => a.created_at.getTime() - b.created_at.getTime() || (a.id < b.id ? -1 : 1))
      .map(allocationView),
    card:
      row.method === 'card'
        ? {
            brand: row.card_brand,
            last4: row.card_last4,
            exp_month: row.card_exp_month,
            exp_year: row.card_exp_year,
          }
        : null,
    gateway: row.gateway,
    disputed: row.disputed_at !== null,
    disputed_at: row.disputed_at ? row.disputed_at.toISOString() : null,
    dispute_reason: row.dispute_reason,
    created_at: row.created_at.toISOString(),
  };
}

async function allocationsOf(tx: Tx, paymentIds: string[]): Promise<AllocationRow[]> {
  if (paymentIds.length === 0) return [];
  return tx.selectFrom('payment_allocations').selectAll().where('payment_id', 'in', paymentIds).execute();
}

interface Planned {
  row: InvoiceRow;
  amount: bigint;
}

/** Checks an explicit allocation against the locked invoices; caps it when the excess may become credit. */
function planExplicit(
  input: PaymentInput,
  customerId: string,
  currency: string,
  total: bigint,
  rows: Map<string, InvoiceRow>,
): Planned[] {
  const allocations = input.allocations ?? [];
  const seen = new Set<string>();
  const plan: Planned[] = [];
  let sum = 0n;
  allocations.forEach((a, i) => {
    const param = `allocations.${i}`;
    if (seen.has(a.invoice))
      throw new DomainError(
        'allocation_invalid',
        'An invoice appears twice in allocations.',
        `${param}.invoice`,
      );
    seen.add(a.invoice);
    sum += BigInt(a.amount);
    const row = rows.get(a.invoice);
    if (!row || row.customer_id !== customerId) {
      // another customer's invoice is as good as absent: never reveal what it is
      throw new DomainError('not_found', "No such invoice of this payment's customer.", `${param}.invoice`);
    }
    if (row.currency !== currency) {
      throw new DomainError(
        'currency_mismatch',
        `The invoice is in ${row.currency}, the payment in ${currency}.`,
        `${param}.invoice`,
      );
    }
    if (row.status === 'draft' || row.status === 'void') {
      throw new DomainError(
        'invoice_not_open',
        `Cannot pay an invoice that is ${row.status}.`,
        `${param}.invoice`,
      );
    }
    let take = BigInt(a.amount);
    if (take > row.amount_remaining) {
      if (input.excess !== 'credit') {
        throw new DomainError(
          'amount_exceeds_remaining',
          `The invoice has ${row.amount_remaining} left to pay.`,
          `${param}.amount`,
          { amount_remaining: row.amount_remaining.toString() },
        );
      }
      take = row.amount_remaining;
    }
    if (take > 0n) plan.push({ row, amount: take });
  });
  if (sum > total) {
    throw new DomainError(
      'allocation_invalid',
      'Allocations add up to more than the payment.',
      'allocations',
    );
  }
  return plan;
}

/**
 * Records a payment received from a customer and allocates it: explicitly, or to the customer's
 * open invoices in the payment's currency oldest due first. Whatever is not allocated becomes
 * customer credit. Invoices are locked FOR UPDATE (in id order) before their remainders are read,
 * so concurrent payments can never over-apply one invoice.
 */
export async function recordPayment(deps: BillingDeps, ctx: Ctx, input: PaymentInput): Promise<PaymentView> {
  return inOrg(deps.db, ctx.actor.orgId, (tx) => recordPaymentIn(deps, tx, ctx, input));
}

/** Options of a payment recorded by the gateway intake (in the transaction that dedupes its event). */
export interface RecordPaymentOptions {
  /** The payment id, when the caller had to reference it first (gateway refs). */
  id?: string;
  gateway?: 'stripe';
}

/** recordPayment inside the caller's org transaction (the gateway intake writes its event log in it). */
export async function recordPaymentIn(
  deps: BillingDeps,
  tx: Tx,
  ctx: Ctx,
  input: PaymentInput,
  opts: RecordPaymentOptions = {},
): Promise<PaymentView> {
  const currency = assertCurrency(input.currency);
  const total = BigInt(input.amount);
  if (total <= 0n) throw new DomainError('amount_invalid', 'Amount must be positive.', 'amount');
  if (input.card && input.method !== 'card') {
    throw new DomainError('validation_failed', 'Card details go with method "card" only.', 'card');
  }
  const id = opts.id ?? newId('payment');
  {
    const customer = await tx
      .selectFrom('customers')
      .select(['org_id', 'id', 'owner_user_id', 'archived_at'])
      .where('id', '=', input.customer)
      .executeTakeFirst();
    if (!customer) throw new DomainError('not_found', 'No such customer.', 'customer');
    await authorize(tx, ctx, 'payments:write', customerResource(customer));
    const now = deps.clock.now();
    const receivedOn = input.received_on ? assertIsoDate(input.received_on, 'received_on') : isoDay(now);

    let plan: Planned[];
    if (input.allocations !== undefined) {
      const rows = await lockInvoices(
        tx,
        input.allocations.map((a) => a.invoice),
      );
      plan = planExplicit(input, customer.id, currency, total, rows);
    } else {
      const candidates = await tx
        .selectFrom('invoices')
        .select('id')
        .where('customer_id', '=', customer.id)
        .where('currency', '=', currency)
        .where('status', '=', 'open')
        .execute();
      const rows = await lockInvoices(
        tx,
        candidates.map((c) => c.id),
      );
      const open = [...rows.values()].filter((r) => r.status === 'open' && r.amount_remaining > 0n);
      const auto = allocateOldestFirst(
        open.map((r) => ({
          invoice: r.id,
          amount_remaining: r.amount_remaining,
          due_date: r.due_date,
          issue_date: r.issue_date,
        })),
        total,
      );
      plan = auto.allocations.map((a) => ({ row: rows.get(a.invoice) as InvoiceRow, amount: a.amount }));
    }

    const allocated = plan.reduce((s, p) => s + p.amount, 0n);
    const entry = postPaymentReceived(
      { payment: id, customer: customer.id, currency, amount: total },
      plan.map((p) => ({
        invoice: p.row.id,
        amount: p.amount,
        written_off: p.row.status === 'uncollectible',
      })),
    );
    for (const p of plan) {
      const next = applyInvoiceAction(invoiceState(p.row), { type: 'pay', amount: p.amount });
      await saveInvoiceState(tx, p.row, next, now);
    }
    const card = input.method === 'card' ? input.card : undefined;
    const row = await tx
      .insertInto('payments')
      .values({
        org_id: ctx.actor.orgId,
        id,
        customer_id: customer.id,
        amount: total,
        currency,
        method: input.method,
        reference_enc: input.reference
          ? await deps.cipher.encrypt(
              tx,
              { orgId: ctx.actor.orgId, subject: { type: 'customer', id: customer.id } },
              { table: 'payments', column: 'reference_enc', rowId: id },
              input.reference,
            )
          : null,
        received_on: receivedOn,
        amount_unapplied: total - allocated,
        card_token_enc: card?.gateway_token
          ? await deps.cipher.encrypt(
              tx,
              { orgId: ctx.actor.orgId, subject: { type: 'customer', id: customer.id } },
              { table: 'payments', column: 'card_token_enc', rowId: id },
              card.gateway_token,
            )
          : null,
        card_brand: card?.brand ?? null,
        card_last4: card?.last4 ?? null,
        card_exp_month: card?.exp_month ?? null,
        card_exp_year: card?.exp_year ?? null,
        gateway: opts.gateway ?? null,
        created_by: personOf(ctx.actor),
        created_at: now,
        updated_at: now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    const allocations = plan.length
      ? await tx
          .insertInto('payment_allocations')
          .values(
            plan.map((p) => ({
              org_id: ctx.actor.orgId,
              id: newId('payment_allocation'),
              customer_id: customer.id,
              payment_id: id,
              invoice_id: p.row.id,
              source: 'payment' as const,
              amount: p.amount,
              currency,
              written_off: p.row.status === 'uncollectible',
              created_by: personOf(ctx.actor),
              created_at: now,
            })),
          )
          .returningAll()
          .execute()
      : [];
    if (entry) await postEntry(tx, ctx.actor.orgId, entry, now);
    await emitEvent(tx, ctx.actor.orgId, 'payment.received', paymentObject(row, allocations), now);
    await recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: 'payment.recorded',
      target: { type: 'payment', id },
      outcome: 'success',
      meta: ctx.meta,
      details: {
        customer: customer.id,
        amount: total.toString(),
        currency,
        method: input.method,
        allocation: input.allocations === undefined ? 'automatic' : 'explicit',
        invoices: plan.map((p) => p.row.id),
        allocated: allocated.toString(),
        unapplied: (total - allocated).toString(),
        ...(opts.gateway ? { gateway: opts.gateway } : {}),
      },
    });
    return view(deps, tx, row, allocations);
  }
}

async function loadPayment(tx: Tx, ctx: Ctx, id: string, permission: 'payments:read' | 'payments:write') {
  const row = await tx.selectFrom('payments').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw new DomainError('not_found', 'No such payment.', 'id');
  const customer = await tx
    .selectFrom('customers')
    .select(['org_id', 'owner_user_id'])
    .where('id', '=', row.customer_id)
    .executeTakeFirstOrThrow();
  await authorize(tx, ctx, permission, customerResource(customer));
  return row;
}

/** One payment with its allocations. */
export async function getPayment(deps: BillingDeps, ctx: Ctx, id: string): Promise<PaymentView> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    const row = await loadPayment(tx, ctx, id, 'payments:read');
    await recordPiiRead(tx, ctx, 'payment', row.reference_enc === null ? [] : [row.id], 'read');
    return view(deps, tx, row, await allocationsOf(tx, [row.id]));
  });
}

/** Payments, newest first, optionally of one customer (keyset pagination on created_at, id). */
export async function listPayments(
  deps: BillingDeps,
  ctx: Ctx,
  f: PageParams & { customer?: string },
): Promise<ListPage<PaymentView>> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'payments:read');
    let q = tx.selectFrom('payments').selectAll();
    if (f.customer) q = q.where('customer_id', '=', f.customer);
    const { rows: page, has_more } = await fetchPage(q, f);
    const allocations = await allocationsOf(
      tx,
      page.map((r) => r.id),
    );
    const data: PaymentView[] = [];
    for (const r of page)
      data.push(
        await view(
          deps,
          tx,
          r,
          allocations.filter((a) => a.payment_id === r.id),
        ),
      );
    const withReference = page.filter((r) => r.reference_enc !== null).map((r) => r.id);
    await recordPiiRead(tx, ctx, 'payment', withReference, 'listed');
    return { object: 'list', data, has_more };
  });
}

/**
 * Takes a payment's allocation(s) back off an invoice: the invoice owes that much again (a paid
 * invoice reopens) and the money is the payment's unapplied credit once more, to reallocate or
 * refund. A bad-debt recovery cannot be unapplied (its invoice was written off).
 */
export async function unapplyPayment(
  deps: BillingDeps,
  ctx: Ctx,
  paymentId: string,
  input: { allocation?: string; invoice?: string },
): Promise<PaymentView> {
  if ((input.allocation === undefined) === (input.invoice === undefined)) {
    throw new DomainError('validation_failed', 'Give allocation or invoice, exactly one.', 'allocation');
  }
  return inOrg(deps.db, ctx.actor.orgId, (tx) => unapplyPaymentIn(deps, tx, ctx, paymentId, input));
}

/** unapplyPayment inside the caller's org transaction (a gateway refund frees allocated money with it). */
export async function unapplyPaymentIn(
  deps: BillingDeps,
  tx: Tx,
  ctx: Ctx,
  paymentId: string,
  input: { allocation?: string; invoice?: string },
): Promise<PaymentView> {
  {
    const payment = await loadPayment(tx, ctx, paymentId, 'payments:write');
    let q = tx
      .selectFrom('payment_allocations')
      .selectAll()
      .where('payment_id', '=', payment.id)
      .where('unapplied_at', 'is', null);
    q = input.allocation
      ? q.where('id', '=', input.allocation)
      : q.where('invoice_id', '=', input.invoice ?? '');
    const found = await q.execute();
    const param = input.allocation ? 'allocation' : 'invoice';
    if (found.length === 0) {
      const any = input.allocation
        ? await tx
            .selectFrom('payment_allocations')
            .select('id')
            .where('payment_id', '=', payment.id)
            .where('id', '=', input.allocation)
            .executeTakeFirst()
        : undefined;
      if (any)
        throw new DomainError('allocation_already_unapplied', 'This allocation is already unapplied.', param);
      throw new DomainError('not_found', 'No active allocation of this payment matches.', param);
    }
    const invoiceId = found[0]?.invoice_id as string;
    // lock order of every money write: invoices (by id), then payments
    const invoice = (await lockInvoices(tx, [invoiceId])).get(invoiceId) as InvoiceRow;
    const locked = await tx
      .selectFrom('payments')
      .selectAll()
      .where('id', '=', payment.id)
      .forNoKeyUpdate()
      .executeTakeFirstOrThrow();
    // re-read under the invoice lock: allocations of an invoice only change while it is held
    const active = await tx
      .selectFrom('payment_allocations')
      .selectAll()
      .where(
        'id',
        'in',
        found.map((a) => a.id),
      )
      .where('unapplied_at', 'is', null)
      .execute();
    if (active.length === 0) {
      throw new DomainError('allocation_already_unapplied', 'This allocation is already unapplied.', param);
    }
    if (active.some((a) => a.written_off)) {
      throw new DomainError('conflict', 'A recovery on a written-off invoice cannot be unapplied.', param);
    }
    const now = deps.clock.now();
    let state = invoiceState(invoice);
    let back = 0n;
    for (const a of active) {
      state = unapplyFromInvoice(state, 'payment', a.amount);
      back += a.amount;
      await postEntry(
        tx,
        ctx.actor.orgId,
        postAllocationReversed(
          { invoice: invoice.id, customer: invoice.customer_id, allocation: a.id },
          a.currency,
          a.amount,
        ),
        now,
      );
    }
    await saveInvoiceState(tx, invoice, state, now);
    await tx
      .updateTable('payment_allocations')
      .set({ unapplied_at: now, unapplied_by: personOf(ctx.actor) })
      .where(
        'id',
        'in',
        active.map((a) => a.id),
      )
      .execute();
    const updated = await tx
      .updateTable('payments')
      .set({ amount_unapplied: locked.amount_unapplied + back, updated_at: now })
      .where('id', '=', payment.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: 'payment.unapplied',
      target: { type: 'payment', id: payment.id },
      outcome: 'success',
      meta: ctx.meta,
      details: { invoice: invoice.id, allocations: active.map((a) => a.id), amount: back.toString() },
    });
    return view(deps, tx, updated, await allocationsOf(tx, [payment.id]));
  }
}

export interface ApplyCreditInput {
  invoice: string;
  amount: number;
  /** Take the money from this payment's unapplied amount (reallocation); else from the customer's credit. */
  payment?: string;
}

export interface CreditApplicationView {
  object: 'credit_application';
  customer: string;
  invoice: string;
  amount: number;
  currency: string;
  allocations: AllocationView[];
  invoice_status: string;
  invoice_amount_remaining: number;
  credit_balance: number;
}

/**
 * Applies existing customer credit to one of the customer's open invoices. Without `payment`,
 * credit from credit notes and voids goes first, then payments' unapplied money oldest first.
 * The customer row is locked first, so two uses of the same credit never both succeed.
 */
export async function applyCredit(
  deps: BillingDeps,
  ctx: Ctx,
  customerId: string,
  input: ApplyCreditInput,
): Promise<CreditApplicationView> {
  return inOrg(deps.db, ctx.actor.orgId, (tx) => applyCreditIn(deps, tx, ctx, customerId, input));
}

/** applyCredit inside the caller's org transaction (a gateway refund puts freed money back with it). */
export async function applyCreditIn(
  deps: BillingDeps,
  tx: Tx,
  ctx: Ctx,
  customerId: string,
  input: ApplyCreditInput,
): Promise<CreditApplicationView> {
  const want = BigInt(input.amount);
  if (want <= 0n) throw new DomainError('amount_invalid', 'Amount must be positive.', 'amount');
  {
    const customer = await lockCustomer(tx, ctx, customerId, 'payments:write');
    const invoice = (await lockInvoices(tx, [input.invoice])).get(input.invoice);
    if (!invoice || invoice.customer_id !== customer.id)
      throw new DomainError('not_found', 'No such invoice of this customer.', 'invoice');
    if (invoice.status === 'paid') {
      throw new DomainError('amount_exceeds_remaining', 'The invoice is paid in full.', 'amount', {
        amount_remaining: '0',
      });
    }
    if (invoice.status !== 'open')
      throw new DomainError(
        'invoice_not_open',
        `Cannot apply credit to an invoice that is ${invoice.status}.`,
        'invoice',
      );
    if (want > invoice.amount_remaining) {
      throw new DomainError(
        'amount_exceeds_remaining',
        `The invoice has ${invoice.amount_remaining} left to pay.`,
        'amount',
        {
          amount_remaining: invoice.amount_remaining.toString(),
        },
      );
    }
    const currency = invoice.currency;
    let draws: CreditDraw[];
    let payments: PaymentRow[];
    if (input.payment) {
      const p = await tx
        .selectFrom('payments')
        .selectAll()
        .where('id', '=', input.payment)
        .forNoKeyUpdate()
        .executeTakeFirst();
      if (!p || p.customer_id !== customer.id)
        throw new DomainError('not_found', 'No such payment of this customer.', 'payment');
      if (p.currency !== currency)
        throw new DomainError(
          'currency_mismatch',
          `The payment is in ${p.currency}, the invoice in ${currency}.`,
          'payment',
        );
      if (want > p.amount_unapplied) {
        throw new DomainError(
          'credit_insufficient',
          `The payment has ${p.amount_unapplied} unapplied.`,
          'amount',
          {
            available: p.amount_unapplied.toString(),
          },
        );
      }
      payments = [p];
      draws = [{ source: 'payment', payment: p.id, amount: want }];
    } else {
      const position = await creditPosition(tx, customer.id, currency);
      payments = await lockUnappliedPayments(tx, customer.id, currency);
      draws = drawCredit(
        want,
        position.other,
        payments.map((p) => ({ payment: p.id, amount_unapplied: p.amount_unapplied })),
      );
    }
    const now = deps.clock.now();
    let state = invoiceState(invoice);
    const rows: AllocationRow[] = [];
    for (const d of draws) {
      const allocationId = newId('payment_allocation');
      state = applyInvoiceAction(
        state,
        d.source === 'payment'
          ? { type: 'pay', amount: d.amount }
          : { type: 'apply_credit', amount: d.amount },
      );
      const entry = postCreditApplied(
        { invoice: invoice.id, customer: customer.id, reference: allocationId },
        currency,
        d.amount,
      );
      if (entry) await postEntry(tx, ctx.actor.orgId, entry, now);
      if (d.source === 'payment') {
        const p = payments.find((x) => x.id === d.payment) as PaymentRow;
        await tx
          .updateTable('payments')
          .set({ amount_unapplied: p.amount_unapplied - d.amount, updated_at: now })
          .where('id', '=', p.id)
          .execute();
      }
      rows.push(
        await tx
          .insertInto('payment_allocations')
          .values({
            org_id: ctx.actor.orgId,
            id: allocationId,
            customer_id: customer.id,
            payment_id: d.source === 'payment' ? d.payment : null,
            invoice_id: invoice.id,
            source: d.source,
            amount: d.amount,
            currency,
            created_by: personOf(ctx.actor),
            created_at: now,
          })
          .returningAll()
          .executeTakeFirstOrThrow(),
      );
    }
    await saveInvoiceState(tx, invoice, state, now);
    await recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: 'customer.credit_applied',
      target: { type: 'customer', id: customer.id },
      outcome: 'success',
      meta: ctx.meta,
      details: { invoice: invoice.id, amount: want.toString(), currency, allocations: rows.map((r) => r.id) },
    });
    return {
      object: 'credit_application',
      customer: customer.id,
      invoice: invoice.id,
      amount: amount(want),
      currency,
      allocations: rows.map(allocationView),
      invoice_status: state.status,
      invoice_amount_remaining: amount(state.amount_remaining),
      credit_balance: amount(await creditBalance(tx, customer.id, currency)),
    };
  }
}
