import { z } from 'zod';
import { CREDIT_REASONS, createCreditNote, getCreditNote, listCreditNotes } from '../../app/credit-notes.js';
import type { BillingDeps } from '../../app/customers.js';
import { requireCtx } from '../ctx.js';
import type { App } from '../route.js';
import { IdParam, ListQuery } from './common.js';

export const CreditNoteCreate = z
  .object({
    invoice: z.string().regex(/^inv_[0-9a-z]{32}$/, 'an invoice id'),
    amount: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
    lines: z
      .array(
        z
          .object({
            line: z.number().int().min(0).max(499),
            quantity: z
              .string()
              .regex(/^[0-9]{1,15}(\.[0-9]{1,6})?$/, 'a decimal quantity')
              .optional(),
          })
          .strict(),
      )
      .min(1)
      .max(500)
      .optional(),
    reason: z.enum(CREDIT_REASONS),
    memo: z.string().max(1000).nullish(),
  })
  .strict();

/** Credit notes: the only way to correct a finalised invoice. */
export function creditNoteRoutes(app: App, deps: BillingDeps): void {
  app.post(
    '/v1/credit_notes',
    { config: { auth: { permission: 'credit_notes:write' } }, schema: { body: CreditNoteCreate } },
    async (req) => createCreditNote(deps, requireCtx(req), req.body),
  );
  app.get(
    '/v1/credit_notes',
    {
      config: { auth: { permission: 'invoices:read' } },
      schema: {
        querystring: ListQuery.extend({
          invoice: z
            .string()
            .regex(/^inv_[0-9a-z]{32}$/)
            .optional(),
        }),
      },
    },
    async (req) => listCreditNotes(deps, requireCtx(req), req.query),
  );
  app.get(
    '/v1/credit_notes/:id',
    { config: { auth: { permission: 'invoices:read' } }, schema: { params: IdParam('cn') } },
    async (req) => getCreditNote(deps, requireCtx(req), req.params.id),
  );
}
