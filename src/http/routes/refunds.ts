import { z } from 'zod';
import type { BillingDeps } from '../../app/customers.js';
import { approveRefund, createRefund, getRefund, listRefunds, rejectRefund } from '../../app/refunds.js';
import { requireCtx } from '../ctx.js';
import type { App } from '../route.js';
import { IdParam, ListQuery } from './common.js';

export const RefundCreate = z
  .object({
    payment: z
      .string()
      .regex(/^pay_[0-9a-z]{32}$/, 'a payment id')
      .optional(),
    customer: z
      .string()
      .regex(/^cus_[0-9a-z]{32}$/, 'a customer id')
      .optional(),
    currency: z
      .string()
      .regex(/^[A-Za-z]{3}$/, 'an ISO 4217 currency code')
      .optional(),
    amount: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    reason: z.string().trim().min(1).max(500),
  })
  .strict();

/**
 * Refunds: requested with step-up authentication; above the org's approval threshold they wait
 * for a second person, who approves (step-up again) or rejects.
 */
export function refundRoutes(app: App, deps: BillingDeps): void {
  app.post(
    '/v1/refunds',
    { config: { auth: { permission: 'refunds:write', stepUp: true } }, schema: { body: RefundCreate } },
    async (req) => createRefund(deps, requireCtx(req), req.body),
  );
  app.get(
    '/v1/refunds',
    {
      config: { auth: { permission: 'payments:read' } },
      schema: {
        querystring: ListQuery.extend({
          status: z.enum(['pending_approval', 'posted', 'rejected']).optional(),
        }),
      },
    },
    async (req) => listRefunds(deps, requireCtx(req), req.query),
  );
  app.get(
    '/v1/refunds/:id',
    { config: { auth: { permission: 'payments:read' } }, schema: { params: IdParam('ref') } },
    async (req) => getRefund(deps, requireCtx(req), req.params.id),
  );
  app.post(
    '/v1/refunds/:id/approve',
    { config: { auth: { permission: 'refunds:approve', stepUp: true } }, schema: { params: IdParam('ref') } },
    async (req) => approveRefund(deps, requireCtx(req), req.params.id),
  );
  app.post(
    '/v1/refunds/:id/reject',
    { config: { auth: { permission: 'refunds:approve' } }, schema: { params: IdParam('ref') } },
    async (req) => rejectRefund(deps, requireCtx(req), req.params.id),
  );
}
