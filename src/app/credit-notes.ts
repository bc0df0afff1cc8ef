import type { Selectable } from 'kysely';
import { inOrg, type Tx } from '../adapters/db/index.js';
import type { CreditNotesTable } from '../adapters/db/schema-billing.js';
import {
  type CreditNoteTotals,
  type CreditRequest,
  computeCreditNote,
  splitCreditApplication,
} from '../domain/credit-note.js';
import { DomainError } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import { applyInvoiceAction } from '../domain/invoice-transitions.js';
import { postCreditNote } from '../domain/ledger.js';
import { parseNumberPattern, renderNumber, sequenceScope } from '../domain/numbering.js';
import { recordAudit } from './audit.js';
import { assignedOnly, authorize } from './authz.js';
import type { Ctx } from './context.js';
import { type BillingDeps, customerResource } from './customers.js';
import { amount, isoDay, linesOf, orgPattern, takeSequence, totalsOf } from './invoices.js';
import { postEntry } from './ledger.js';
import { fetchPage, type ListPage, ofAssignedCustomers, type PageParams } from './pagination.js';
import { creditNoteObject, emitEvent, invoiceObject } from './webhooks.js';

export const CREDIT_REASONS = [
  'duplicate',
  'fraudulent',
  'order_change',
  'product_unsatisfactory',
  'pricing_error',
  'other',
] as const;
export type CreditReason = (typeof CREDIT_REASONS)[number];

export interface CreditNoteInput {
  invoice: string;
  /** Credit this much (minor units, tax included), spread over the invoice's components. */
  amount?: number;
  /** Credit these lines (0-based positions), optionally only part of their quantity. */
  lines?: { line: number; quantity?: string }[];
  reason: CreditReason;
  memo?: string | null;
}

type Row = Selectable<CreditNotesTable>;

export interface CreditNoteView {
  id: string;
  object: 'credit_note';
  number: string;
  invoice: string;
  customer: string;
  currency: string;
  reason: string;
  memo: string | null;
  lines: { line: number; quantity: string; amount: number }[];
  tax_breakdown: { category: string; percentage: string; taxable_amount: number; tax_amount: number }[];
  subtotal: number;
  tax: number;
  total: number;
  applied_to_invoice: number;
  customer_credit: number;
  issue_date: string;
  created_at: string;
}

/** What earlier credit notes credited, per component, in the domain's terms. */
function priorTotals(rows: Row[], currency: string): CreditNoteTotals[] {
  return rows.map((r) => {
    const a = r.allocation as {
      partitions: string[];
      taxes: Record<string, string>;
      lines: { line: number; quantity: string; taxable_amount: string; taxes: Record<string, string> }[];
    };
    return {
      currency,
      kind: 'amount',
      partitions: a.partitions.map(BigInt),
      taxes: Object.fromEntries(Object.entries(a.taxes).map(([k, v]) => [k, BigInt(v)])),
      lines: a.lines.map((l) => ({
        line: l.line,
        quantity: l.quantity,
        taxable_amount: BigInt(l.taxable_amount),
        taxes: Object.fromEntries(Object.entries(l.taxes).map(([k, v]) => [k, BigInt(v)])),
      })),
      tax_breakdown: [],
      tax_exclusive_amount: r.tax_exclusive_amount,
      tax_amount: r.tax_amount,
      total: r.total,
    };
  });
}

const str = (v: bigint) => v.toString();

