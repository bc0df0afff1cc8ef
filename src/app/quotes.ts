import { type Selectable, sql } from 'kysely';
import { inOrg, type Tx } from '../adapters/db/index.js';
import type { QuotesTable } from '../adapters/db/schema-billing.js';
import { assertIsoDate } from '../domain/dates.js';
import { DomainError } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import { computeInvoice } from '../domain/invoice.js';
import { parseNumberPattern, renderNumber, sequenceScope } from '../domain/numbering.js';
import { applyQuoteAction, type QuoteAction, type QuoteStatus } from '../domain/quote.js';
import { recordAudit } from './audit.js';
import { assignedOnly, authorize } from './authz.js';
import type { Ctx } from './context.js';
import { type BillingDeps, customerResource } from './customers.js';
import {
  amount,
  type DocumentDiscountInput,
  documentCurrency,
  documentCustomer,
  documentInput,
  type InvoiceView,
  insertDraft,
  isoDay,
  type LineInput,
  orgPattern,
  orgRounding,
  resolveLines,
  type StoredLine,
  takeSequence,
} from './invoices.js';
import { fetchPage, type ListPage, ofAssignedCustomers, type PageParams } from './pagination.js';

export interface QuoteInput {
  customer: string;
  currency?: string;
  lines: LineInput[];
  discounts?: DocumentDiscountInput[];
  expires_on?: string | null;
  memo?: string | null;
}

export type QuoteUpdate = Partial<Omit<QuoteInput, 'customer'>>;

/** What a quote stores: lines resolved (prices and tax terms frozen) at the time it was written. */
interface QuoteContent {
  lines: (Omit<StoredLine, 'unit_amount'> & { unit_amount: string | null })[];
  discounts: DocumentDiscountInput[];
  memo: string | null;
}

type Row = Selectable<QuotesTable>;

export interface QuoteView {
  id: string;
  object: 'quote';
  status: QuoteStatus;
  number: string | null;
  customer: string;
  currency: string;
  lines: {
    description: string;
    quantity: string;
    unit_amount: number | null;
    unit_amount_decimal: string | null;
  }[];
  discounts: DocumentDiscountInput[];
  memo: string | null;
  subtotal: number;
  tax: number;
  total: number;
  expires_on: string | null;
  invoice: string | null;
  created_at: string;
  updated_at: string;
}

function linesOf(content: QuoteContent): StoredLine[] {
  return content.lines.map((l) => ({
    ...l,
    unit_amount: l.unit_amount === null ? null : BigInt(l.unit_amount),
  }));
}

function contentOf(lines: StoredLine[], discounts: DocumentDiscountInput[], memo: string | null): string {
  const content: QuoteContent = {
    lines: lines.map((l) => ({
      ...l,
      unit_amount: l.unit_amount === null ? null : l.unit_amount.toString(),
    })),
    discounts,
    memo,
  };
  return JSON.stringify(content, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
}

function view(r: Row): QuoteView {
  const c = r.content as unknown as QuoteContent;
  return {
    id: r.id,
    object: 'quote',
    status: r.status,
    number: r.number,
    customer: r.customer_id,
    currency: r.currency,
    lines: c.lines.map((l) => ({
      description: l.description,
      quantity: l.quantity,
      unit_amount: l.unit_amount === null ? null : amount(BigInt(l.unit_amount)),
      unit_amount_decimal: l.unit_amount_decimal,
    })),
    discounts: c.discounts,
    memo: c.memo,
    subtotal: amount(r.subtotal),
    tax: amount(r.tax_amount),
    total: amount(r.total),
    expires_on: r.expires_on,
    invoice: r.invoice_id,
    created_at: r.created_at.toISOString(),
    updated_at: r.updated_at.toISOString(),
  };
}

async function computeTotals(
  tx: Tx,
  currency: string,
  lines: StoredLine[],
  discounts: DocumentDiscountInput[],
) {
  const t = computeInvoice(documentInput(currency, lines, discounts), { rounding: await orgRounding(tx) });
  return { subtotal: t.subtotal, tax_amount: t.tax_amount, total: t.total };
}

async function loadQuote(tx: Tx, ctx: Ctx, id: string, permission: 'quotes:read' | 'quotes:write') {
  const row = await tx.selectFrom('quotes').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
  if (!row) throw new DomainError('not_found', 'No such quote.', 'id');
  const customer = await tx
    .selectFrom('customers')
    .select(['org_id', 'owner_user_id'])
    .where('id', '=', row.customer_id)
    .executeTakeFirstOrThrow();
  await authorize(tx, ctx, permission, customerResource(customer));
  return row;
}

async function audit(tx: Tx, ctx: Ctx, action: string, id: string, details: Record<string, unknown> = {}) {
  await recordAudit(tx, {
    orgId: ctx.actor.orgId,
    actor: ctx.actor,
    action,
    target: { type: 'quote', id },
    outcome: 'success',
    meta: ctx.meta,
    details,
  });
}

/** Drafts a quote; prices and tax terms are frozen into it. */
export async function createQuote(deps: BillingDeps, ctx: Ctx, input: QuoteInput): Promise<QuoteView> {
  const id = newId('quote');
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    const customer = await documentCustomer(tx, ctx, input.customer, 'quotes:write', input.lines);
    const currency = await documentCurrency(tx, input.currency, customer.currency);
    const lines = await resolveLines(tx, currency, input.lines);
    const discounts = input.discounts ?? [];
    const now = deps.clock.now();
    const row = await tx
      .insertInto('quotes')
      .values({
        org_id: ctx.actor.orgId,
        id,
        customer_id: customer.id,
        status: 'draft',
        number: null,
        currency,
        content: contentOf(lines, discounts, input.memo ?? null),
        ...(await computeTotals(tx, currency, lines, discounts)),
        expires_on: input.expires_on ? assertIsoDate(input.expires_on, 'expires_on') : null,
        invoice_id: null,
        created_at: now,
        updated_at: now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await audit(tx, ctx, 'quote.created', id, { customer: customer.id });
    return view(row);
  });
}

/** Edits a draft quote. */
export async function updateQuote(
  deps: BillingDeps,
  ctx: Ctx,
  id: string,
  input: QuoteUpdate,
): Promise<QuoteView> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    const row = await loadQuote(tx, ctx, id, 'quotes:write');
    const old = row.content as unknown as QuoteContent;
    applyQuoteAction({ status: row.status, line_count: old.lines.length }, { type: 'edit' });
    const currency = input.currency ? await documentCurrency(tx, input.currency, null) : row.currency;
    if (currency !== row.currency && !input.lines) {
      throw new DomainError(
        'validation_failed',
        'Changing the currency needs the lines restated.',
        'currency',
      );
    }
    const lines = input.lines ? await resolveLines(tx, currency, input.lines) : linesOf(old);
    const discounts = input.discounts ?? old.discounts;
    const memo = input.memo === undefined ? old.memo : input.memo;
    const updated = await tx
      .updateTable('quotes')
      .set({
        currency,
        content: contentOf(lines, discounts, memo),
        ...(await computeTotals(tx, currency, lines, discounts)),
        ...(input.expires_on !== undefined
          ? { expires_on: input.expires_on ? assertIsoDate(input.expires_on, 'expires_on') : null }
          : {}),
        version: sql<number>`version + 1`,
        updated_at: deps.clock.now(),
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await audit(tx, ctx, 'quote.updated', id, { fields: Object.keys(input).sort() });
    return view(updated);
  });
}

