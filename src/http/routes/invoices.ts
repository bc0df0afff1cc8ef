import { z } from 'zod';
import type { BillingDeps } from '../../app/customers.js';
import {
  createInvoice,
  deleteDraftInvoice,
  finalizeInvoice,
  getInvoice,
  listInvoices,
  markUncollectible,
  updateInvoice,
  voidInvoice,
} from '../../app/invoices.js';
import { verifyOrgLedger } from '../../app/ledger.js';
import { INVOICE_STATUSES } from '../../domain/invoice-transitions.js';
import { requireCtx } from '../ctx.js';
import type { App } from '../route.js';
import { IdParam, ListQuery } from './common.js';

const SAFE = Number.MAX_SAFE_INTEGER;
const Amount = z.number().int().min(0).max(SAFE);
const Decimal6 = z.string().regex(/^[0-9]{1,15}(\.[0-9]{1,6})?$/, 'a decimal string with up to 6 decimals');
const Percentage = z.string().regex(/^[0-9]{1,3}(\.[0-9]{1,6})?$/, 'a percentage such as "10" or "12.5"');
export const IsoDate = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'a date YYYY-MM-DD');

export const Line = z
  .object({
    product: z
      .string()
      .regex(/^prd_[0-9a-z]{32}$/, 'a product id')
      .optional(),
    description: z.string().trim().min(1).max(1000).optional(),
    quantity: Decimal6,
    unit_amount: Amount.optional(),
    unit_amount_decimal: Decimal6.optional(),
    unit_code: z
      .string()
      .regex(/^[A-Z0-9]{1,3}$/, 'a UN/ECE unit code such as C62 or HUR')
      .optional(),
    discount_percentage: Percentage.optional(),
    discount_amount: Amount.optional(),
    tax_rates: z
      .array(z.string().regex(/^txr_[0-9a-z]{32}$/, 'a tax rate id'))
      .max(5)
      .optional(),
  })
  .strict();

export const Discount = z
  .object({
    percentage: Percentage.optional(),
    amount: Amount.optional(),
    reason: z.string().max(200).optional(),
  })
  .strict()
  .refine(
    (d) => (d.percentage === undefined) !== (d.amount === undefined),
    'give exactly one of percentage or amount',
  );

const fields = {
  currency: z
    .string()
    .regex(/^[A-Za-z]{3}$/, 'an ISO 4217 currency code')
    .optional(),
  lines: z.array(Line).min(1).max(500),
  discounts: z.array(Discount).max(10).optional(),
  due_date: IsoDate.optional(),
  payment_terms_days: z.number().int().min(0).max(365).optional(),
  po_number: z.string().trim().max(100).nullish(),
  notes: z.string().max(5000).nullish(),
  footer: z.string().max(2000).nullish(),
};

export const InvoiceCreate = z
  .object({
    customer: z.string().regex(/^cus_[0-9a-z]{32}$/, 'a customer id'),
    ...fields,
    // Create and finalise in one request and one transaction (needs invoices:finalize too).
    finalize: z.boolean().optional(),
  })
  .strict();
const InvoiceUpdate = z.object({ ...fields, lines: fields.lines.optional() }).strict();
export const Finalize = z
  .object({ issue_date: IsoDate.optional(), fx_rate: z.string().max(30).optional() })
  .strict();

const InvoiceQuery = ListQuery.extend({
  status: z.enum(INVOICE_STATUSES).optional(),
  customer: z
    .string()
    .regex(/^cus_[0-9a-z]{32}$/, 'a customer id')
    .optional(),
  issued_from: IsoDate.optional(),
  issued_to: IsoDate.optional(),
  'expand[]': z.literal('customer').optional(),
  expand: z.literal('customer').optional(),
});
const GetQuery = z.object({
  'expand[]': z.literal('customer').optional(),
  expand: z.literal('customer').optional(),
});

/** Invoices: drafts, finalisation with gap-free numbers, void, write-off; and the ledger check. */
export function invoiceRoutes(app: App, deps: BillingDeps): void {
  const params = IdParam('inv');
  app.post(
    '/v1/invoices',
    { config: { auth: { permission: 'invoices:write' } }, schema: { body: InvoiceCreate } },
    async (req) => createInvoice(deps, requireCtx(req), req.body),
  );
  app.get(
    '/v1/invoices',
    { config: { auth: { permission: 'invoices:read' } }, schema: { querystring: InvoiceQuery } },
    async (req) =>
      listInvoices(deps, requireCtx(req), {
        ...req.query,
        expand_customer: Boolean(req.query.expand ?? req.query['expand[]']),
      }),
  );
  app.get(
    '/v1/invoices/:id',
    { config: { auth: { permission: 'invoices:read' } }, schema: { params, querystring: GetQuery } },
    async (req) =>
      getInvoice(deps, requireCtx(req), req.params.id, {
        customer: Boolean(req.query.expand ?? req.query['expand[]']),
      }),
  );
  app.patch(
    '/v1/invoices/:id',
    { config: { auth: { permission: 'invoices:write' } }, schema: { params, body: InvoiceUpdate } },
    async (req) => updateInvoice(deps, requireCtx(req), req.params.id, req.body),
  );
  app.delete(
    '/v1/invoices/:id',
    { config: { auth: { permission: 'invoices:write' } }, schema: { params } },
    async (req) => deleteDraftInvoice(deps, requireCtx(req), req.params.id),
  );
  app.post(
    '/v1/invoices/:id/finalize',
    { config: { auth: { permission: 'invoices:finalize' } }, schema: { params, body: Finalize.nullish() } },
    async (req) => finalizeInvoice(deps, requireCtx(req), req.params.id, req.body ?? {}),
  );
  app.post(
    '/v1/invoices/:id/void',
    { config: { auth: { permission: 'invoices:void' } }, schema: { params } },
    async (req) => voidInvoice(deps, requireCtx(req), req.params.id),
  );
  app.post(
    '/v1/invoices/:id/mark_uncollectible',
    { config: { auth: { permission: 'invoices:void' } }, schema: { params } },
    async (req) => markUncollectible(deps, requireCtx(req), req.params.id),
  );
  app.get('/v1/ledger/verify', { config: { auth: { permission: 'ledger:read' } } }, async (req) =>
    verifyOrgLedger(deps, requireCtx(req)),
  );
}
