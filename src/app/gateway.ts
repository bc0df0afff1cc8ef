import { sql } from 'kysely';
import { inOrg, inTransaction, SCOPE, type Tx } from '../adapters/db/index.js';
import type { GatewayProviderName } from '../adapters/db/schema-billing.js';
import { DomainError, isDomainError } from '../domain/errors.js';
import type { GatewayEvent } from '../domain/gateway.js';
import { newId } from '../domain/ids.js';
import type { Actor, Permission } from '../domain/permissions.js';
import { recordAudit } from './audit.js';
import { authorize } from './authz.js';
import type { Ctx, RequestMeta } from './context.js';
import { type BillingDeps, customerResource } from './customers.js';
import { listOrgsAsOperator } from './orgs.js';
import { applyCreditIn, lockCustomer, recordPaymentIn, unapplyPaymentIn } from './payments.js';
import { createRefundIn } from './refunds.js';

/**
 * A payment gateway's webhook format: how its deliveries are signed and what its events mean.
 * Implemented in src/adapters/gateway/ (Stripe today); the composition root picks them.
 */
export interface GatewayProvider {
  readonly name: GatewayProviderName;
  /** Request headers that may carry the signature, in order of preference (lowercase). */
  readonly signatureHeaders: readonly string[];
  /** True when the header signs `${t}.${rawBody}` under one of the secrets, within the tolerance of now. */
  verify(header: string | undefined, rawBody: Buffer, secrets: readonly string[], nowMs: number): boolean;
  /** The body reduced to what Billvault records; null when it has no usable event id or type. */
  parse(body: unknown): GatewayEvent | null;
}

export interface GatewayDeps extends BillingDeps {
  providers: Partial<Record<GatewayProviderName, GatewayProvider>>;
  /** A single-org install's secret from the environment (BILLVAULT_STRIPE_WEBHOOK_SECRET). */
  envSecrets?: Partial<Record<GatewayProviderName, string>>;
}

export interface GatewayDelivery {
  rawBody: Buffer;
  /** Request headers, lowercase names. */
  headers: Record<string, string | string[] | undefined>;
  meta: RequestMeta;
}

export interface GatewayReceipt {
  object: 'gateway_event';
  received: true;
  event: string;
  type: string;
  duplicate: boolean;
  outcome: 'processed' | 'ignored';
  reason: string | null;
  payment: string | null;
  refund: string | null;
}

/** What the intake acts with: the system as this gateway, holding only the permissions it needs. */
const GATEWAY_SCOPES: ReadonlySet<Permission> = new Set<Permission>([
  'payments:read',
  'payments:write',
  'refunds:write',
]);

export function gatewayActor(orgId: string, provider: GatewayProviderName): Actor {
  return { kind: 'system', id: `gateway:${provider}`, orgId, role: 'owner', scopes: GATEWAY_SCOPES };
}

const ORG_ID = /^org_[0-9a-z]{32}$/;
const INVOICE_ID = /^inv_[0-9a-z]{32}$/;

const SIGNATURE_MESSAGE = 'The webhook signature is invalid.';

/** One of the org's webhook secrets: current first, then the previous one during a rotation. */
async function orgSecrets(deps: GatewayDeps, tx: Tx, orgId: string, provider: GatewayProviderName) {
  const row = await tx
    .selectFrom('gateway_secrets')
    .select(['secret_enc', 'previous_secret_enc'])
    .where('provider', '=', provider)
    .executeTakeFirst();
  if (!row) return [];
  const open = (column: 'secret_enc' | 'previous_secret_enc', value: string) =>
    deps.cipher.decrypt(tx, { orgId }, { table: 'gateway_secrets', column, rowId: provider }, value);
  const secrets = [await open('secret_enc', row.secret_enc)];
  if (row.previous_secret_enc) secrets.push(await open('previous_secret_enc', row.previous_secret_enc));
  return secrets;
}

/** The role that may read one invoice's or gateway ref's org_id by its exact id (migration 0009). */
const ROUTER_ROLE = 'billvault_router';

