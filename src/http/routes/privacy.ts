import { z } from 'zod';
import {
  ERASURE_REASONS,
  eraseCustomer,
  exportAsCsv,
  exportCustomer,
  getBuyerDetails,
  type PrivacyDeps,
  setLegalHold,
} from '../../app/privacy.js';
import { getProcessingRecords } from '../../app/processing-records.js';
import { requireCtx } from '../ctx.js';
import type { App } from '../route.js';
import { IdParam } from './common.js';

const ExportQuery = z.object({ format: z.enum(['json', 'csv']).default('json') }).strict();
const EraseBody = z.object({ reason: z.enum(ERASURE_REASONS) }).strict();
const HoldBody = z.object({ reason: z.string().trim().min(1).max(500) }).strict();

/**
 * Privacy (GDPR Art. 15/17/18/20/30): export, erasure, legal hold, restricted buyer details,
 * records of processing. Export and erasure need step-up authentication.
 */
export function privacyRoutes(app: App, deps: PrivacyDeps): void {
  app.get(
    '/v1/customers/:id/export',
    {
      config: { auth: { permission: 'gdpr:export', stepUp: true } },
      schema: { params: IdParam('cus'), querystring: ExportQuery },
    },
    async (req) => {
      const data = await exportCustomer(deps, requireCtx(req), req.params.id);
      if (req.query.format === 'json') return data;
      return { object: 'customer_export_csv', format: 'csv', files: exportAsCsv(data) };
    },
  );
  app.post(
    '/v1/customers/:id/erase',
    {
      config: { auth: { permission: 'gdpr:erase', stepUp: true } },
      schema: { params: IdParam('cus'), body: EraseBody },
    },
    async (req) => eraseCustomer(deps, requireCtx(req), req.params.id, req.body.reason),
  );
  app.post(
    '/v1/customers/:id/legal_hold',
    {
      config: { auth: { permission: 'gdpr:legal_hold' } },
      schema: { params: IdParam('cus'), body: HoldBody },
    },
    async (req) => setLegalHold(deps, requireCtx(req), req.params.id, req.body.reason),
  );
  app.delete(
    '/v1/customers/:id/legal_hold',
    { config: { auth: { permission: 'gdpr:legal_hold' } }, schema: { params: IdParam('cus') } },
    async (req) => setLegalHold(deps, requireCtx(req), req.params.id, null),
  );
  app.get(
    '/v1/invoices/:id/buyer',
    { config: { auth: { permission: 'invoices:read' } }, schema: { params: IdParam('inv') } },
    async (req) => getBuyerDetails(deps, requireCtx(req), req.params.id),
  );
  app.get(
    '/v1/privacy/processing-records',
    { config: { auth: { permission: 'privacy:read' } } },
    async (req) => getProcessingRecords(deps.db, requireCtx(req), deps.clock.now()),
  );
}
