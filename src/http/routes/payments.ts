import { z } from 'zod';
import type { BillingDeps } from '../../app/customers.js';
import { applyCredit, getPayment, listPayments, recordPayment, unapplyPayment } from '../../app/payments.js';
import { PAYMENT_METHODS } from '../../domain/payments.js';
import { requireCtx } from '../ctx.js';
import type { App } from '../route.js';
import { IdParam, ListQuery } from './common.js';
import { IsoDate } from './invoices.js';

const PositiveAmount = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
const Currency = z.string().regex(/^[A-Za-z]{3}$/, 'an ISO 4217 currency code');
const InvoiceId = z.string().regex(/^inv_[0-9a-z]{32}$/, 'an invoice id');

export const PaymentCreate = z
  .object({
    customer: z.string().regex(/^cus_[0-9a-z]{32}$/, 'a customer id'),
    amount: PositiveAmount,
    currency: Currency,
    method: z.enum(PAYMENT_METHODS),
    reference: z.string().trim().max(140).nullish(),
    received_on: IsoDate.optional(),
    allocations: z
      .array(z.object({ invoice: InvoiceId, amount: PositiveAmount }).strict())
      .max(100)
      .optional(),
    excess: z.enum(['reject', 'credit']).optional(),
    card: z
      .object({
        gateway_token: z.string().min(1).max(255).optional(),
        brand: z.string().trim().min(1).max(30).optional(),
        last4: z
          .string()
          .regex(/^[0-9]{4}$/, 'the last four digits')
          .optional(),
        exp_month: z.number().int().min(1).max(12).optional(),
        exp_year: z.number().int().min(2000).max(2100).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

const Unapply = z
  .object({
    allocation: z
      .string()
      .regex(/^pal_[0-9a-z]{32}$/, 'an allocation id')
      .optional(),
    invoice: InvoiceId.optional(),
  })
  .strict();

const ApplyCredit = z
  .object({
    invoice: InvoiceId,
    amount: PositiveAmount,
    payment: z
      .string()
      .regex(/^pay_[0-9a-z]{32}$/, 'a payment id')
      .optional(),
  })
  .strict();

/** Payments: record and allocate, read, unapply; customer credit applied to invoices. */
export function paymentRoutes(app: App, deps: BillingDeps): void {
  app.post(
    '/v1/payments',
    { config: { auth: { permission: 'payments:write' } }, schema: { body: PaymentCreate } },
    async (req) => recordPayment(deps, requireCtx(req), req.body),
  );
  app.get(
    '/v1/payments',
    {
      config: { auth: { permission: 'payments:read' } },
      schema: {
        querystring: ListQuery.extend({
          customer: z
            .string()
            .regex(/^cus_[0-9a-z]{32}$/)
            .optional(),
        }),
      },
    },
    async (req) => listPayments(deps, requireCtx(req), req.query),
  );
  app.get(
    '/v1/payments/:id',
    { config: { auth: { permission: 'payments:read' } }, schema: { params: IdParam('pay') } },
    async (req) => getPayment(deps, requireCtx(req), req.params.id),
  );
  app.post(
    '/v1/payments/:id/unapply',
    { config: { auth: { permission: 'payments:write' } }, schema: { params: IdParam('pay'), body: Unapply } },
    async (req) => unapplyPayment(deps, requireCtx(req), req.params.id, req.body),
  );
  app.post(
    '/v1/customers/:id/apply_credit',
    {
      config: { auth: { permission: 'payments:write' } },
      schema: { params: IdParam('cus'), body: ApplyCredit },
    },
    async (req) => applyCredit(deps, requireCtx(req), req.params.id, req.body),
  );
}