function view(r: Row): CreditNoteView {
  const breakdown = r.tax_breakdown as {
    category: string;
    percentage: string;
    taxable_amount: string;
    tax_amount: string;
  }[];
  const lines = r.lines as {
    line: number;
    quantity: string;
    taxable_amount: string;
    taxes: Record<string, string>;
  }[];
  return {
    id: r.id,
    object: 'credit_note',
    number: r.number,
    invoice: r.invoice_id,
    customer: r.customer_id,
    currency: r.currency,
    reason: r.reason,
    memo: r.memo,
    lines: lines.map((l) => ({
      line: l.line,
      quantity: l.quantity,
      amount: amount(BigInt(l.taxable_amount) + Object.values(l.taxes).reduce((s, v) => s + BigInt(v), 0n)),
    })),
    tax_breakdown: breakdown.map((g) => ({
      category: g.category,
      percentage: g.percentage,
      taxable_amount: amount(BigInt(g.taxable_amount)),
      tax_amount: amount(BigInt(g.tax_amount)),
    })),
    subtotal: amount(r.tax_exclusive_amount),
    tax: amount(r.tax_amount),
    total: amount(r.total),
    applied_to_invoice: amount(r.applied_to_invoice),
    customer_credit: amount(r.customer_credit),
    issue_date: r.issue_date,
    created_at: r.created_at.toISOString(),
  };
}

async function loadCreditable(tx: Tx, ctx: Ctx, invoiceId: string) {
  const invoice = await tx
    .selectFrom('invoices')
    .selectAll()
    .where('id', '=', invoiceId)
    .forUpdate()
    .executeTakeFirst();
  if (!invoice) throw new DomainError('not_found', 'No such invoice.', 'invoice');
  const customer = await tx
    .selectFrom('customers')
    .select(['org_id', 'owner_user_id'])
    .where('id', '=', invoice.customer_id)
    .executeTakeFirstOrThrow();
  await authorize(tx, ctx, 'credit_notes:write', customerResource(customer));
  return invoice;
}

/**
 * Issues a credit note against a finalised invoice: full, by amount or by lines; never more than
 * is still creditable. It reduces the invoice's remainder first; the rest becomes customer credit.
 */
