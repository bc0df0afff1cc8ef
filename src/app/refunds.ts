import { type Selectable, sql } from 'kysely';
import { inOrg, type Tx } from '../adapters/db/index.js';
import type { PaymentsTable, RefundsTable } from '../adapters/db/schema-billing.js';
import { DomainError } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import { postRefund } from '../domain/ledger.js';
import { assertCurrency } from '../domain/money.js';
import { approvalThreshold, drawCredit, refundNeedsApproval } from '../domain/payments.js';
import { recordAudit, recordPiiRead } from './audit.js';
import { authorize } from './authz.js';
import type { Ctx } from './context.js';
import { type BillingDeps, customerResource } from './customers.js';
import { amount } from './invoices.js';
import { postEntry } from './ledger.js';
import { fetchPage, type ListPage, type PageParams } from './pagination.js';
import { creditPosition, lockCustomer, lockUnappliedPayments, personOf } from './payments.js';
import { decryptOrNull } from './shredded.js';
import { emitEvent, refundObject } from './webhooks.js';

type RefundRow = Selectable<RefundsTable>;
type PaymentRow = Selectable<PaymentsTable>;

export interface RefundInput {
  /** Refund (part of) this payment's unapplied money… */
  payment?: string;
  /** …or the customer's credit balance. */
  customer?: string;
  /** For a refund of customer credit: the credit's currency (default the customer's, else the org base). */
  currency?: string;
  amount: number;
  reason: string;
}

export interface RefundView {
  id: string;
  object: 'refund';
  customer: string;
  payment: string | null;
  amount: number;
  currency: string;
  reason: string;
  status: RefundRow['status'];
  requested_by: string;
  approved_by: string | null;
  rejected_by: string | null;
  posted_at: string | null;
  /** The gateway that executed this refund (webhook intake), else null. */
  gateway: 'stripe' | null;
  created_at: string;
}

async function view(deps: BillingDeps, tx: Tx, r: RefundRow): Promise<RefundView> {
  return {
    id: r.id,
    object: 'refund',
    customer: r.customer_id,
    payment: r.payment_id,
    amount: amount(r.amount),
    currency: r.currency,
    // '' once the customer is erased (their data key destroyed)
    reason:
      (await decryptOrNull(
        deps.cipher,
        tx,
        { orgId: r.org_id, subject: { type: 'customer', id: r.customer_id } },
        'refunds',
        'reason_enc',
        r.id,
        r.reason_enc,
      )) ?? '',
    status: r.status,
    requested_by: r.requested_by,
    approved_by: r.approved_by,
    rejected_by: r.rejected_by,
    posted_at: r.posted_at ? r.posted_at.toISOString() : null,
    gateway: r.gateway,
    created_at: r.created_at.toISOString(),
  };
}

/** The org's four-eyes threshold (`refunds.approval_threshold`, minor units). */
async function threshold(tx: Tx): Promise<bigint> {
  const row = await tx
    .selectFrom('org_settings')
    .select('value')
    .where('key', '=', 'refunds.approval_threshold')
    .executeTakeFirst();
  return approvalThreshold(row?.value);
}

/** Amounts already promised to refunds still waiting for approval. */
async function pendingTotal(tx: Tx, where: { payment: string } | { customer: string; currency: string }) {
  let q = tx
    .selectFrom('refunds')
    .select(sql<string>`coalesce(sum(amount), 0)::text`.as('total'))
    .where('status', '=', 'pending_approval');
  q =
    'payment' in where
      ? q.where('payment_id', '=', where.payment)
      : q.where('customer_id', '=', where.customer).where('currency', '=', where.currency);
  return BigInt((await q.executeTakeFirstOrThrow()).total);
}

/**
 * Pays a refund out: the money leaves customer credit (debit) and cash (credit). From a payment it
 * comes out of that payment's unapplied money; from customer credit, credit no payment holds goes
 * first, then payments' unapplied money oldest first. Caller holds the customer lock.
 */
