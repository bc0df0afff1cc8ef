import { Readable } from 'node:stream';
import { z } from 'zod';
import type { BillingDeps } from '../../app/customers.js';
import {
  agingCsv,
  agingReport,
  customerStatement,
  customerStatementCsv,
  dsoCsv,
  dsoReport,
  exportInvoicesCsv,
  outstandingCsv,
  outstandingReport,
  revenueCsv,
  revenueReport,
  taxCsv,
  taxReport,
  topCustomersCsv,
  topCustomersReport,
} from '../../app/reports.js';
import { REPORT_GROUPS } from '../../domain/reports.js';
import { requireCtx } from '../ctx.js';
import type { App, FastifyReply, FastifyRequest } from '../route.js';
import { IdParam } from './common.js';
import { IsoDate } from './invoices.js';

const CustomerId = z.string().regex(/^cus_[0-9a-z]{32}$/, 'a customer id');
const Format = z.enum(['json', 'csv']).optional();
const Period = z.object({ from: IsoDate, to: IsoDate, format: Format });

/** CSV when asked by `?format=csv` or by an Accept header naming text/csv (and not JSON first). */
function wantsCsv(req: FastifyRequest, format: 'json' | 'csv' | undefined): boolean {
  if (format) return format === 'csv';
  const accept = String(req.headers.accept ?? '');
  return /\btext\/csv\b/i.test(accept) && !/^\s*application\/json/i.test(accept);
}

function sendCsv(reply: FastifyReply, name: string, body: string | AsyncIterable<string>) {
  reply.type('text/csv; charset=utf-8');
  reply.header('content-disposition', `attachment; filename="${name}.csv"`);
  return reply.send(typeof body === 'string' ? body : Readable.from(body));
}

/** Receivables and reports (reports:read), the customer statement (invoices:read, record-level) and the invoice export (exports:create). */
export function reportRoutes(app: App, deps: BillingDeps): void {
  app.get(
    '/v1/reports/aging',
    {
      config: { auth: { permission: 'reports:read' } },
      schema: {
        querystring: z.object({
          as_of: IsoDate.optional(),
          customer: CustomerId.optional(),
          limit: z.coerce.number().int().min(1).max(10_000).optional(),
          starting_after: CustomerId.optional(),
          format: Format,
        }),
      },
    },
    async (req, reply) => {
      const { format, ...q } = req.query;
      const csv = wantsCsv(req, format);
      // JSON pages hold at most 100 customers; a CSV page up to 10,000.
      const v = await agingReport(deps, requireCtx(req), q, csv ? 10_000 : 100);
      return csv ? sendCsv(reply, `aging-${v.as_of}`, agingCsv(v)) : v;
    },
  );
  app.get(
    '/v1/reports/outstanding',
    {
      config: { auth: { permission: 'reports:read' } },
      schema: { querystring: z.object({ format: Format }) },
    },
    async (req, reply) => {
      const v = await outstandingReport(deps, requireCtx(req));
      return wantsCsv(req, req.query.format)
        ? sendCsv(reply, `outstanding-${v.as_of}`, outstandingCsv(v))
        : v;
    },
  );
  app.get(
    '/v1/reports/dso',
    { config: { auth: { permission: 'reports:read' } }, schema: { querystring: Period } },
    async (req, reply) => {
      const v = await dsoReport(deps, requireCtx(req), req.query);
      return wantsCsv(req, req.query.format) ? sendCsv(reply, `dso-${v.from}-${v.to}`, dsoCsv(v)) : v;
    },
  );
  app.get(
    '/v1/reports/revenue',
    {
      config: { auth: { permission: 'reports:read' } },
      schema: { querystring: Period.extend({ group: z.enum(REPORT_GROUPS).optional() }) },
    },
    async (req, reply) => {
      const v = await revenueReport(deps, requireCtx(req), req.query);
      return wantsCsv(req, req.query.format) ? sendCsv(reply, `revenue-${v.from}-${v.to}`, revenueCsv(v)) : v;
    },
  );
  app.get(
    '/v1/reports/tax',
    { config: { auth: { permission: 'reports:read' } }, schema: { querystring: Period } },
    async (req, reply) => {
      const v = await taxReport(deps, requireCtx(req), req.query);
      return wantsCsv(req, req.query.format) ? sendCsv(reply, `tax-${v.from}-${v.to}`, taxCsv(v)) : v;
    },
  );
  app.get(
    '/v1/reports/top_customers',
    {
      config: { auth: { permission: 'reports:read' } },
      schema: { querystring: Period.extend({ limit: z.coerce.number().int().min(1).max(100).optional() }) },
    },
    async (req, reply) => {
      const v = await topCustomersReport(deps, requireCtx(req), req.query);
      return wantsCsv(req, req.query.format)
        ? sendCsv(reply, `top-customers-${v.from}-${v.to}`, topCustomersCsv(v))
        : v;
    },
  );
  app.get(
    '/v1/customers/:id/statement',
    {
      config: { auth: { permission: 'invoices:read' } },
      schema: {
        params: IdParam('cus'),
        querystring: Period.extend({
          currency: z
            .string()
            .regex(/^[A-Za-z]{3}$/, 'an ISO 4217 code')
            .optional(),
        }),
      },
    },
    async (req, reply) => {
      const { format, ...q } = req.query;
      const ctx = requireCtx(req);
      if (wantsCsv(req, format)) {
        const lines = await customerStatementCsv(deps, ctx, req.params.id, q);
        return sendCsv(reply, `statement-${req.params.id}-${q.from}-${q.to}`, lines);
      }
      return customerStatement(deps, ctx, req.params.id, q);
    },
  );
  app.get(
    '/v1/exports/invoices.csv',
    {
      config: { auth: { permission: 'exports:create' } },
      schema: { querystring: z.object({ from: IsoDate.optional(), to: IsoDate.optional() }) },
    },
    async (req, reply) => {
      const lines = await exportInvoicesCsv(deps, requireCtx(req), req.query);
      return sendCsv(reply, 'invoices', lines);
    },
  );
}