/** The org a gateway ref (charge, payment intent) or an invoice id belongs to, read by its exact value. */
async function routeLookup(
  deps: GatewayDeps,
  what: { ref: string; provider: GatewayProviderName } | { invoice: string },
): Promise<string | null> {
  return deps.db.transaction().execute(async (tx) => {
    if ('invoice' in what) {
      await sql`${SCOPE} SELECT set_config('role', ${ROUTER_ROLE}, true), set_config('app.gateway_invoice', ${what.invoice}, true)`.execute(
        tx,
      );
      const r = await tx
        .selectFrom('invoices')
        .select('org_id')
        .where('id', '=', what.invoice)
        .executeTakeFirst();
      return r?.org_id ?? null;
    }
    await sql`${SCOPE} SELECT set_config('role', ${ROUTER_ROLE}, true), set_config('app.gateway_ref', ${what.ref}, true)`.execute(
      tx,
    );
    const r = await tx
      .selectFrom('gateway_refs')
      .select('org_id')
      .where('provider', '=', what.provider)
      .where('ref', '=', what.ref)
      .executeTakeFirst();
    return r?.org_id ?? null;
  });
}

/**
 * Which org an event is for, before anything is trusted: `metadata.billvault_org`, else the org
 * of `metadata.billvault_invoice`, else the org of a payment the gateway ids point to, else the
 * only org. The signature is then checked with that org's secrets, so naming another org only
 * selects the secret an attacker would have to know.
 */
async function resolveOrg(
  deps: GatewayDeps,
  provider: GatewayProviderName,
  event: GatewayEvent | null,
): Promise<string | null> {
  if (event?.org) return event.org;
  if (event?.invoice && INVOICE_ID.test(event.invoice)) {
    const org = await routeLookup(deps, { invoice: event.invoice });
    if (org) return org;
  }
  if (event && (event.kind === 'payment' || event.kind === 'refund' || event.kind === 'dispute')) {
    for (const ref of [event.charge, event.paymentIntent]) {
      if (!ref) continue;
      const org = await routeLookup(deps, { ref, provider });
      if (org) return org;
    }
  }
  const orgs = await listOrgsAsOperator(deps.db);
  return orgs.length === 1 ? (orgs[0]?.id ?? null) : null;
}

async function orgExists(deps: GatewayDeps, orgId: string): Promise<boolean> {
  return inOrg(deps.db, orgId, async (tx) =>
    Boolean(await tx.selectFrom('orgs').select('id').where('id', '=', orgId).executeTakeFirst()),
  );
}

/**
 * The environment's secret (BILLVAULT_STRIPE_WEBHOOK_SECRET) is for a single-org install: it
 * applies only while exactly one org exists, and only to an org without a stored secret.
 */
async function envSecret(deps: GatewayDeps, provider: GatewayProviderName): Promise<string | null> {
  const secret = deps.envSecrets?.[provider];
  if (!secret) return null;
  return (await listOrgsAsOperator(deps.db)).length === 1 ? secret : null;
}

function headerOf(delivery: GatewayDelivery, names: readonly string[]): string | undefined {
  for (const name of names) {
    const v = delivery.headers[name];
    if (typeof v === 'string') return v;
    if (Array.isArray(v)) return undefined; // a repeated signature header is malformed
  }
  return undefined;
}

/**
 * Refuses a delivery with the one generic answer, after writing an audit event (in the org the
 * delivery named when that org exists, else on the platform chain) that says why, for operators.
 */
async function reject(
  deps: GatewayDeps,
  provider: GatewayProviderName,
  orgId: string | null,
  why: string,
  delivery: GatewayDelivery,
): Promise<never> {
  const org = orgId && (await orgExists(deps, orgId)) ? orgId : null;
  await inTransaction(deps.db, { orgId: org }, (tx) =>
    recordAudit(tx, {
      orgId: org,
      actor: { kind: 'system', id: `gateway:${provider}` },
      action: 'gateway.event_rejected',
      outcome: 'denied',
      meta: delivery.meta,
      details: { provider, reason: why },
    }),
  );
  throw new DomainError('signature_invalid', SIGNATURE_MESSAGE);
}

/**
 * The gateway intake: verifies the delivery's signature with the secrets of the org it is for,
 * then records its effect (payment, refund, dispute) and the event itself in one transaction, so
 * a replay (even concurrent) finds the event already there and changes nothing.
 */
