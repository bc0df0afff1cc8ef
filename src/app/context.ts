import type { Actor } from '../domain/permissions.js';

/** Where a call came from: carried into audit events. Never holds secrets or PII. */
export interface RequestMeta {
  requestId?: string | null;
  ip?: string | null;
  userAgent?: string | null;
}

/** What every use case receives: who acts, and from where. */
export interface Ctx {
  actor: Actor;
  meta: RequestMeta;
}

/** The system itself acting in one org (CLI administration, scheduled jobs). */
export function systemCtx(orgId: string, meta: RequestMeta = {}): Ctx {
  return { actor: { kind: 'system', id: 'system', orgId, role: 'owner' }, meta };
}
