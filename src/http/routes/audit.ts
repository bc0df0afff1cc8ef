import { z } from 'zod';
import type { Db } from '../../adapters/db/index.js';
import { listAuditEvents, verifyOrgAudit } from '../../app/audit-chain.js';
import { type Clock, systemClock } from '../../app/ports.js';
import { requireCtx } from '../ctx.js';
import type { App } from '../route.js';
import { ListQuery, listOf } from './common.js';

const Time = z.iso.datetime({ offset: true, error: 'an ISO 8601 date-time, e.g. 2026-01-31T00:00:00Z' });

const AuditQuery = ListQuery.extend({
  actor_id: z.string().min(1).max(100).optional(),
  actor_type: z.enum(['user', 'api_key', 'system', 'anonymous']).optional(),
  action: z
    .string()
    .regex(/^[a-z_]+(\.[a-z_]+)+$/, 'an action such as invoice.finalized')
    .optional(),
  target_type: z.string().min(1).max(50).optional(),
  target_id: z.string().min(1).max(100).optional(),
  from: Time.optional(),
  to: Time.optional(),
  starting_after: z
    .string()
    .regex(/^evt_[0-9a-z]{32}$/, 'an audit event id (evt_…)')
    .optional(),
}).strict();

const AuditEvent = z.object({
  id: z.string(),
  object: z.literal('audit_event'),
  org_id: z.string().nullable(),
  occurred_at: z.string(),
  actor: z.object({ type: z.string(), id: z.string().nullable(), session_id: z.string().nullable() }),
  action: z.string(),
  target: z.object({ type: z.string(), id: z.string().nullable() }).nullable(),
  outcome: z.string(),
  request_id: z.string().nullable(),
  ip: z.string().nullable(),
  user_agent: z.string().nullable(),
  details: z.unknown(),
  content_hash: z.string(),
  seq: z.number().int().nullable(),
});

const Problem = z.object({
  seq: z.number().int().nullable(),
  kind: z.string(),
  message: z.string(),
  event_id: z.string().optional(),
});

const VerifyReport = z.object({
  object: z.literal('audit_verification'),
  chain_id: z.string(),
  ok: z.boolean(),
  sealed: z.number().int(),
  head_seq: z.number().int(),
  head_hash: z.string(),
  checkpoints_checked: z.number().int(),
  unsealed_overdue: z.number().int(),
  first_bad_seq: z.number().int().nullable(),
  problems: z.array(Problem),
});

/** The audit log for auditors: list with filters, and chain verification (audit:read). */
export function auditRoutes(app: App, deps: { db: Db; clock?: Clock }): void {
  const clock = deps.clock ?? systemClock;
  app.get(
    '/v1/audit_events',
    {
      config: { auth: { permission: 'audit:read' } },
      schema: { querystring: AuditQuery, response: { 200: listOf(AuditEvent) } },
    },
    async (req) => {
      const { from, to, ...rest } = req.query;
      return listAuditEvents(deps.db, requireCtx(req), {
        ...rest,
        ...(from ? { from: new Date(from) } : {}),
        ...(to ? { to: new Date(to) } : {}),
      });
    },
  );
  app.get(
    '/v1/audit/verify',
    {
      config: { auth: { permission: 'audit:read' } },
      schema: { response: { 200: VerifyReport } },
    },
    async (req) => {
      const r = await verifyOrgAudit(deps.db, requireCtx(req), { clock });
      const { org_id: _org, ...rest } = r;
      return { object: 'audit_verification' as const, ...rest };
    },
  );
}