export async function receiveGatewayEvent(
  deps: GatewayDeps,
  provider: GatewayProviderName,
  delivery: GatewayDelivery,
): Promise<GatewayReceipt> {
  const adapter = deps.providers[provider];
  if (!adapter) throw new DomainError('not_found', 'No such gateway.');
  let body: unknown;
  try {
    body = JSON.parse(delivery.rawBody.toString('utf8'));
  } catch {
    return reject(deps, provider, null, 'malformed_body', delivery);
  }
  const routed = adapter.parse(body);
  const orgId = await resolveOrg(deps, provider, routed);
  if (!orgId || !ORG_ID.test(orgId)) return reject(deps, provider, null, 'org_unknown', delivery);
  const stored = await inOrg(deps.db, orgId, (tx) => orgSecrets(deps, tx, orgId, provider));
  const env = stored.length > 0 ? null : await envSecret(deps, provider);
  const secrets = env ? [env] : stored;
  if (secrets.length === 0) return reject(deps, provider, orgId, 'no_secret', delivery);
  const header = headerOf(delivery, adapter.signatureHeaders);
  if (!adapter.verify(header, delivery.rawBody, secrets, deps.clock.now().getTime())) {
    return reject(deps, provider, orgId, header ? 'signature_mismatch' : 'signature_missing', delivery);
  }
  // Verified: from here on the body is the gateway's word.
  const event = routed;
  if (!event) {
    await inOrg(deps.db, orgId, (tx) =>
      recordAudit(tx, {
        orgId,
        actor: { kind: 'system', id: `gateway:${provider}` },
        action: 'gateway.event_rejected',
        outcome: 'failed',
        meta: delivery.meta,
        details: { provider, reason: 'no_event_id' },
      }),
    );
    throw new DomainError('bad_request', 'The event has no usable id or type.');
  }
  const ctx: Ctx = { actor: gatewayActor(orgId, provider), meta: delivery.meta };
  for (let attempt = 1; ; attempt++) {
    try {
      return await inOrg(deps.db, orgId, (tx) => processEvent(deps, tx, ctx, provider, event));
    } catch (e) {
      if (e instanceof RefClaimed && attempt < 3) continue; // another event recorded the payment: look again
      if (!isDomainError(e)) throw e;
      // The effect was refused by a business rule (nothing of it was written): keep the event as
      // ignored with the rule's code, so the gateway stops retrying and an operator can see why.
      return inOrg(deps.db, orgId, (tx) =>
        processEvent(deps, tx, ctx, provider, event, { ignore: e.code as string }),
      );
    }
  }
}

class RefClaimed extends Error {}

function minOf(...xs: bigint[]): bigint {
  let m = xs[0] ?? 0n;
  for (const x of xs) if (x < m) m = x;
  return m;
}

interface Effect {
  outcome: 'processed' | 'ignored';
  reason: string | null;
  payment?: string | null;
  refund?: string | null;
  invoice?: string | null;
}

async function processEvent(
  deps: GatewayDeps,
  tx: Tx,
  ctx: Ctx,
  provider: GatewayProviderName,
  event: GatewayEvent,
  opts: { ignore?: string } = {},
): Promise<GatewayReceipt> {
  const orgId = ctx.actor.orgId;
  const now = deps.clock.now();
  // The claim: a concurrent delivery of the same event waits here for this transaction, then
  // finds the row and does nothing.
  const claimed = await tx
    .insertInto('gateway_events')
    .values({
      org_id: orgId,
      provider,
      event_id: event.id,
      event_type: event.type,
      outcome: 'received',
      received_at: now,
    })
    .onConflict((oc) => oc.columns(['org_id', 'provider', 'event_id']).doNothing())
    .returning('event_id')
    .executeTakeFirst();
  if (!claimed) {
    const first = await tx
      .selectFrom('gateway_events')
      .selectAll()
      .where('provider', '=', provider)
      .where('event_id', '=', event.id)
      .executeTakeFirstOrThrow();
    await recordAudit(tx, {
      orgId,
      actor: ctx.actor,
      action: 'gateway.event_duplicate',
      target: { type: 'gateway_event', id: event.id },
      outcome: 'success',
      meta: ctx.meta,
      details: { provider, type: event.type },
    });
    return {
      object: 'gateway_event',
      received: true,
      event: event.id,
      type: event.type,
      duplicate: true,
      outcome: first.outcome === 'processed' ? 'processed' : 'ignored',
      reason: first.reason,
      payment: first.payment_id,
      refund: first.refund_id,
    };
  }
  const effect: Effect = opts.ignore
    ? { outcome: 'ignored', reason: opts.ignore }
    : await applyEvent(deps, tx, ctx, provider, event);
  await tx
    .updateTable('gateway_events')
    .set({
      outcome: effect.outcome,
      reason: effect.reason,
      payment_id: effect.payment ?? null,
      refund_id: effect.refund ?? null,
      invoice_id: effect.invoice ?? null,
      processed_at: now,
    })
    .where('provider', '=', provider)
    .where('event_id', '=', event.id)
    .execute();
  await recordAudit(tx, {
    orgId,
    actor: ctx.actor,
    action: effect.outcome === 'processed' ? 'gateway.event_processed' : 'gateway.event_ignored',
    target: { type: 'gateway_event', id: event.id },
    outcome: 'success',
    meta: ctx.meta,
    details: {
      provider,
      type: event.type,
      ...(effect.reason ? { reason: effect.reason } : {}),
      ...(effect.payment ? { payment: effect.payment } : {}),
      ...(effect.refund ? { refund: effect.refund } : {}),
      ...(effect.invoice ? { invoice: effect.invoice } : {}),
    },
  });
  return {
    object: 'gateway_event',
    received: true,
    event: event.id,
    type: event.type,
    duplicate: false,
    outcome: effect.outcome,
    reason: effect.reason,
    payment: effect.payment ?? null,
    refund: effect.refund ?? null,
  };
}

