// Gateway webhook intake through the real HTTP API: 16 concurrent senders post signed
// payment_intent.succeeded events (each a new event paying part of its customer's invoice):
// org routing, signature check, the dedupe claim, the payment with allocation, ledger and audit.
// Then the same events replayed: what a duplicate delivery costs.
import { randomBytes } from 'node:crypto';
import { signatureHeader } from '../../src/adapters/gateway/stripe.js';
import { type BenchContext, percentile, type Scenario } from '../harness.js';
import { serveBenchApi } from '../http.js';

const CLIENTS = 16;
const SECRET = `whsec_bench_${randomBytes(16).toString('hex')}`;

async function intake(ctx: BenchContext) {
  const { db } = await ctx.freshDatabase();
  const { app, org, call } = await serveBenchApi(db);
  try {
    await call('PUT', '/v1/settings/gateways/stripe', { webhook_secret: SECRET });
    const invoices: string[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const c = await call('POST', '/v1/customers', { name: `Card payer ${i}` });
      const inv = await call('POST', '/v1/invoices', {
        customer: c.id,
        currency: 'EUR',
        lines: [{ description: 'Retainer', quantity: '1', unit_amount: 1_000_000_000 }],
      });
      await call('POST', `/v1/invoices/${inv.id as string}/finalize`, {});
      invoices.push(inv.id as string);
    }
    const addr = app.server.address();
    const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/v1/webhooks/gateway/stripe`;
    const sent: string[] = [];
    let n = 0;
    const deliver = async (raw: string) => {
      const t0 = process.hrtime.bigint();
      const r = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'stripe-signature': signatureHeader([SECRET], Math.floor(Date.now() / 1000), raw),
        },
        body: raw,
      });
      const body = (await r.json()) as { outcome?: string };
      if (r.status !== 200) throw new Error(`webhook → ${r.status} ${JSON.stringify(body)}`);
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    const event = (client: number) =>
      JSON.stringify({
        id: `evt_bench${++n}`,
        type: 'payment_intent.succeeded',
        data: {
          object: {
            id: `pi_bench${n}`,
            amount: 1_234,
            amount_received: 1_234,
            currency: 'eur',
            payment_method: `pm_bench${n}`,
            latest_charge: {
              id: `ch_bench${n}`,
              payment_method_details: {
                card: { brand: 'visa', last4: '4242', exp_month: 12, exp_year: 2030 },
              },
            },
            metadata: { billvault_invoice: invoices[client], billvault_org: org },
          },
        },
      });
    for (let i = 0; i < 20; i++) await deliver(event(i % CLIENTS));
    const latencies: number[] = [];
    const start = Date.now();
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        while (Date.now() - start < 5000) {
          const raw = event(c);
          sent.push(raw);
          latencies.push(await deliver(raw));
        }
      }),
    );
    const secs = (Date.now() - start) / 1000;
    // replays of events already recorded: signature check + claim conflict + audit only
    const dupLatencies: number[] = [];
    const replay = sent.slice(0, 400);
    const dupStart = Date.now();
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        for (let i = c; i < replay.length; i += CLIENTS)
          dupLatencies.push(await deliver(replay[i] as string));
      }),
    );
    const dupSecs = (Date.now() - dupStart) / 1000;
    return {
      value: latencies.length / secs,
      extra: {
        p50_ms: percentile(latencies, 50),
        p99_ms: percentile(latencies, 99),
        clients: CLIENTS,
        duplicates_per_s: Math.round(dupLatencies.length / dupSecs),
        duplicate_p99_ms: percentile(dupLatencies, 99),
      },
    };
  } finally {
    await app.close();
  }
}

export const scenarios: Scenario[] = [
  { name: 'gateway.webhook_payment_http', unit: 'events/s', needsDb: true, run: intake },
];
