import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { signatureHeader, signPayload, verifySignature } from '../../src/adapters/gateway/stripe.js';
import { parseSignatureHeader, parseStripeEvent, withinTolerance } from '../../src/domain/gateway.js';

const SECRET = 'whsec_unit_test_secret_0123456789';
const OTHER = 'whsec_unit_other_secret_987654321';
const NOW = Date.parse('2026-05-01T12:00:00Z');
const T = NOW / 1000;
const BODY = Buffer.from('{"id":"evt_1","type":"payment_intent.succeeded"}');

describe('signature header parsing', () => {
  it('reads t and every v1, skips other schemes', () => {
    const a = 'a'.repeat(64);
    const b = 'B'.repeat(64);
    assert.deepEqual(parseSignatureHeader(`t=123,v1=${a},v0=${'c'.repeat(64)},v1=${b}`), {
      timestamp: 123,
      signatures: [a, 'b'.repeat(64)],
    });
    assert.deepEqual(parseSignatureHeader(` t=5 , v1=${a}`), { timestamp: 5, signatures: [a] });
  });

  it('refuses malformed headers', () => {
    const a = 'a'.repeat(64);
    for (const h of [
      undefined,
      '',
      'garbage',
      `v1=${a}`,
      't=123',
      `t=abc,v1=${a}`,
      `t=-1,v1=${a}`,
      `t=1,t=2,v1=${a}`,
      `t=1,v1=${'a'.repeat(63)}`,
      `t=1,v1=${'g'.repeat(64)}`,
      `t=1,=x,v1=${a}`,
      `t=1,v1=${a},${'x'.repeat(5000)}`,
    ]) {
      assert.equal(parseSignatureHeader(h), null, String(h));
    }
  });
});

describe('signature verification', () => {
  it('accepts the HMAC-SHA256 of "t.body" keyed by the secret string (as Stripe signs)', () => {
    // computed independently of the adapter
    const hex = createHmac('sha256', SECRET).update(`${T}.${BODY.toString()}`).digest('hex');
    assert.equal(verifySignature(`t=${T},v1=${hex}`, BODY, [SECRET], NOW), true);
    assert.equal(verifySignature(`t=${T},v1=${hex.toUpperCase()}`, BODY, [SECRET], NOW), true);
    assert.equal(signPayload(SECRET, T, BODY).toString('hex'), hex);
  });

  it('refuses another secret, another body, another timestamp', () => {
    const header = signatureHeader([SECRET], T, BODY);
    assert.equal(verifySignature(header, BODY, [OTHER], NOW), false);
    assert.equal(verifySignature(header, Buffer.from(`${BODY.toString()} `), [SECRET], NOW), false);
    assert.equal(verifySignature(header.replace(`t=${T}`, `t=${T + 1}`), BODY, [SECRET], NOW), false);
    assert.equal(verifySignature(header, BODY, [], NOW), false);
    assert.equal(verifySignature(undefined, BODY, [SECRET], NOW), false);
  });

  it('any secret × any v1 matches (rotation)', () => {
    assert.equal(verifySignature(signatureHeader([OTHER, SECRET], T, BODY), BODY, [SECRET], NOW), true);
    assert.equal(verifySignature(signatureHeader([SECRET], T, BODY), BODY, [OTHER, SECRET], NOW), true);
    assert.equal(verifySignature(signatureHeader([OTHER], T, BODY), BODY, [SECRET, OTHER], NOW), true);
    assert.equal(
      verifySignature(signatureHeader(['whsec_nobody_knows_1'], T, BODY), BODY, [SECRET, OTHER], NOW),
      false,
    );
  });

  it('tolerance: 5 minutes either way, inclusive', () => {
    for (const [offset, ok] of [
      [0, true],
      [-300, true],
      [300, true],
      [-301, false],
      [301, false],
      [-86_400, false],
    ] as const) {
      assert.equal(
        verifySignature(signatureHeader([SECRET], T + offset, BODY), BODY, [SECRET], NOW),
        ok,
        `${offset}`,
      );
      assert.equal(withinTolerance(T + offset, NOW), ok);
    }
  });

  it('property: a single flipped byte of the body or the signature is always refused', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), fc.nat(), (bytes, at) => {
        const body = Buffer.from(bytes);
        const header = signatureHeader([SECRET], T, body);
        if (!verifySignature(header, body, [SECRET], NOW)) return false;
        const flipped = Buffer.from(body);
        const i = at % flipped.length;
        flipped[i] = (flipped[i] ?? 0) ^ 0x01;
        const sig = header.slice(header.indexOf('v1=') + 3);
        const j = at % sig.length;
        const other = sig[j] === '0' ? '1' : '0';
        const badSig = `t=${T},v1=${sig.slice(0, j)}${other}${sig.slice(j + 1)}`;
        return (
          !verifySignature(header, flipped, [SECRET], NOW) && !verifySignature(badSig, body, [SECRET], NOW)
        );
      }),
    );
  });
});