/** The payment a gateway ref points to in this org, if any. */
async function paymentByRefs(tx: Tx, provider: GatewayProviderName, refs: (string | null)[]) {
  const wanted = refs.filter((r): r is string => r !== null);
  if (wanted.length === 0) return undefined;
  const hit = await tx
    .selectFrom('gateway_refs')
    .select('payment_id')
    .where('provider', '=', provider)
    .where('ref', 'in', wanted)
    .executeTakeFirst();
  if (!hit) return undefined;
  return tx.selectFrom('payments').selectAll().where('id', '=', hit.payment_id).executeTakeFirst();
}

async function applyEvent(
  deps: GatewayDeps,
  tx: Tx,
  ctx: Ctx,
  provider: GatewayProviderName,
  event: GatewayEvent,
): Promise<Effect> {
  switch (event.kind) {
    case 'payment':
      return applyPayment(deps, tx, ctx, provider, event);
    case 'refund':
      return applyRefund(deps, tx, ctx, provider, event);
    case 'dispute':
      return applyDispute(deps, tx, ctx, provider, event);
    default:
      return { outcome: 'ignored', reason: event.why };
  }
}

async function applyPayment(
  deps: GatewayDeps,
  tx: Tx,
  ctx: Ctx,
  provider: GatewayProviderName,
  event: Extract<GatewayEvent, { kind: 'payment' }>,
): Promise<Effect> {
  if (event.invoice === null) return { outcome: 'ignored', reason: 'no_invoice' };
  const invoice = INVOICE_ID.test(event.invoice)
    ? await tx.selectFrom('invoices').selectAll().where('id', '=', event.invoice).executeTakeFirst()
    : undefined;
  // Unknown here (absent, or another org's): acknowledged, never paid, so the gateway stops retrying.
  if (!invoice) return { outcome: 'ignored', reason: 'invoice_not_found' };
  const refs = [event.paymentIntent, event.charge].filter((r): r is string => r !== null);
  const existing = await paymentByRefs(tx, provider, refs);
  if (existing) {
    return {
      outcome: 'ignored',
      reason: 'payment_already_recorded',
      payment: existing.id,
      invoice: invoice.id,
    };
  }
  const paymentId = newId('payment');
  if (refs.length > 0) {
    const inserted = await tx
      .insertInto('gateway_refs')
      .values(refs.map((ref) => ({ org_id: ctx.actor.orgId, provider, ref, payment_id: paymentId })))
      .onConflict((oc) => oc.columns(['org_id', 'provider', 'ref']).doNothing())
      .returning('ref')
      .execute();
    // Another event of the same payment (payment_intent.succeeded and charge.succeeded) got there first.
    if (inserted.length !== refs.length) throw new RefClaimed();
  }
  const payable =
    (invoice.status === 'open' || invoice.status === 'uncollectible') &&
    invoice.currency === event.currency &&
    invoice.amount_remaining > 0n;
  const payment = await recordPaymentIn(
    deps,
    tx,
    ctx,
    {
      customer: invoice.customer_id,
      amount: Number(event.amount),
      currency: event.currency,
      method: 'card',
      reference: event.paymentIntent ?? event.charge,
      // The money was received whatever the invoice's state: what it cannot take is customer credit.
      allocations: payable ? [{ invoice: invoice.id, amount: Number(event.amount) }] : [],
      excess: 'credit',
      card: event.card,
    },
    { id: paymentId, gateway: provider },
  );
  return {
    outcome: 'processed',
    reason: payable ? null : 'invoice_not_payable',
    payment: payment.id,
    invoice: invoice.id,
  };
}

