import { inOrg } from '../../src/adapters/db/index.js';
import { createOrg } from '../../src/app/orgs.js';
import { type BenchContext, percentile, type Scenario } from '../harness.js';

/** One org-scoped transaction (SET LOCAL ROLE + app.org_id, RLS on) that inserts one row. */
async function insertTx(ctx: BenchContext, clients: number) {
  const { db } = await ctx.freshDatabase();
  const org = await createOrg(db, { name: 'Bench', baseCurrency: 'EUR' });
  let i = 0;
  const one = async () => {
    const key = `k.${i++}`;
    const t0 = process.hrtime.bigint();
    await inOrg(db, org.id, (tx) =>
      tx.insertInto('org_settings').values({ org_id: org.id, key, value: '1' }).execute(),
    );
    return Number(process.hrtime.bigint() - t0) / 1e3;
  };
  for (let w = 0; w < 50; w++) await one();
  const latencies: number[] = [];
  const durationMs = 2000;
  const start = Date.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (Date.now() - start < durationMs) latencies.push(await one());
    }),
  );
  const secs = (Date.now() - start) / 1000;
  return {
    value: latencies.length / secs,
    extra: { p50_us: percentile(latencies, 50), p99_us: percentile(latencies, 99) },
  };
}

export const scenarios: Scenario[] = [
  { name: 'db.insert_tx.1_client', unit: 'tx/s', needsDb: true, run: (ctx) => insertTx(ctx, 1) },
  { name: 'db.insert_tx.8_clients', unit: 'tx/s', needsDb: true, run: (ctx) => insertTx(ctx, 8) },
];