describe('Stripe event parsing', () => {
  const pi = (object: Record<string, unknown>) => ({
    id: 'evt_1',
    type: 'payment_intent.succeeded',
    data: { object: { id: 'pi_1', amount: 500, currency: 'eur', ...object } },
  });

  it('keeps only the whitelisted card fields, well-formed', () => {
    const e = parseStripeEvent(
      pi({
        payment_method: 'pm_123',
        latest_charge: {
          id: 'ch_1',
          payment_method_details: {
            card: { brand: 'Visa', last4: '4242', exp_month: 13, exp_year: 2030, number: '4242424242424242' },
          },
        },
        metadata: { billvault_invoice: 'inv_x', billvault_org: 'not-an-org' },
      }),
    );
    assert.equal(e?.kind, 'payment');
    if (e?.kind !== 'payment') return;
    assert.deepEqual(e.card, { gateway_token: 'pm_123', brand: 'visa', last4: '4242', exp_year: 2030 });
    assert.equal(e.charge, 'ch_1');
    assert.equal(e.paymentIntent, 'pi_1');
    assert.equal(e.amount, 500n);
    assert.equal(e.currency, 'EUR');
    assert.equal(e.org, null);
    assert.equal(e.invoice, 'inv_x');
  });

  it('never keeps an id holding a card-number-length digit run; refuses envelopes without id or type', () => {
    const e = parseStripeEvent(
      pi({ payment_method: 'pm_4242424242424242', latest_charge: 'ch_4000056655665556' }),
    );
    assert.equal(e?.kind, 'payment');
    if (e?.kind === 'payment') {
      assert.equal(e.card.gateway_token, undefined);
      assert.equal(e.charge, null);
    }
    assert.equal(parseStripeEvent({ id: 'evt_4242424242424242', type: 'x.y', data: { object: {} } }), null);
    assert.equal(parseStripeEvent({ type: 'x.y' }), null);
    assert.equal(parseStripeEvent({ id: 'evt_1', type: 'Bad Type' }), null);
    assert.equal(parseStripeEvent('nope'), null);
  });

  it('refuses amounts that are not positive safe integers, and uncaptured charges', () => {
    for (const amount of [0, -1, 1.5, 2 ** 60, '100']) {
      const e = parseStripeEvent(pi({ amount, amount_received: undefined }));
      assert.equal(e?.kind, 'other', String(amount));
    }
    const uncaptured = parseStripeEvent({
      id: 'evt_2',
      type: 'charge.succeeded',
      data: { object: { id: 'ch_2', amount: 100, currency: 'usd', captured: false } },
    });
    assert.equal(uncaptured?.kind === 'other' && uncaptured.why, 'not_captured');
  });

  it('reads refunds (cumulative amount) and disputes', () => {
    const r = parseStripeEvent({
      id: 'evt_3',
      type: 'charge.refunded',
      data: {
        object: {
          id: 'ch_3',
          amount_refunded: 250,
          currency: 'jpy',
          payment_intent: 'pi_3',
          refunds: { data: [{ id: 're_1' }] },
        },
      },
    });
    assert.deepEqual(
      r?.kind === 'refund' && [r.charge, r.paymentIntent, r.amountRefunded, r.currency, r.refund],
      ['ch_3', 'pi_3', 250n, 'JPY', 're_1'],
    );
    const d = parseStripeEvent({
      id: 'evt_4',
      type: 'charge.dispute.created',
      data: { object: { id: 'dp_1', charge: 'ch_3', reason: 'fraudulent' } },
    });
    assert.deepEqual(d?.kind === 'dispute' && [d.charge, d.reason], ['ch_3', 'fraudulent']);
    assert.equal(
      parseStripeEvent({ id: 'evt_5', type: 'invoice.paid', data: { object: {} } })?.kind,
      'other',
    );
  });
});