async function applyRefund(
  deps: GatewayDeps,
  tx: Tx,
  ctx: Ctx,
  provider: GatewayProviderName,
  event: Extract<GatewayEvent, { kind: 'refund' }>,
): Promise<Effect> {
  const found = await paymentByRefs(tx, provider, [event.charge, event.paymentIntent]);
  if (!found) return { outcome: 'ignored', reason: 'payment_not_found' };
  await lockCustomer(tx, ctx, found.customer_id, 'refunds:write');
  // Stripe reports the charge's cumulative refunded amount: record what is new since the last event.
  const done = await tx
    .selectFrom('refunds')
    .select(sql<string>`coalesce(sum(amount), 0)::text`.as('total'))
    .where('payment_id', '=', found.id)
    .where('gateway', '=', provider)
    .executeTakeFirstOrThrow();
  const delta = event.amountRefunded - BigInt(done.total);
  if (delta <= 0n) return { outcome: 'ignored', reason: 'already_refunded', payment: found.id };
  if (event.currency !== found.currency)
    return { outcome: 'ignored', reason: 'currency_mismatch', payment: found.id };
  const payment = await tx
    .selectFrom('payments')
    .selectAll()
    .where('id', '=', found.id)
    .executeTakeFirstOrThrow();
  if (delta > payment.amount - payment.amount_refunded) {
    return { outcome: 'ignored', reason: 'amount_exceeds_payment', payment: found.id };
  }
  // The money has left at the gateway: free what the refund needs from the payment's allocations
  // (newest first; those invoices owe it again), refund it, and put back what was freed beyond it.
  const freed: { invoice: string; amount: bigint }[] = [];
  let available = payment.amount_unapplied;
  if (delta > available) {
    const active = await tx
      .selectFrom('payment_allocations')
      .selectAll()
      .where('payment_id', '=', payment.id)
      .where('unapplied_at', 'is', null)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .execute();
    for (const a of active) {
      if (available >= delta) break;
      await unapplyPaymentIn(deps, tx, ctx, payment.id, { allocation: a.id });
      freed.push({ invoice: a.invoice_id, amount: a.amount });
      available += a.amount;
    }
  }
  const refund = await createRefundIn(
    deps,
    tx,
    ctx,
    { payment: payment.id, amount: Number(delta), reason: `Refunded at ${provider}` },
    { provider, ref: event.refund ?? event.charge },
  );
  let surplus = available - delta;
  for (const f of freed) {
    if (surplus <= 0n) break;
    const invoice = await tx
      .selectFrom('invoices')
      .select(['status', 'amount_remaining'])
      .where('id', '=', f.invoice)
      .executeTakeFirstOrThrow();
    if (invoice.status !== 'open') continue;
    const back = minOf(surplus, f.amount, invoice.amount_remaining);
    if (back <= 0n) continue;
    await applyCreditIn(deps, tx, ctx, payment.customer_id, {
      invoice: f.invoice,
      amount: Number(back),
      payment: payment.id,
    });
    surplus -= back;
  }
  return { outcome: 'processed', reason: null, payment: payment.id, refund: refund.id };
}

