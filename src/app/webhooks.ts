import { createHmac, randomBytes } from 'node:crypto';
import { type RawBuilder, type Selectable, sql } from 'kysely';
import { webhookEndpointsCrypto } from '../adapters/crypto/encrypted-tables.js';
import { inOrg, type Tx } from '../adapters/db/index.js';
import type { WebhookDeliveriesTable, WebhookEndpointsTable } from '../adapters/db/schema-webhooks.js';
import {
  type Lookup,
  resolveTarget,
  SsrfError,
  type SsrfPolicy,
  STRICT_POLICY,
  systemLookup,
} from '../adapters/net/ssrf.js';
import { DomainError } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import { can } from '../domain/permissions.js';
import { recordAudit } from './audit.js';
import { authorize } from './authz.js';
import type { Ctx } from './context.js';
import type { BillingDeps } from './customers.js';
import { recordDenied } from './denials.js';
import { fetchPage, type ListPage, type PageParams } from './pagination.js';

/**
 * Outbound webhooks (DESIGN.md §6): endpoints per org, events emitted inside the business
 * transaction straight into the delivery outbox, and the delivery log. Sending is the
 * dispatcher's job (webhook-dispatcher.ts), outside any transaction.
 */

export const WEBHOOK_EVENT_TYPES = [
  'invoice.finalized',
  'invoice.paid',
  'invoice.voided',
  'invoice.marked_uncollectible',
  'payment.received',
  'refund.created',
  'refund.approved',
  'refund.posted',
  'credit_note.created',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

export const SECRET_PREFIX = 'whsec_';
const PERMISSION = 'webhooks:manage' as const;

/** What the webhook use cases need: the billing deps plus the SSRF policy for endpoint URLs. */
export interface WebhookDeps extends BillingDeps {
  ssrf?: SsrfPolicy;
  lookup?: Lookup;
}

// ---------------------------------------------------------------------------------------------
// Signing (DESIGN.md §6): Billvault-Signature: t=<unix>,v1=<hex hmac-sha256 of "t.body">

/** A new signing secret: `whsec_` + 32 random bytes, base64url. */
export function newSigningSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(32).toString('base64url')}`;
}

/** The value of the Billvault-Signature header for a body sent at unix time t. */
export function signatureHeader(secret: string, t: number, body: string): string {
  const mac = createHmac('sha256', secret).update(`${t}.${body}`, 'utf8').digest('hex');
  return `t=${t},v1=${mac}`;
}

// ---------------------------------------------------------------------------------------------
// Events

/** A JSON-safe amount: a number while exact, else its decimal string. */
function num(v: bigint): number | string {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(v)
    : v.toString();
}

/** The invoice in an event: identifiers, state and amounts only (no buyer details). */
export function invoiceObject(r: {
  id: string;
  customer_id: string;
  number: string | null;
  status: string;
  currency: string;
  total: bigint;
  amount_due: bigint;
  amount_paid: bigint;
  amount_credited: bigint;
  amount_remaining: bigint;
  issue_date: string | null;
  due_date: string | null;
}) {
  return {
    id: r.id,
    object: 'invoice',
    customer: r.customer_id,
    number: r.number,
    status: r.status,
    currency: r.currency,
    total: num(r.total),
    amount_due: num(r.amount_due),
    amount_paid: num(r.amount_paid),
    amount_credited: num(r.amount_credited),
    amount_remaining: num(r.amount_remaining),
    issue_date: r.issue_date,
    due_date: r.due_date,
  };
}

/** The payment in an event: no reference text, no card details. */
export function paymentObject(
  r: {
    id: string;
    customer_id: string;
    amount: bigint;
    currency: string;
    method: string;
    received_on: string;
    amount_unapplied: bigint;
  },
  allocations: { invoice_id: string; amount: bigint }[],
) {
  return {
    id: r.id,
    object: 'payment',
    customer: r.customer_id,
    amount: num(r.amount),
    currency: r.currency,
    method: r.method,
    received_on: r.received_on,
    amount_unapplied: num(r.amount_unapplied),
    allocations: allocations.map((a) => ({ invoice: a.invoice_id, amount: num(a.amount) })),
  };
}

/** The refund in an event: no reason text (it may name people). */
export function refundObject(r: {
  id: string;
  customer_id: string;
  payment_id: string | null;
  amount: bigint;
  currency: string;
  status: string;
}) {
  return {
    id: r.id,
    object: 'refund',
    customer: r.customer_id,
    payment: r.payment_id,
    amount: num(r.amount),
    currency: r.currency,
    status: r.status,
  };
}

/** The credit note in an event: no memo. */
export function creditNoteObject(r: {
  id: string;
  invoice_id: string;
  customer_id: string;
  number: string;
  currency: string;
  reason: string;
  total: bigint;
  applied_to_invoice: bigint;
  customer_credit: bigint;
  issue_date: string;
}) {
  return {
    id: r.id,
    object: 'credit_note',
    invoice: r.invoice_id,
    customer: r.customer_id,
    number: r.number,
    currency: r.currency,
    reason: r.reason,
    total: num(r.total),
    applied_to_invoice: num(r.applied_to_invoice),
    customer_credit: num(r.customer_credit),
    issue_date: r.issue_date,
  };
}

/**
 * Emits one event inside the caller's transaction: ONE statement fans it out into the
 * delivery outbox, a row per enabled endpoint that subscribes to the type. With no endpoint
 * it inserts nothing (one index probe); a rolled-back transaction emits nothing.
 * Returns the event id.
 */
export async function emitEvent(
  tx: Tx,
  orgId: string,
  type: WebhookEventType,
  object: Record<string, unknown>,
  now: Date,
): Promise<string> {
  const event = webhookEvent(type, object, now);
  await deliveriesInsert(orgId, type, event.id, sql`${event.payload}`, now).execute(tx);
  return event.id;
}

/** An event's id and signed-over payload text (what every endpoint receives). */
export function webhookEvent(type: WebhookEventType, object: Record<string, unknown>, now: Date) {
  const id = newId('event');
  return {
    id,
    payload: JSON.stringify({ id, type, created: Math.floor(now.getTime() / 1000), data: { object } }),
  };
}

/**
 * The INSERT … SELECT that queues one delivery of an event per enabled endpoint subscribed to its
 * type (ids made in SQL). `payloadSql` is its text: a value, or an expression over a CTE when the
 * statement also computes part of the object (finalisation renders the number in SQL).
 */
export function deliveriesInsert<R = unknown>(
  orgId: string,
  type: WebhookEventType,
  eventId: string,
  payloadSql: RawBuilder<unknown>,
  now: Date,
  from: RawBuilder<unknown> = sql``,
): RawBuilder<R> {
  return sql<R>`INSERT INTO webhook_deliveries
      (org_id, id, endpoint_id, event_id, event_type, payload, status, attempts, next_attempt_at, created_at, updated_at)
    SELECT e.org_id, billvault_new_id('whd'), e.id, ${eventId}, ${type}, ${payloadSql},
           'pending', 0, ${now}, ${now}, ${now}
    FROM webhook_endpoints e ${from}
    WHERE e.org_id = ${orgId} AND e.enabled
      AND (${type} = ANY (e.enabled_events) OR '*' = ANY (e.enabled_events))`;
}

// ---------------------------------------------------------------------------------------------
// Endpoints

type EndpointRow = Selectable<WebhookEndpointsTable>;

export interface WebhookEndpointView {
  id: string;
  object: 'webhook_endpoint';
  url: string;
  description: string | null;
  enabled_events: string[];
  enabled: boolean;
  /** The first characters of the secret, to tell secrets apart; never the secret. */
  secret_hint: string;
  created_at: string;
  updated_at: string;
  secret_rotated_at: string | null;
}

export interface EndpointInput {
  url: string;
  description?: string | null;
  enabled_events: string[];
  enabled?: boolean;
}

const scopeOf = (orgId: string) => ({ orgId });
const hintOf = (secret: string) => `${secret.slice(0, SECRET_PREFIX.length + 4)}…`;

async function toView(deps: BillingDeps, tx: Tx, row: EndpointRow): Promise<WebhookEndpointView> {
  const plain = await webhookEndpointsCrypto.open(deps.cipher, tx, scopeOf(row.org_id), row.id, {
    url_enc: row.url_enc,
  });
  return {
    id: row.id,
    object: 'webhook_endpoint',
    url: plain.url ?? '',
    description: row.description,
    enabled_events: row.enabled_events,
    enabled: row.enabled,
    secret_hint: row.secret_hint,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    secret_rotated_at: row.secret_rotated_at?.toISOString() ?? null,
  };
}

function checkEvents(events: string[]): string[] {
  const unique = [...new Set(events)];
  if (unique.length === 0)
    throw new DomainError('validation_failed', 'Give at least one event type.', 'enabled_events');
  for (const e of unique) {
    if (e !== '*' && !(WEBHOOK_EVENT_TYPES as readonly string[]).includes(e)) {
      throw new DomainError('validation_failed', `Unknown event type ${e.slice(0, 60)}.`, 'enabled_events');
    }
  }
  if (unique.includes('*') && unique.length > 1) {
    throw new DomainError(
      'validation_failed',
      '"*" stands alone: it already means every event.',
      'enabled_events',
    );
  }
  return unique;
}

function checkDescription(d: string | null | undefined): string | null | undefined {
  if (d === undefined || d === null) return d;
  const t = d.trim();
  if (t.length > 500)
    throw new DomainError('validation_failed', 'The description is too long.', 'description');
  return t === '' ? null : t;
}

/**
 * Refuses the call before any outside work when the caller lacks the permission (audited in
 * its own transaction): the URL check below resolves DNS, which must not run in a transaction.
 */
async function precheck(deps: BillingDeps, ctx: Ctx): Promise<void> {
  if (can(ctx.actor, PERMISSION)) return;
  await recordDenied(deps.db, ctx, PERMISSION, 'webhooks');
  throw new DomainError('forbidden', `This action needs the ${PERMISSION} permission.`);
}

/** The SSRF guard at registration: 422 webhook_url_forbidden with the rule that refused it. */
async function checkUrl(deps: WebhookDeps, url: string): Promise<{ url: string; host: string }> {
  try {
    const target = await resolveTarget(url, deps.ssrf ?? STRICT_POLICY, deps.lookup ?? systemLookup);
    return { url: target.url.toString(), host: target.url.hostname.slice(0, 255) };
  } catch (e) {
    if (e instanceof SsrfError) throw new DomainError('webhook_url_forbidden', e.message, 'url');
    throw e;
  }
}

async function loadEndpoint(tx: Tx, id: string, lock = false): Promise<EndpointRow> {
  let q = tx.selectFrom('webhook_endpoints').selectAll().where('id', '=', id).where('deleted_at', 'is', null);
  if (lock) q = q.forUpdate();
  const row = await q.executeTakeFirst();
  if (!row) throw new DomainError('not_found', 'No such webhook endpoint.', 'id');
  return row;
}

/** Registers an endpoint; the reply carries its signing secret, the only time it is shown. */
export async function createWebhookEndpoint(
  deps: WebhookDeps,
  ctx: Ctx,
  input: EndpointInput,
): Promise<WebhookEndpointView & { secret: string }> {
  await precheck(deps, ctx);
  const events = checkEvents(input.enabled_events);
  const description = checkDescription(input.description) ?? null;
  const target = await checkUrl(deps, input.url);
  const id = newId('webhook_endpoint');
  const secret = newSigningSecret();
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, PERMISSION);
    const now = deps.clock.now();
    const sealed = await webhookEndpointsCrypto.seal(deps.cipher, tx, scopeOf(ctx.actor.orgId), id, {
      url: target.url,
      secret,
    });
    const row = await tx
      .insertInto('webhook_endpoints')
      .values({
        org_id: ctx.actor.orgId,
        id,
        url_enc: sealed.url_enc ?? null,
        url_host: target.host,
        secret_enc: sealed.secret_enc ?? null,
        secret_hint: hintOf(secret),
        description,
        enabled_events: events,
        enabled: input.enabled ?? true,
        created_by: ctx.actor.userId ?? ctx.actor.id,
        created_at: now,
        updated_at: now,
        secret_rotated_at: null,
        deleted_at: null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: 'webhook_endpoint.created',
      target: { type: 'webhook_endpoint', id },
      outcome: 'success',
      meta: ctx.meta,
      details: { host: target.host, enabled_events: events, enabled: row.enabled },
    });
    return { ...(await toView(deps, tx, row)), secret };
  });
}

export async function listWebhookEndpoints(
  deps: WebhookDeps,
  ctx: Ctx,
  page: PageParams,
): Promise<ListPage<WebhookEndpointView>> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, PERMISSION);
    const q = tx.selectFrom('webhook_endpoints').selectAll().where('deleted_at', 'is', null);
    const { rows, has_more } = await fetchPage(q, page);
    const data: WebhookEndpointView[] = [];
    for (const r of rows) data.push(await toView(deps, tx, r));
    return { object: 'list', data, has_more };
  });
}

export async function getWebhookEndpoint(
  deps: WebhookDeps,
  ctx: Ctx,
  id: string,
): Promise<WebhookEndpointView> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, PERMISSION);
    return toView(deps, tx, await loadEndpoint(tx, id));
  });
}

export type EndpointPatch = Partial<EndpointInput>;

export async function updateWebhookEndpoint(
  deps: WebhookDeps,
  ctx: Ctx,
  id: string,
  patch: EndpointPatch,
): Promise<WebhookEndpointView> {
  await precheck(deps, ctx);
  const events = patch.enabled_events === undefined ? undefined : checkEvents(patch.enabled_events);
  const description = checkDescription(patch.description);
  const target = patch.url === undefined ? undefined : await checkUrl(deps, patch.url);
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, PERMISSION);
    await loadEndpoint(tx, id, true);
    const now = deps.clock.now();
    const sealed = target
      ? await webhookEndpointsCrypto.seal(deps.cipher, tx, scopeOf(ctx.actor.orgId), id, { url: target.url })
      : {};
    const row = await tx
      .updateTable('webhook_endpoints')
      .set({
        ...(target ? { url_enc: sealed.url_enc ?? null, url_host: target.host } : {}),
        ...(description !== undefined ? { description } : {}),
        ...(events ? { enabled_events: events } : {}),
        ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
        updated_at: now,
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: 'webhook_endpoint.updated',
      target: { type: 'webhook_endpoint', id },
      outcome: 'success',
      meta: ctx.meta,
      details: {
        fields: Object.keys(patch).filter((k) => (patch as Record<string, unknown>)[k] !== undefined),
        ...(target ? { host: target.host } : {}),
        ...(events ? { enabled_events: events } : {}),
        ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
      },
    });
    return toView(deps, tx, row);
  });
}

/**
 * Deletes an endpoint: its URL and secret are shredded (set to null), it receives nothing more,
 * and its waiting deliveries are given up. The delivery history stays for the record.
 */
export async function deleteWebhookEndpoint(
  deps: WebhookDeps,
  ctx: Ctx,
  id: string,
): Promise<{ id: string; deleted: true }> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, PERMISSION);
    const row = await loadEndpoint(tx, id, true);
    const now = deps.clock.now();
    await tx
      .updateTable('webhook_endpoints')
      .set({ url_enc: null, secret_enc: null, enabled: false, deleted_at: now, updated_at: now })
      .where('id', '=', id)
      .execute();
    const dropped = await tx
      .updateTable('webhook_deliveries')
      .set({ status: 'dead', last_error: 'endpoint deleted', claim_token: null, updated_at: now })
      .where('endpoint_id', '=', id)
      .where('status', 'in', ['pending', 'failed'])
      .executeTakeFirst();
    await recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: 'webhook_endpoint.deleted',
      target: { type: 'webhook_endpoint', id },
      outcome: 'success',
      meta: ctx.meta,
      details: { host: row.url_host, deliveries_dropped: Number(dropped.numUpdatedRows) },
    });
    return { id, deleted: true as const };
  });
}

/** Replaces the signing secret at once; the reply carries the new one, the only time it is shown. */
export async function rotateWebhookSecret(
  deps: WebhookDeps,
  ctx: Ctx,
  id: string,
): Promise<WebhookEndpointView & { secret: string }> {
  const secret = newSigningSecret();
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, PERMISSION);
    await loadEndpoint(tx, id, true);
    const now = deps.clock.now();
    const sealed = await webhookEndpointsCrypto.seal(deps.cipher, tx, scopeOf(ctx.actor.orgId), id, {
      secret,
    });
    const row = await tx
      .updateTable('webhook_endpoints')
      .set({
        secret_enc: sealed.secret_enc ?? null,
        secret_hint: hintOf(secret),
        secret_rotated_at: now,
        updated_at: now,
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: 'webhook_endpoint.secret_rotated',
      target: { type: 'webhook_endpoint', id },
      outcome: 'success',
      meta: ctx.meta,
      details: { host: row.url_host },
    });
    return { ...(await toView(deps, tx, row)), secret };
  });
}

// ---------------------------------------------------------------------------------------------
// Delivery log

type DeliveryRow = Selectable<WebhookDeliveriesTable>;

export interface WebhookDeliveryView {
  id: string;
  object: 'webhook_delivery';
  endpoint: string;
  event: { id: string; type: string };
  status: DeliveryRow['status'];
  attempts: number;
  next_attempt_at: string | null;
  last_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  delivered_at: string | null;
  created_at: string;
}

function deliveryView(r: DeliveryRow): WebhookDeliveryView {
  return {
    id: r.id,
    object: 'webhook_delivery',
    endpoint: r.endpoint_id,
    event: { id: r.event_id, type: r.event_type },
    status: r.status,
    attempts: r.attempts,
    next_attempt_at: r.status === 'pending' || r.status === 'failed' ? r.next_attempt_at.toISOString() : null,
    last_attempt_at: r.last_attempt_at?.toISOString() ?? null,
    last_status_code: r.last_status_code,
    last_error: r.last_error,
    delivered_at: r.delivered_at?.toISOString() ?? null,
    created_at: r.created_at.toISOString(),
  };
}

export async function listWebhookDeliveries(
  deps: WebhookDeps,
  ctx: Ctx,
  endpointId: string,
  page: PageParams & { status?: DeliveryRow['status'] | undefined },
): Promise<ListPage<WebhookDeliveryView>> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, PERMISSION);
    await loadEndpoint(tx, endpointId);
    let q = tx.selectFrom('webhook_deliveries').selectAll().where('endpoint_id', '=', endpointId);
    if (page.status) q = q.where('status', '=', page.status);
    const { rows, has_more } = await fetchPage(q, page);
    return { object: 'list', data: rows.map(deliveryView), has_more };
  });
}

/**
 * Sends a delivery again as soon as the dispatcher runs: any delivery of a live endpoint
 * (a dead one gets one more attempt; a delivered one is sent again with the same event id,
 * which receivers use to ignore duplicates).
 */
export async function retryWebhookDelivery(
  deps: WebhookDeps,
  ctx: Ctx,
  id: string,
): Promise<WebhookDeliveryView> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, PERMISSION);
    const found = await tx
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('id', '=', id)
      .forUpdate()
      .executeTakeFirst();
    if (!found) throw new DomainError('not_found', 'No such webhook delivery.', 'id');
    const endpoint = await tx
      .selectFrom('webhook_endpoints')
      .select(['deleted_at', 'enabled'])
      .where('id', '=', found.endpoint_id)
      .executeTakeFirstOrThrow();
    if (endpoint.deleted_at !== null) {
      throw new DomainError('conflict', 'The endpoint of this delivery was deleted.', 'id');
    }
    const now = deps.clock.now();
    if (found.claim_token !== null && found.next_attempt_at > now) {
      throw new DomainError(
        'conflict',
        'This delivery is being sent right now; retry it once it has finished.',
        'id',
      );
    }
    const row = await tx
      .updateTable('webhook_deliveries')
      .set({ status: 'pending', next_attempt_at: now, claim_token: null, updated_at: now })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: 'webhook_delivery.retried',
      target: { type: 'webhook_delivery', id },
      outcome: 'success',
      meta: ctx.meta,
      details: { endpoint: found.endpoint_id, event: found.event_id, previous_status: found.status },
    });
    return deliveryView(row);
  });
}
