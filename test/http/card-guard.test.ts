import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { z } from 'zod';
import { createLogger } from '../../src/adapters/log/logger.js';
import { createOrg } from '../../src/app/orgs.js';
import type { BuiltApp } from '../../src/http/app.js';
import { containsCardNumber, findCardNumber, luhnValid } from '../../src/http/card-guard.js';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let t: TestDatabase;
let app: BuiltApp;
let orgA: string;
const logLines: string[] = [];

// Well-known test PANs (Luhn-valid) of several lengths and brands.
const VISA = '4111111111111111';
const AMEX = '378282246310005';
const MASTERCARD = '5555555555554444';
const DINERS14 = '30569309025904';
const VISA13 = '4222222222222';
const VISA19 = '4111111111111111110';
const DISCOVER = '6011111111111117';
const ORDER_REF_17 = '12345678901234567'; // 17 digits, fails Luhn: an order reference

before(async () => {
  t = await createTestDatabase();
  orgA = (await createOrg(t.db, { name: 'A', baseCurrency: 'EUR' })).id;
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logLines.push(String(chunk));
      cb();
    },
  });
  app = await buildTestApp(t, {
    logger: createLogger('trace', sink),
    authenticate: async () => ({
      kind: 'user',
      id: 'usr_test',
      userId: 'usr_test',
      orgId: orgA,
      role: 'owner',
    }),
    plugins: [
      (a) => {
        a.post(
          '/v1/_test/payment_methods',
          {
            config: {
              auth: { permission: 'payments:write' },
              cardGuard: { exempt: ['processor_reference'] },
            },
            schema: { body: z.record(z.string(), z.unknown()) },
          },
          async (req) => ({ ok: true, keys: Object.keys(req.body) }),
        );
        a.post(
          '/v1/_test/gateway_webhook',
          { config: { auth: { public: true }, cardGuard: false }, schema: { body: z.unknown() } },
          async () => ({ received: true }),
        );
      },
    ],
  });
});
after(async () => {
  await app.close();
  await t.drop();
});

const put = (value: unknown) =>
  app.inject({ method: 'PUT', url: '/v1/settings/invoice.footer', payload: { value } });