/**
 * Moves a quote along its state machine. Sending gives it its number (taken last); accepting
 * turns it into a draft invoice with the frozen lines, in the same transaction.
 */
export async function quoteAction(
  deps: BillingDeps,
  ctx: Ctx,
  id: string,
  type: 'send' | 'accept' | 'decline',
): Promise<QuoteView & { invoice_draft?: InvoiceView }> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    const row = await loadQuote(tx, ctx, id, 'quotes:write');
    const content = row.content as unknown as QuoteContent;
    const today = isoDay(deps.clock.now());
    const action: QuoteAction = type === 'accept' ? { type, today } : { type };
    const next = applyQuoteAction(
      {
        status: row.status,
        line_count: content.lines.length,
        ...(row.expires_on ? { expires_on: row.expires_on } : {}),
      },
      action,
    );
    let invoice: InvoiceView | undefined;
    if (type === 'accept') {
      const customer = await tx
        .selectFrom('customers')
        .select(['id', 'payment_terms_days'])
        .where('id', '=', row.customer_id)
        .executeTakeFirstOrThrow();
      invoice = await insertDraft(deps, tx, ctx, {
        customer,
        currency: row.currency,
        lines: linesOf(content),
        fields: { discounts: content.discounts },
        source: { quote: id },
      });
    }
    await audit(
      tx,
      ctx,
      `quote.${type === 'send' ? 'sent' : type === 'accept' ? 'accepted' : 'declined'}`,
      id,
      invoice ? { invoice: invoice.id } : {},
    );
    let number = row.number;
    if (type === 'send' && number === null) {
      const pattern = parseNumberPattern(await orgPattern(tx, 'quote'));
      number = renderNumber(
        pattern,
        today,
        await takeSequence(tx, ctx.actor.orgId, 'quote', sequenceScope(pattern, today)),
      );
    }
    const updated = await tx
      .updateTable('quotes')
      .set({
        status: next.status,
        number,
        ...(invoice ? { invoice_id: invoice.id } : {}),
        version: sql<number>`version + 1`,
        updated_at: deps.clock.now(),
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    return { ...view(updated), ...(invoice ? { invoice_draft: invoice } : {}) };
  });
}

/** One quote. */
export async function getQuote(deps: BillingDeps, ctx: Ctx, id: string): Promise<QuoteView> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => view(await loadQuote(tx, ctx, id, 'quotes:read')));
}

/** Quotes newest first; a sales rep sees those of their customers only. */
export async function listQuotes(
  deps: BillingDeps,
  ctx: Ctx,
  f: PageParams & { status?: QuoteStatus; customer?: string },
): Promise<ListPage<QuoteView>> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'quotes:read');
    let q = tx.selectFrom('quotes').selectAll();
    if (assignedOnly(ctx, 'quotes:read')) q = ofAssignedCustomers(tx, q, ctx.actor.userId);
    if (f.status) q = q.where('status', '=', f.status);
    if (f.customer) q = q.where('customer_id', '=', f.customer);
    const page = await fetchPage(q, f);
    return { object: 'list', data: page.rows.map(view), has_more: page.has_more };
  });
}