export async function createCreditNote(
  deps: BillingDeps,
  ctx: Ctx,
  input: CreditNoteInput,
): Promise<CreditNoteView> {
  if (input.amount !== undefined && input.lines !== undefined) {
    throw new DomainError('validation_failed', 'Give amount or lines, not both.', 'amount');
  }
  const id = newId('credit_note');
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    const invoice = await loadCreditable(tx, ctx, input.invoice);
    if (invoice.status === 'draft')
      throw new DomainError('invoice_not_open', 'A draft cannot be credited; edit it instead.', 'invoice');
    const lines = linesOf(invoice);
    const prior = await tx
      .selectFrom('credit_notes')
      .selectAll()
      .where('invoice_id', '=', invoice.id)
      .execute();
    const request: CreditRequest =
      input.amount !== undefined
        ? { kind: 'amount', amount: BigInt(input.amount) }
        : input.lines
          ? { kind: 'lines', lines: input.lines }
          : { kind: 'full' };
    const credit = computeCreditNote(
      totalsOf(invoice, lines),
      invoice.status,
      priorTotals(prior, invoice.currency),
      request,
      {
        rounding: invoice.rounding,
      },
    );
    const application = splitCreditApplication(credit.total, invoice.status, invoice.amount_remaining);
    const entry = postCreditNote(
      { invoice: invoice.id, customer: invoice.customer_id, credit_note: id },
      credit,
      application,
    );
    const now = deps.clock.now();
    if (application.applied_to_invoice > 0n) {
      const next = applyInvoiceAction(
        {
          status: invoice.status,
          line_count: lines.length,
          total: invoice.total,
          amount_due: invoice.amount_due,
          amount_paid: invoice.amount_paid,
          amount_credited: invoice.amount_credited,
          amount_remaining: invoice.amount_remaining,
        },
        { type: 'apply_credit', amount: application.applied_to_invoice },
      );
      await tx
        .updateTable('invoices')
        .set({
          status: next.status,
          amount_credited: next.amount_credited,
          amount_remaining: next.amount_remaining,
          ...(next.status === 'paid' ? { paid_at: now } : {}),
          updated_at: now,
        })
        .where('id', '=', invoice.id)
        .execute();
      if (next.status === 'paid')
        await emitEvent(tx, ctx.actor.orgId, 'invoice.paid', invoiceObject({ ...invoice, ...next }), now);
    }
    if (entry) await postEntry(tx, ctx.actor.orgId, entry, now);
    await recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: 'credit_note.created',
      target: { type: 'credit_note', id },
      outcome: 'success',
      meta: ctx.meta,
      details: {
        invoice: invoice.id,
        reason: input.reason,
        total: credit.total.toString(),
        kind: credit.kind,
      },
    });
    const issueDate = isoDay(now);
    const pattern = parseNumberPattern(await orgPattern(tx, 'credit_note'));
    const number = renderNumber(
      pattern,
      issueDate,
      await takeSequence(tx, ctx.actor.orgId, 'credit_note', sequenceScope(pattern, issueDate)),
    );
    const row = await tx
      .insertInto('credit_notes')
      .values({
        org_id: ctx.actor.orgId,
        id,
        invoice_id: invoice.id,
        customer_id: invoice.customer_id,
        number,
        currency: invoice.currency,
        reason: input.reason,
        memo: input.memo ?? null,
        lines: JSON.stringify(
          credit.lines.map((l) => ({
            line: l.line,
            quantity: l.quantity,
            taxable_amount: str(l.taxable_amount),
            taxes: Object.fromEntries(Object.entries(l.taxes).map(([k, v]) => [k, str(v)])),
          })),
        ),
        tax_breakdown: JSON.stringify(
          credit.tax_breakdown.map((g) => ({
            key: g.key,
            category: g.category,
            percentage: g.percentage,
            taxable_amount: str(g.taxable_amount),
            tax_amount: str(g.tax_amount),
          })),
        ),
        allocation: JSON.stringify({
          partitions: credit.partitions.map(str),
          taxes: Object.fromEntries(Object.entries(credit.taxes).map(([k, v]) => [k, str(v)])),
          lines: credit.lines.map((l) => ({
            line: l.line,
            quantity: l.quantity,
            taxable_amount: str(l.taxable_amount),
            taxes: Object.fromEntries(Object.entries(l.taxes).map(([k, v]) => [k, str(v)])),
          })),
        }),
        tax_exclusive_amount: credit.tax_exclusive_amount,
        tax_amount: credit.tax_amount,
        total: credit.total,
        applied_to_invoice: application.applied_to_invoice,
        customer_credit: application.customer_credit,
        issue_date: issueDate,
        created_at: now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await emitEvent(tx, ctx.actor.orgId, 'credit_note.created', creditNoteObject(row), now);
    return view(row);
  });
}

/** One credit note (visible when its invoice's customer is). */
export async function getCreditNote(deps: BillingDeps, ctx: Ctx, id: string): Promise<CreditNoteView> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    const row = await tx.selectFrom('credit_notes').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new DomainError('not_found', 'No such credit note.', 'id');
    const customer = await tx
      .selectFrom('customers')
      .select(['org_id', 'owner_user_id'])
      .where('id', '=', row.customer_id)
      .executeTakeFirstOrThrow();
    await authorize(tx, ctx, 'invoices:read', customerResource(customer));
    return view(row);
  });
}

/** Credit notes, newest first, optionally of one invoice. */
export async function listCreditNotes(
  deps: BillingDeps,
  ctx: Ctx,
  f: PageParams & { invoice?: string },
): Promise<ListPage<CreditNoteView>> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'invoices:read');
    let q = tx.selectFrom('credit_notes').selectAll();
    if (assignedOnly(ctx, 'invoices:read')) q = ofAssignedCustomers(tx, q, ctx.actor.userId);
    if (f.invoice) q = q.where('invoice_id', '=', f.invoice);
    const page = await fetchPage(q, f);
    return { object: 'list', data: page.rows.map(view), has_more: page.has_more };
  });
}
