// Payment throughput through the real HTTP API: record a payment and allocate it (automatically,
// oldest due first) with 16 clients, each paying down its own customer's open invoices. Every
// request locks the invoices, posts a journal entry, encrypts the reference and writes the audit.
import { type BenchContext, percentile, type Scenario } from '../harness.js';
import { serveBenchApi } from '../http.js';

const CLIENTS = 16;

async function recordAndAllocate(ctx: BenchContext) {
  const { db } = await ctx.freshDatabase();
  const { app, call: send } = await serveBenchApi(db);
  const call = (path: string, body: unknown) => send('POST', path, body);
  try {
    const customers: string[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const c = await call('/v1/customers', { name: `Payer ${i}` });
      customers.push(c.id as string);
      // three large open invoices each: the payments below never run out of something to settle
      for (let j = 0; j < 3; j++) {
        const inv = await call('/v1/invoices', {
          customer: c.id,
          currency: 'EUR',
          lines: [{ description: 'Retainer', quantity: '1', unit_amount: 1_000_000_000 }],
        });
        await call(`/v1/invoices/${inv.id as string}/finalize`, {});
      }
    }
    let n = 0;
    const one = async (client: number) => {
      const t0 = process.hrtime.bigint();
      await call('/v1/payments', {
        customer: customers[client],
        amount: 12_345,
        currency: 'EUR',
        method: 'bank_transfer',
        reference: `BENCH-${++n}`,
      });
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    for (let i = 0; i < 20; i++) await one(i % CLIENTS);
    const latencies: number[] = [];
    const start = Date.now();
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        while (Date.now() - start < 5000) latencies.push(await one(c));
      }),
    );
    const secs = (Date.now() - start) / 1000;
    return {
      value: latencies.length / secs,
      extra: { p50_ms: percentile(latencies, 50), p99_ms: percentile(latencies, 99), clients: CLIENTS },
    };
  } finally {
    await app.close();
  }
}

export const scenarios: Scenario[] = [
  { name: 'payments.record_allocate_http', unit: 'payments/s', needsDb: true, run: recordAndAllocate },
];
