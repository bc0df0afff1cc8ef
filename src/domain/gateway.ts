/**
 * Inbound payment-gateway webhooks, the pure part: the signature header, the timestamp
 * tolerance, and Stripe's event format reduced to what Billvault records. No I/O and no clock:
 * the HMAC itself is computed by the adapter, the time is passed in.
 */

/** How far a signed timestamp may be from now, either way (DESIGN.md §6: 5 minutes). */
export const SIGNATURE_TOLERANCE_SECONDS = 300;

export interface SignatureHeader {
  /** Unix seconds the sender signed at. */
  timestamp: number;
  /** Every `v1=` signature (a sender rolling its secret signs with both): lowercase hex. */
  signatures: string[];
}

const HEX_SHA256 = /^[0-9a-f]{64}$/;

/**
 * Parses `t=<unix>,v1=<hex>[,v1=<hex>…]` (Stripe-Signature and Billvault-Signature). Other
 * schemes (`v0=`) are skipped; a header without exactly one valid `t` and at least one well-formed
 * `v1` is malformed (null).
 */
export function parseSignatureHeader(header: string | undefined): SignatureHeader | null {
  if (typeof header !== 'string' || header.length === 0 || header.length > 4096) return null;
  let timestamp: number | undefined;
  const signatures: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return null;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't') {
      if (timestamp !== undefined || !/^\d{1,12}$/.test(value)) return null;
      timestamp = Number(value);
    } else if (key === 'v1') {
      const hex = value.toLowerCase();
      if (!HEX_SHA256.test(hex)) return null;
      if (signatures.length < 8) signatures.push(hex);
    }
  }
  if (timestamp === undefined || signatures.length === 0) return null;
  return { timestamp, signatures };
}

/** True when the signed timestamp is within the tolerance of now, in the past or the future. */
export function withinTolerance(
  timestamp: number,
  nowMs: number,
  toleranceSeconds = SIGNATURE_TOLERANCE_SECONDS,
): boolean {
  return Math.abs(Math.floor(nowMs / 1000) - timestamp) <= toleranceSeconds;
}

/** What the payment of a gateway event may carry about the card: never its number. */
export interface GatewayCard {
  gateway_token?: string;
  brand?: string;
  last4?: string;
  exp_month?: number;
  exp_year?: number;
}

interface Routing {
  /** `metadata.billvault_org` when well-formed. */
  org: string | null;
  /** `metadata.billvault_invoice` as given (checked by the caller), or null when absent. */
  invoice: string | null;
}

export type GatewayEvent = { id: string; type: string } & Routing &
  (
    | {
        kind: 'payment';
        paymentIntent: string | null;
        charge: string | null;
        amount: bigint;
        currency: string;
        card: GatewayCard;
      }
    | {
        kind: 'refund';
        paymentIntent: string | null;
        charge: string;
        /** Everything refunded on the charge so far (Stripe's figure is cumulative). */
        amountRefunded: bigint;
        currency: string;
        refund: string | null;
      }
    | {
        kind: 'dispute';
        paymentIntent: string | null;
        charge: string | null;
        reason: string | null;
      }
    | { kind: 'other'; why: 'unhandled_type' | 'not_captured' | 'malformed_event' }
  );

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A gateway id we may store and index: letters, digits and underscores, and never a run of 13
 * or more digits (so nothing shaped like a card number is ever kept, whatever the sender put).
 */
export function safeGatewayId(v: unknown): string | null {
  if (typeof v !== 'string' || !/^[A-Za-z0-9_]{1,255}$/.test(v) || /\d{13}/.test(v)) return null;
  return v;
}

const ORG_ID = /^org_[0-9a-z]{32}$/;

function idOf(v: unknown): string | null {
  if (isObj(v)) return safeGatewayId(v.id);
  return safeGatewayId(v);
}

function money(v: unknown): bigint | null {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return null;
  return BigInt(v);
}

function currencyOf(v: unknown): string | null {
  return typeof v === 'string' && /^[A-Za-z]{3}$/.test(v) ? v.toUpperCase() : null;
}

/** Brand, last four, expiry and the payment method token: each kept only when well-formed. */
function cardOf(details: unknown, token: string | null): GatewayCard {
  const card: GatewayCard = {};
  if (token) card.gateway_token = token;
  if (!isObj(details)) return card;
  if (typeof details.brand === 'string' && /^[a-z_ ]{1,30}$/i.test(details.brand))
    card.brand = details.brand.toLowerCase();
  if (typeof details.last4 === 'string' && /^[0-9]{4}$/.test(details.last4)) card.last4 = details.last4;
  if (typeof details.exp_month === 'number' && Number.isInteger(details.exp_month)) {
    if (details.exp_month >= 1 && details.exp_month <= 12) card.exp_month = details.exp_month;
  }
  if (typeof details.exp_year === 'number' && Number.isInteger(details.exp_year)) {
    if (details.exp_year >= 2000 && details.exp_year <= 2100) card.exp_year = details.exp_year;
  }
  return card;
}