async function applyDispute(
  deps: GatewayDeps,
  tx: Tx,
  ctx: Ctx,
  provider: GatewayProviderName,
  event: Extract<GatewayEvent, { kind: 'dispute' }>,
): Promise<Effect> {
  const found = await paymentByRefs(tx, provider, [event.charge, event.paymentIntent]);
  if (!found) return { outcome: 'ignored', reason: 'payment_not_found' };
  const customer = await tx
    .selectFrom('customers')
    .select(['org_id', 'owner_user_id'])
    .where('id', '=', found.customer_id)
    .executeTakeFirstOrThrow();
  await authorize(tx, ctx, 'payments:write', customerResource(customer));
  const now = deps.clock.now();
  const updated = await tx
    .updateTable('payments')
    .set({ disputed_at: now, dispute_reason: event.reason, updated_at: now })
    .where('id', '=', found.id)
    .where('disputed_at', 'is', null)
    .returning('id')
    .executeTakeFirst();
  if (!updated) return { outcome: 'ignored', reason: 'already_disputed', payment: found.id };
  await recordAudit(tx, {
    orgId: ctx.actor.orgId,
    actor: ctx.actor,
    action: 'payment.disputed',
    target: { type: 'payment', id: found.id },
    outcome: 'success',
    meta: ctx.meta,
    details: { provider, ...(event.reason ? { reason: event.reason } : {}) },
  });
  return { outcome: 'processed', reason: null, payment: found.id };
}

// ---------------------------------------------------------------------------------------------
// Settings: the org's webhook secrets.

export interface GatewaySettingsView {
  object: 'gateway_settings';
  provider: GatewayProviderName;
  /** A secret is stored for this org (it is never shown). */
  configured: boolean;
  has_previous_secret: boolean;
  /** No stored secret, but the environment's applies (a single-org install). */
  environment_secret: boolean;
  updated_at: string | null;
}

export interface GatewaySecretInput {
  webhook_secret: string;
  /** The secret being rotated out, accepted alongside the new one until removed. */
  previous_webhook_secret?: string | null;
}

async function settingsView(
  deps: GatewayDeps,
  tx: Tx,
  provider: GatewayProviderName,
): Promise<GatewaySettingsView> {
  const row = await tx
    .selectFrom('gateway_secrets')
    .select(['previous_secret_enc', 'updated_at'])
    .where('provider', '=', provider)
    .executeTakeFirst();
  return {
    object: 'gateway_settings',
    provider,
    configured: Boolean(row),
    has_previous_secret: Boolean(row?.previous_secret_enc),
    environment_secret: !row && (await envSecret(deps, provider)) !== null,
    updated_at: row ? row.updated_at.toISOString() : null,
  };
}

/** Whether the org has a webhook secret for the gateway (never the secret itself). */
export async function getGatewaySettings(
  deps: GatewayDeps,
  ctx: Ctx,
  provider: GatewayProviderName,
): Promise<GatewaySettingsView> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'settings:read');
    return settingsView(deps, tx, provider);
  });
}

/** Stores the org's webhook secret (and the one being rotated out), encrypted, audited without them. */
export async function setGatewaySecret(
  deps: GatewayDeps,
  ctx: Ctx,
  provider: GatewayProviderName,
  input: GatewaySecretInput,
): Promise<GatewaySettingsView> {
  if (input.previous_webhook_secret && input.previous_webhook_secret === input.webhook_secret) {
    throw new DomainError(
      'validation_failed',
      'The previous secret must differ from the new one.',
      'previous_webhook_secret',
    );
  }
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'settings:write');
    const orgId = ctx.actor.orgId;
    const seal = (column: 'secret_enc' | 'previous_secret_enc', value: string) =>
      deps.cipher.encrypt(tx, { orgId }, { table: 'gateway_secrets', column, rowId: provider }, value);
    const now = deps.clock.now();
    const values = {
      secret_enc: await seal('secret_enc', input.webhook_secret),
      previous_secret_enc: input.previous_webhook_secret
        ? await seal('previous_secret_enc', input.previous_webhook_secret)
        : null,
      updated_by: ctx.actor.userId ?? ctx.actor.id,
      updated_at: now,
    };
    await tx
      .insertInto('gateway_secrets')
      .values({ org_id: orgId, provider, created_at: now, ...values })
      .onConflict((oc) => oc.columns(['org_id', 'provider']).doUpdateSet(values))
      .execute();
    await recordAudit(tx, {
      orgId,
      actor: ctx.actor,
      action: 'gateway.secret_updated',
      target: { type: 'gateway_settings', id: provider },
      outcome: 'success',
      meta: ctx.meta,
      details: { provider, with_previous: Boolean(input.previous_webhook_secret) },
    });
    return settingsView(deps, tx, provider);
  });
}