async function post(tx: Tx, ctx: Ctx, r: RefundRow, now: Date): Promise<void> {
  const position = await creditPosition(tx, r.customer_id, r.currency);
  if (r.amount > position.balance) {
    throw new DomainError('credit_insufficient', 'The customer does not have that much credit.', 'amount', {
      available: position.balance.toString(),
    });
  }
  let payments: PaymentRow[];
  if (r.payment_id) {
    const p = await tx
      .selectFrom('payments')
      .selectAll()
      .where('id', '=', r.payment_id)
      .forNoKeyUpdate()
      .executeTakeFirstOrThrow();
    if (r.amount > p.amount_unapplied) {
      throw new DomainError(
        'amount_exceeds_refundable',
        `The payment has ${p.amount_unapplied} unapplied; unapply allocations to refund more.`,
        'amount',
        { refundable: p.amount_unapplied.toString() },
      );
    }
    payments = [p];
    await tx
      .updateTable('payments')
      .set({
        amount_unapplied: p.amount_unapplied - r.amount,
        amount_refunded: p.amount_refunded + r.amount,
        updated_at: now,
      })
      .where('id', '=', p.id)
      .execute();
  } else {
    payments = await lockUnappliedPayments(tx, r.customer_id, r.currency);
    const draws = drawCredit(
      r.amount,
      position.other,
      payments.map((p) => ({ payment: p.id, amount_unapplied: p.amount_unapplied })),
    );
    for (const d of draws) {
      if (d.source !== 'payment') continue;
      const p = payments.find((x) => x.id === d.payment) as PaymentRow;
      await tx
        .updateTable('payments')
        .set({
          amount_unapplied: p.amount_unapplied - d.amount,
          amount_refunded: p.amount_refunded + d.amount,
          updated_at: now,
        })
        .where('id', '=', p.id)
        .execute();
    }
  }
  const entry = postRefund(
    { refund: r.id, customer: r.customer_id, currency: r.currency, amount: r.amount },
    'customer_credit',
  );
  if (entry) await postEntry(tx, ctx.actor.orgId, entry, now);
  await emitEvent(tx, ctx.actor.orgId, 'refund.posted', refundObject({ ...r, status: 'posted' }), now);
}

/**
 * Requests a refund of a payment's unapplied money or of customer credit. At or below the org's
 * `refunds.approval_threshold` it posts at once; above it, it waits in `pending_approval` for a
 * second person (four eyes). Amounts promised to pending refunds are not available to new ones.
 */
export async function createRefund(deps: BillingDeps, ctx: Ctx, input: RefundInput): Promise<RefundView> {
  return inOrg(deps.db, ctx.actor.orgId, (tx) => createRefundIn(deps, tx, ctx, input));
}

/**
 * A refund already executed at a payment gateway: the money has left, so it posts at once (no
 * four-eyes wait) and keeps the gateway's id.
 */
export interface GatewayRefund {
  provider: 'stripe';
  ref: string | null;
}

/** createRefund inside the caller's org transaction (the gateway intake dedupes its event in it). */
export async function createRefundIn(
  deps: BillingDeps,
  tx: Tx,
  ctx: Ctx,
  input: RefundInput,
  gateway?: GatewayRefund,
): Promise<RefundView> {
  if ((input.payment === undefined) === (input.customer === undefined)) {
    throw new DomainError('validation_failed', 'Give payment or customer, exactly one.', 'payment');
  }
  if (input.payment && input.currency) {
    throw new DomainError(
      'validation_failed',
      'A refund of a payment is in the payment currency.',
      'currency',
    );
  }
  const want = BigInt(input.amount);
  if (want <= 0n) throw new DomainError('amount_invalid', 'Amount must be positive.', 'amount');
  const id = newId('refund');
  {
    let customerId = input.customer ?? '';
    let payment: PaymentRow | undefined;
    if (input.payment) {
      payment = await tx
        .selectFrom('payments')
        .selectAll()
        .where('id', '=', input.payment)
        .executeTakeFirst();
      if (!payment) throw new DomainError('not_found', 'No such payment.', 'payment');
      customerId = payment.customer_id;
    }
    const customer = await lockCustomer(tx, ctx, customerId, 'refunds:write');
    let currency: string;
    if (payment) {
      currency = payment.currency;
      const fresh = await tx
        .selectFrom('payments')
        .select('amount_unapplied')
        .where('id', '=', payment.id)
        .executeTakeFirstOrThrow();
      const available = fresh.amount_unapplied - (await pendingTotal(tx, { payment: payment.id }));
      if (want > available) {
        throw new DomainError(
          'amount_exceeds_refundable',
          `The payment has ${available > 0n ? available : 0n} unapplied and not already being refunded; unapply allocations to refund more.`,
          'amount',
          { refundable: (available > 0n ? available : 0n).toString() },
        );
      }
    } else {
      currency = input.currency
        ? assertCurrency(input.currency)
        : (customer.currency ??
          (await tx.selectFrom('orgs').select('base_currency').executeTakeFirstOrThrow()).base_currency);
      const position = await creditPosition(tx, customer.id, currency);
      const available = position.balance - (await pendingTotal(tx, { customer: customer.id, currency }));
      if (want > available) {
        throw new DomainError(
          'credit_insufficient',
          'The customer does not have that much credit.',
          'amount',
          {
            available: (available > 0n ? available : 0n).toString(),
          },
        );
      }
    }
    const now = deps.clock.now();
    const needsApproval = gateway ? false : refundNeedsApproval(want, await threshold(tx));
    const row = await tx
      .insertInto('refunds')
      .values({
        org_id: ctx.actor.orgId,
        id,
        customer_id: customer.id,
        payment_id: payment?.id ?? null,
        amount: want,
        currency,
        reason_enc: await deps.cipher.encrypt(
          tx,
          { orgId: ctx.actor.orgId, subject: { type: 'customer', id: customer.id } },
          { table: 'refunds', column: 'reason_enc', rowId: id },
          input.reason,
        ),
        status: needsApproval ? 'pending_approval' : 'posted',
        requested_by: personOf(ctx.actor),
        posted_at: needsApproval ? null : now,
        gateway: gateway?.provider ?? null,
        gateway_ref: gateway?.ref ?? null,
        created_at: now,
        updated_at: now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await emitEvent(tx, ctx.actor.orgId, 'refund.created', refundObject(row), now);
    if (!needsApproval) await post(tx, ctx, row, now);
    await recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: needsApproval ? 'refund.requested' : 'refund.posted',
      target: { type: 'refund', id },
      outcome: 'success',
      meta: ctx.meta,
      details: {
        customer: customer.id,
        ...(payment ? { payment: payment.id } : {}),
        amount: want.toString(),
        currency,
        status: row.status,
        ...(gateway ? { gateway: gateway.provider } : {}),
      },
    });
    return view(deps, tx, row);
  }
}

