import { createHash } from 'node:crypto';
import type { Tx } from '../adapters/db/tx.js';
import { newId } from '../domain/ids.js';
import type { Actor } from '../domain/permissions.js';
import type { Ctx, RequestMeta } from './context.js';

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
  /** When it happened; default now. Covered by the content hash. */
  occurredAt?: Date;
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

let skippedForBenchmark = false;

/**
 * For the audit benchmark only (bench/scenarios/audit.ts measures what auditing costs by
 * running the same workload with and without it): no configuration, environment variable or
 * request can reach this, and nothing under src/ calls it (a test checks).
 */
export function benchmarkOnlySkipAudit(skip: boolean): void {
  skippedForBenchmark = skip;
}

/** True while the audit benchmark runs its audit-off phase (statements that insert an auditRow themselves leave it out). */
export function auditSkippedForBenchmark(): boolean {
  return skippedForBenchmark;
}

/**
 * The row one audit event is stored as, content hash included. recordAudit inserts it; a use
 * case that writes several rows at once may insert it in the same statement (it must still
 * commit if and only if the change it records commits).
 */
export function auditRow(event: AuditEvent) {
  const id = newId('event');
  const detailsText = JSON.stringify(scrubDetails(event.details ?? {}));
  // No content hash here: the database computes it (v3) as the row is inserted, over exactly
  // what it stores (migration 0016), in this same transaction.
  return {
    id,
    org_id: event.orgId,
    occurred_at: event.occurredAt ?? new Date(),
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
    details: detailsText,
  };
}

/**
 * Appends one audit event inside the caller's transaction, so the event commits if and only
 * if the change it records commits. Every use case that writes calls this.
 */
export async function recordAudit(tx: Tx, event: AuditEvent): Promise<string> {
  const row = auditRow(event);
  if (skippedForBenchmark) return row.id;
  await tx.insertInto('audit_events').values(row).execute();
  return row.id;
}

/**
 * Records that decrypted PII was read (DESIGN §5: every read of PII is audited): one
 * `<type>.pii_read` event naming the record, or for a list one `<type>.pii_listed` event naming
 * the records whose PII it returned. Nothing when no record carried any.
 */
export async function recordPiiRead(
  tx: Tx,
  ctx: Ctx,
  type: string,
  ids: string[],
  mode: 'read' | 'listed',
): Promise<void> {
  if (ids.length === 0) return;
  await recordAudit(tx, {
    orgId: ctx.actor.orgId,
    actor: ctx.actor,
    action: `${type}.pii_${mode}`,
    ...(mode === 'read' ? { target: { type, id: ids[0] as string } } : { details: { [`${type}s`]: ids } }),
    outcome: 'success',
    meta: ctx.meta,
  });
}

/** An audit event as the content hash sees it: every column, the time as UTC ISO 8601 with microseconds. */
export interface CanonicalAuditEvent {
  id: string;
  org_id: string | null;
  occurred_at: string;
  actor_type: string;
  actor_id: string | null;
  session_id: string | null;
  action: string;
  target_type: string | null;
  target_id: string | null;
  outcome: string;
  request_id: string | null;
  ip: string | null;
  user_agent: string | null;
  details: unknown;
}

/** UTC ISO 8601 with six fraction digits, as PostgreSQL's to_char(… 'US') prints it. */
export function isoMicros(d: Date): string {
  return d.toISOString().replace(/Z$/, '000Z');
}

/** JSON with object keys sorted at every depth: one encoding per value. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

/** SHA-256 (hex) over the v1 canonical encoding of an event (events written before migration 0015). */
export function auditContentHash(e: CanonicalAuditEvent): string {
  const head = JSON.stringify([
    'billvault/audit-event/v1',
    e.id,
    e.org_id,
    e.occurred_at,
    e.actor_type,
    e.actor_id,
    e.session_id,
    e.action,
    e.target_type,
    e.target_id,
    e.outcome,
    e.request_id,
    e.ip,
    e.user_agent,
  ]);
  return createHash('sha256')
    .update(`${head.slice(0, -1)},${canonicalJson(e.details)}]`)
    .digest('hex');
}
