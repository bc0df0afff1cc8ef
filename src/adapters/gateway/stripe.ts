import { createHmac, timingSafeEqual } from 'node:crypto';
import type { GatewayProvider } from '../../app/gateway.js';
import { parseSignatureHeader, parseStripeEvent, withinTolerance } from '../../domain/gateway.js';

/** HMAC-SHA256 of `${timestamp}.${rawBody}` under one secret (the secret string is the key, as Stripe does). */
export function signPayload(secret: string, timestamp: number, rawBody: Buffer | string): Buffer {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(rawBody).digest();
}

/** The header a sender would write: `t=<unix>,v1=<hex>` (one v1 per secret). */
export function signatureHeader(
  secrets: readonly string[],
  timestamp: number,
  rawBody: Buffer | string,
): string {
  return [
    `t=${timestamp}`,
    ...secrets.map((s) => `v1=${signPayload(s, timestamp, rawBody).toString('hex')}`),
  ].join(',');
}

/** Verifies a `t=…,v1=…` header: every secret × every v1, each compared in constant time. */
export function verifySignature(
  header: string | undefined,
  rawBody: Buffer,
  secrets: readonly string[],
  nowMs: number,
): boolean {
  const parsed = parseSignatureHeader(header);
  if (!parsed || secrets.length === 0) return false;
  const given = parsed.signatures.map((hex) => Buffer.from(hex, 'hex'));
  let ok = false;
  // No early exit: the work done does not depend on which pair matched.
  for (const secret of secrets) {
    const expected = signPayload(secret, parsed.timestamp, rawBody);
    for (const sig of given) {
      if (sig.length === expected.length && timingSafeEqual(sig, expected)) ok = true;
    }
  }
  return ok && withinTolerance(parsed.timestamp, nowMs);
}

export const stripeGateway: GatewayProvider = {
  name: 'stripe',
  signatureHeaders: ['stripe-signature', 'billvault-signature'],
  verify: verifySignature,
  parse: parseStripeEvent,
};