async function loadPending(tx: Tx, ctx: Ctx, id: string) {
  const found = await tx
    .selectFrom('refunds')
    .select(['customer_id'])
    .where('id', '=', id)
    .executeTakeFirst();
  if (!found) throw new DomainError('not_found', 'No such refund.', 'id');
  // lock order: customer, then the refund (and then the payments it draws on)
  await lockCustomer(tx, ctx, found.customer_id, 'refunds:approve');
  const row = await tx
    .selectFrom('refunds')
    .selectAll()
    .where('id', '=', id)
    .forNoKeyUpdate()
    .executeTakeFirstOrThrow();
  if (row.status !== 'pending_approval') {
    throw new DomainError('refund_not_pending', `The refund is ${row.status}, not pending approval.`, 'id', {
      status: row.status,
    });
  }
  return row;
}

/** The second pair of eyes: someone other than the requester approves, and the refund posts. */
export async function approveRefund(deps: BillingDeps, ctx: Ctx, id: string): Promise<RefundView> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    const row = await loadPending(tx, ctx, id);
    const approver = personOf(ctx.actor);
    if (approver === row.requested_by) {
      throw new DomainError(
        'refund_self_approval',
        'Four eyes: a refund must be approved by someone other than its requester.',
        'id',
      );
    }
    const now = deps.clock.now();
    await post(tx, ctx, row, now);
    const updated = await tx
      .updateTable('refunds')
      .set({ status: 'posted', approved_by: approver, posted_at: now, decided_at: now, updated_at: now })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: 'refund.approved',
      target: { type: 'refund', id },
      outcome: 'success',
      meta: ctx.meta,
      details: { amount: row.amount.toString(), currency: row.currency, requested_by: row.requested_by },
    });
    await emitEvent(tx, ctx.actor.orgId, 'refund.approved', refundObject(updated), now);
    return view(deps, tx, updated);
  });
}

/** Turns a pending refund down; nothing posts. */
export async function rejectRefund(deps: BillingDeps, ctx: Ctx, id: string): Promise<RefundView> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    const row = await loadPending(tx, ctx, id);
    const now = deps.clock.now();
    const updated = await tx
      .updateTable('refunds')
      .set({ status: 'rejected', rejected_by: personOf(ctx.actor), decided_at: now, updated_at: now })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: 'refund.rejected',
      target: { type: 'refund', id },
      outcome: 'success',
      meta: ctx.meta,
      details: { amount: row.amount.toString(), currency: row.currency },
    });
    return view(deps, tx, updated);
  });
}

/** One refund. */
export async function getRefund(deps: BillingDeps, ctx: Ctx, id: string): Promise<RefundView> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    const row = await tx.selectFrom('refunds').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new DomainError('not_found', 'No such refund.', 'id');
    const customer = await tx
      .selectFrom('customers')
      .select(['org_id', 'owner_user_id'])
      .where('id', '=', row.customer_id)
      .executeTakeFirstOrThrow();
    await authorize(tx, ctx, 'payments:read', customerResource(customer));
    await recordPiiRead(tx, ctx, 'refund', [row.id], 'read');
    return view(deps, tx, row);
  });
}

/** Refunds, newest first, optionally by status. */
export async function listRefunds(
  deps: BillingDeps,
  ctx: Ctx,
  f: PageParams & { status?: RefundRow['status'] },
): Promise<ListPage<RefundView>> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'payments:read');
    let q = tx.selectFrom('refunds').selectAll();
    if (f.status) q = q.where('status', '=', f.status);
    const { rows, has_more } = await fetchPage(q, f);
    const data: RefundView[] = [];
    for (const r of rows) data.push(await view(deps, tx, r));
    await recordPiiRead(
      tx,
      ctx,
      'refund',
      rows.map((r) => r.id),
      'listed',
    );
    return { object: 'list', data, has_more };
  });
}