describe('card-number guard over HTTP', () => {
  it('refuses a card number in any position of any JSON body, without echoing it', async () => {
    const bodies: [unknown, string][] = [
      [VISA, 'value'],
      [`Pay with ${VISA.replace(/(\d{4})/g, '$1 ').trim()} thanks`, 'value'],
      [AMEX.replace(/^(\d{4})(\d{6})(\d{5})$/, '$1-$2-$3'), 'value'],
      [{ nested: { deeper: [1, 'x', { note: `card: ${MASTERCARD}` }] } }, 'value.nested.deeper.2.note'],
      [[DINERS14], 'value.0'],
      [{ a: VISA13 }, 'value.a'],
      [{ long: `4111 1111 1111 1111 110` }, 'value.long'],
      [Number(VISA), 'value'],
      [{ [VISA]: 'as a key' }, 'value'],
      [`${VISA} 2029`, 'value'], // followed by an expiry year
    ];
    for (const [value, param] of bodies) {
      const res = await put(value);
      assert.equal(res.statusCode, 422, JSON.stringify(value));
      const body = res.json();
      assert.equal(body.error.code, 'card_number_not_allowed');
      assert.equal(body.error.param, param);
      const digitsOnly = res.body.replace(/\D/g, '');
      for (const pan of [VISA, AMEX, MASTERCARD, DINERS14, VISA13])
        assert.ok(!digitsOnly.includes(pan), 'the reply must not echo the number');
    }
    // Nothing was stored.
    const get = await app.inject({ method: 'GET', url: '/v1/settings/invoice.footer' });
    assert.equal(get.json().value, null);
  });

  it('refuses card numbers in the query string and the path too', async () => {
    const q = await app.inject({ method: 'GET', url: `/v1/settings/invoice.footer?q=${VISA}` });
    assert.equal(q.statusCode, 422);
    assert.equal(q.json().error.param, 'query.q');
    // (A distinct number: the access log records the URL path before any hook runs; see the log test.)
    const p = await app.inject({ method: 'GET', url: `/v1/settings/k${DISCOVER}` });
    assert.equal(p.statusCode, 422);
    assert.equal(p.json().error.param, 'params.key');
  });

  it('accepts a 17-digit non-Luhn order reference and ordinary numbers', async () => {
    for (const value of [
      ORDER_REF_17,
      `Order ${ORDER_REF_17}`,
      { amount: 123456, phone: '+44 20 7946 0958', iban: 'GB82 WEST 1234 5698 7654 32' },
      '2026-01-31 12:00',
      '12345678901234567890123', // an unbroken 23-digit reference
    ]) {
      const res = await put(value);
      assert.equal(res.statusCode, 200, JSON.stringify(value));
    }
  });

  it('lets declared token fields through', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/_test/payment_methods',
      payload: {
        gateway_token: VISA,
        payment_method_token: VISA,
        processor_reference: VISA,
        brand: 'visa',
        last4: '1111',
      },
    });
    assert.equal(res.statusCode, 200);
    const bad = await app.inject({
      method: 'POST',
      url: '/v1/_test/payment_methods',
      payload: { gateway_token: 'tok_x', card_number: VISA },
    });
    assert.equal(bad.statusCode, 422);
    assert.equal(bad.json().error.param, 'card_number');
  });

  it('a route may opt out (signed gateway webhooks)', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/_test/gateway_webhook', payload: { id: VISA } });
    assert.equal(res.statusCode, 200);
  });

  it('survives hostile nesting without a stack overflow', async () => {
    const deep = `${'['.repeat(20000)}"${VISA}"${']'.repeat(20000)}`;
    const res = await app.inject({
      method: 'PUT',
      url: '/v1/settings/invoice.footer',
      headers: { 'content-type': 'application/json' },
      payload: `{"value":${deep}}`,
    });
    assert.ok([400, 422].includes(res.statusCode), `status ${res.statusCode}`);
    assert.notEqual(res.statusCode, 500);
  });

  it('never writes a refused card number to the log', () => {
    const all = logLines.join('\n').replace(/[\s-]/g, '');
    assert.ok(logLines.length > 0, 'the logger captured the requests');
    for (const pan of [VISA, AMEX, MASTERCARD, DINERS14, VISA13])
      assert.ok(!all.includes(pan), `log holds ${pan}`);
  });
});

describe('card-number detection', () => {
  it('Luhn', () => {
    for (const pan of [VISA, AMEX, MASTERCARD, DINERS14, VISA13, VISA19]) assert.ok(luhnValid(pan), pan);
    assert.ok(!luhnValid(ORDER_REF_17));
    assert.ok(!luhnValid('4111111111111112'));
    assert.ok(!luhnValid(''));
  });

  it('finds every Luhn-valid 13–19 digit number, however grouped', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 13, max: 19 }),
        fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 19, maxLength: 19 }),
        fc.constantFrom(' ', '-', ''),
        fc.string({ maxLength: 10 }).filter((s) => !/\d/.test(s)),
        (len, digits, sep, prefix) => {
          const body = digits.slice(0, len - 1).join('');
          // Append the check digit that makes the number Luhn-valid.
          let check = 0;
          while (!luhnValid(`${body}${check}`)) check++;
          const pan = `${body}${check}`;
          const grouped = sep ? pan.replace(/(\d{4})(?=\d)/g, `$1${sep}`) : pan;
          return containsCardNumber(`${prefix}${grouped}.`);
        },
      ),
    );
  });

  it('accepts numbers that fail Luhn', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 13, maxLength: 19 }), (digits) => {
        const n = digits.join('');
        fc.pre(!luhnValid(n)); // an unbroken run is judged whole
        return !containsCardNumber(n);
      }),
    );
  });

  it('reports the path but skips exempt keys', () => {
    assert.equal(findCardNumber({ a: { b: [VISA] } }), 'a.b.0');
    assert.equal(findCardNumber({ gateway_token: VISA }), undefined);
    assert.equal(findCardNumber({ x: 'no digits here' }), undefined);
  });
});
