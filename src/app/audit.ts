import type { Tx } from '../adapters/db/tx.js';
import { newId } from '../domain/ids.js';
import type { Actor } from '../domain/permissions.js';
import type { RequestMeta } from './context.js';

export type AuditOutcome = 'success' | 'denied' | 'failed';

export interface AuditEvent {
  orgId: string | null;
  actor: Pick<Actor, 'kind' | 'id' | 'sessionId'> | { kind: 'anonymous'; id?: null; sessionId?: null };
  action: string;
  target?: { type: string; id: string } | null;
  outcome: AuditOutcome;
  meta?: RequestMeta;
  /** Identifiers and non-sensitive facts only; keys that look like secrets are redacted. */
  details?: Record<string, unknown>;
}

const SECRET_KEY =
  /pass(word|phrase)?|secret|token|otp|totp|recovery|cookie|authorization|api_?key|private|card|pan|cvc|cvv/i;
const MAX_DEPTH = 4;

/** Drops anything that looks like a secret from audit details, at any depth. */
export function scrubDetails(value: unknown, depth = 0): unknown {
  if (depth > MAX_DEPTH) return '[truncated]';
  if (Array.isArray(value)) return value.slice(0, 100).map((v) => scrubDetails(v, depth + 1));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value))
      out[k] = SECRET_KEY.test(k) ? '[redacted]' : scrubDetails(v, depth + 1);
    return out;
  }
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'string' && value.length > 500) return `${value.slice(0, 500)}…`;
  return value;
}

/**
 * Appends one audit event inside the caller's transaction, so the event commits if and only
 * if the change it records commits. Every use case that writes calls this.
 */
export async function recordAudit(tx: Tx, event: AuditEvent): Promise<string> {
  const id = newId('event');
  await tx
    .insertInto('audit_events')
    .values({
      id,
      org_id: event.orgId,
      actor_type: event.actor.kind,
      actor_id: event.actor.id ?? null,
      session_id: event.actor.sessionId ?? null,
      action: event.action,
      target_type: event.target?.type ?? null,
      target_id: event.target?.id ?? null,
      outcome: event.outcome,
      request_id: event.meta?.requestId ?? null,
      ip: event.meta?.ip ?? null,
      user_agent: event.meta?.userAgent?.slice(0, 300) ?? null,
      details: JSON.stringify(scrubDetails(event.details ?? {})),
    })
    .execute();
  return id;
}