/** `payment_method_details.card` of a charge object, if any. */
function chargeCard(charge: unknown): unknown {
  if (!isObj(charge) || !isObj(charge.payment_method_details)) return undefined;
  return charge.payment_method_details.card;
}

function routing(object: Obj): Routing {
  const metadata = isObj(object.metadata) ? object.metadata : {};
  const org = typeof metadata.billvault_org === 'string' ? metadata.billvault_org : null;
  const invoice = typeof metadata.billvault_invoice === 'string' ? metadata.billvault_invoice : null;
  return {
    org: org !== null && ORG_ID.test(org) ? org : null,
    invoice: invoice !== null && invoice.length <= 100 ? invoice : invoice === null ? null : '',
  };
}

/**
 * Reduces a Stripe event (already verified) to what Billvault records. Returns null when the
 * envelope itself is unusable (no event id or type): such a body cannot be deduplicated.
 */
export function parseStripeEvent(body: unknown): GatewayEvent | null {
  if (!isObj(body)) return null;
  const id = safeGatewayId(body.id);
  const type = typeof body.type === 'string' && /^[a-z0-9_.]{1,100}$/.test(body.type) ? body.type : null;
  if (!id || !type) return null;
  const object = isObj(body.data) && isObj(body.data.object) ? body.data.object : null;
  if (!object) return { id, type, org: null, invoice: null, kind: 'other', why: 'malformed_event' };
  const route = routing(object);
  const malformed = { id, type, ...route, kind: 'other' as const, why: 'malformed_event' as const };

  if (type === 'payment_intent.succeeded' || type === 'charge.succeeded') {
    const isIntent = type === 'payment_intent.succeeded';
    if (!isIntent && object.captured === false) return { ...malformed, why: 'not_captured' };
    const amount = isIntent
      ? (money(object.amount_received) ?? money(object.amount))
      : (money(object.amount_captured) ?? money(object.amount));
    const currency = currencyOf(object.currency);
    const own = idOf(object.id);
    if (!amount || amount <= 0n || !currency || !own) return malformed;
    const pm = object.payment_method;
    const token = idOf(pm);
    let details: unknown = isObj(pm) ? pm.card : undefined;
    let charge: string | null = null;
    let paymentIntent: string | null = null;
    if (isIntent) {
      paymentIntent = own;
      charge = idOf(object.latest_charge);
      details = chargeCard(object.latest_charge) ?? details;
      const legacy =
        isObj(object.charges) && Array.isArray(object.charges.data) ? object.charges.data[0] : null;
      if (legacy) {
        charge ??= idOf(legacy);
        details = details ?? chargeCard(legacy);
      }
    } else {
      charge = own;
      paymentIntent = idOf(object.payment_intent);
      details = chargeCard(object) ?? details;
    }
    return {
      id,
      type,
      ...route,
      kind: 'payment',
      paymentIntent,
      charge,
      amount,
      currency,
      card: cardOf(details, token),
    };
  }

  if (type === 'charge.refunded') {
    const charge = idOf(object.id);
    const amountRefunded = money(object.amount_refunded);
    const currency = currencyOf(object.currency);
    if (!charge || amountRefunded === null || !currency) return malformed;
    const refunds = isObj(object.refunds) && Array.isArray(object.refunds.data) ? object.refunds.data : [];
    return {
      id,
      type,
      ...route,
      kind: 'refund',
      charge,
      paymentIntent: idOf(object.payment_intent),
      amountRefunded,
      currency,
      refund: refunds.length > 0 ? idOf(refunds[0]) : null,
    };
  }

  if (type === 'charge.dispute.created') {
    const charge = idOf(object.charge);
    const paymentIntent = idOf(object.payment_intent);
    if (!charge && !paymentIntent) return malformed;
    const reason =
      typeof object.reason === 'string' && /^[a-z_]{1,64}$/.test(object.reason) ? object.reason : null;
    return { id, type, ...route, kind: 'dispute', charge, paymentIntent, reason };
  }

  return { id, type, ...route, kind: 'other', why: 'unhandled_type' };
}
