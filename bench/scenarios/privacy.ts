// Privacy operations through the real HTTP API (API key): export a customer with 50 finalised
// invoices (JSON, then CSV), and erase such a customer (buyer details of 50 invoices moved to
// restricted retention, keys shredded, profile cleared) — one transaction each.
import { type BenchContext, percentile, type Scenario } from '../harness.js';
import { serveBenchApi } from '../http.js';

const CUSTOMERS = 8;
const INVOICES = 50;

async function exportAndErase(ctx: BenchContext) {
  const { db } = await ctx.freshDatabase();
  const { app, call } = await serveBenchApi(db);
  try {
    const customers: string[] = [];
    for (let i = 0; i < CUSTOMERS; i++) {
      const c = await call('POST', '/v1/customers', {
        name: `Person ${i}`,
        email: `person${i}@bench.example`,
        tax_id: `DE${100000000 + i}`,
        address: { line1: `${i} Bench Street`, city: 'Berlin', country: 'DE' },
        currency: 'EUR',
      });
      customers.push(c.id as string);
      for (let j = 0; j < INVOICES; j++) {
        const inv = await call('POST', '/v1/invoices', {
          customer: c.id,
          currency: 'EUR',
          notes: `Note ${j} for person ${i}`,
          lines: [
            { description: 'Work', quantity: '3', unit_amount: 12_500 },
            { description: 'Travel', quantity: '1', unit_amount: 4_000 },
          ],
        });
        await call('POST', `/v1/invoices/${inv.id as string}/finalize`, {});
      }
      await call('POST', '/v1/payments', {
        customer: c.id,
        amount: 100_000,
        currency: 'EUR',
        method: 'bank_transfer',
      });
    }
    const time = async (fn: () => Promise<unknown>) => {
      const t0 = process.hrtime.bigint();
      await fn();
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    const exportJson: number[] = [];
    const exportCsv: number[] = [];
    for (const c of customers) {
      exportJson.push(await time(() => call('GET', `/v1/customers/${c}/export`)));
      exportCsv.push(await time(() => call('GET', `/v1/customers/${c}/export?format=csv`)));
    }
    const erase: number[] = [];
    for (const c of customers)
      erase.push(
        await time(() => call('POST', `/v1/customers/${c}/erase`, { reason: 'data_subject_request' })),
      );
    return {
      value: percentile(erase, 50),
      extra: {
        erase_max_ms: Math.max(...erase),
        export_json_p50_ms: percentile(exportJson, 50),
        export_csv_p50_ms: percentile(exportCsv, 50),
        invoices_per_customer: INVOICES,
        customers: CUSTOMERS,
      },
    };
  } finally {
    await app.close();
  }
}

export const scenarios: Scenario[] = [
  {
    name: 'privacy.export_erase_50_invoices',
    unit: 'ms per erasure (p50)',
    needsDb: true,
    run: exportAndErase,
  },
];
