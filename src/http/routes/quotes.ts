import { z } from 'zod';
import type { BillingDeps } from '../../app/customers.js';
import { createQuote, getQuote, listQuotes, quoteAction, updateQuote } from '../../app/quotes.js';
import { QUOTE_STATUSES } from '../../domain/quote.js';
import { requireCtx } from '../ctx.js';
import type { App } from '../route.js';
import { IdParam, ListQuery } from './common.js';
import { Discount, IsoDate, Line } from './invoices.js';

const fields = {
  currency: z
    .string()
    .regex(/^[A-Za-z]{3}$/, 'an ISO 4217 currency code')
    .optional(),
  lines: z.array(Line).min(1).max(500),
  discounts: z.array(Discount).max(10).optional(),
  expires_on: IsoDate.nullish(),
  memo: z.string().max(5000).nullish(),
};
const QuoteCreate = z
  .object({ customer: z.string().regex(/^cus_[0-9a-z]{32}$/, 'a customer id'), ...fields })
  .strict();
const QuoteUpdate = z.object({ ...fields, lines: fields.lines.optional() }).strict();

/** Quotes: draft → sent → accepted (becomes a draft invoice) | declined | expired. */
export function quoteRoutes(app: App, deps: BillingDeps): void {
  const params = IdParam('quo');
  app.post(
    '/v1/quotes',
    { config: { auth: { permission: 'quotes:write' } }, schema: { body: QuoteCreate } },
    async (req) => createQuote(deps, requireCtx(req), req.body),
  );
  app.get(
    '/v1/quotes',
    {
      config: { auth: { permission: 'quotes:read' } },
      schema: {
        querystring: ListQuery.extend({
          status: z.enum(QUOTE_STATUSES).optional(),
          customer: z
            .string()
            .regex(/^cus_[0-9a-z]{32}$/)
            .optional(),
        }),
      },
    },
    async (req) => listQuotes(deps, requireCtx(req), req.query),
  );
  app.get(
    '/v1/quotes/:id',
    { config: { auth: { permission: 'quotes:read' } }, schema: { params } },
    async (req) => getQuote(deps, requireCtx(req), req.params.id),
  );
  app.patch(
    '/v1/quotes/:id',
    { config: { auth: { permission: 'quotes:write' } }, schema: { params, body: QuoteUpdate } },
    async (req) => updateQuote(deps, requireCtx(req), req.params.id, req.body),
  );
  for (const action of ['send', 'accept', 'decline'] as const) {
    app.post(
      `/v1/quotes/:id/${action}`,
      { config: { auth: { permission: 'quotes:write' } }, schema: { params } },
      async (req) => quoteAction(deps, requireCtx(req), req.params.id, action),
    );
  }
}
