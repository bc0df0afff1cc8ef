import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from 'kysely';
import { createFieldCipher } from '../../src/adapters/crypto/field-cipher.js';
import { LocalKeyProvider } from '../../src/adapters/crypto/key-provider.js';
import { inOrg } from '../../src/adapters/db/index.js';
import { parseAllowList } from '../../src/adapters/net/ssrf.js';
import { systemCtx } from '../../src/app/context.js';
import { createOrg } from '../../src/app/orgs.js';
import { systemClock } from '../../src/app/ports.js';
import { WebhookDispatcher } from '../../src/app/webhook-dispatcher.js';
import { createWebhookEndpoint, emitEvent } from '../../src/app/webhooks.js';
import type { BenchContext, Scenario } from '../harness.js';

const DEV = { devMode: true, allow: parseAllowList('') };
const object = {
  id: 'inv_00000000000000000000000000000000',
  object: 'invoice',
  total: 1000,
  currency: 'EUR',
};

/**
 * The cost emitEvent adds to a business transaction: microseconds per call inside one org
 * transaction, for an org with no endpoint (the common case: one index probe, no row) and
 * with three subscribed endpoints (three outbox rows).
 */
async function emitCost(ctx: BenchContext, endpoints: number) {
  const { db } = await ctx.freshDatabase();
  const cipher = createFieldCipher(new LocalKeyProvider([randomBytes(32)], 'bench'));
  const org = (await createOrg(db, { name: 'Bench', baseCurrency: 'EUR' })).id;
  for (let i = 0; i < endpoints; i++) {
    await createWebhookEndpoint({ db, cipher, clock: systemClock, ssrf: DEV }, systemCtx(org), {
      url: `http://127.0.0.1:9/hook${i}`,
      enabled_events: ['*'],
    });
  }
  const N = 2000;
  const times: number[] = [];
  for (let round = 0; round < 5; round++) {
    await inOrg(db, org, async (tx) => {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < N; i++) await emitEvent(tx, org, 'invoice.finalized', object, new Date());
      times.push(Number(process.hrtime.bigint() - t0) / 1000 / N);
    });
  }
  // the same loop with a trivial statement: one round trip, for comparison
  const base: number[] = [];
  for (let round = 0; round < 5; round++) {
    await inOrg(db, org, async (tx) => {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < N; i++) await sql`SELECT 1`.execute(tx);
      base.push(Number(process.hrtime.bigint() - t0) / 1000 / N);
    });
  }
  times.sort((a, b) => a - b);
  base.sort((a, b) => a - b);
  const rows = await sql<{ n: string }>`SELECT count(*)::text AS n FROM webhook_deliveries`.execute(db);
  return {
    value: Number((times[2] ?? 0).toFixed(1)),
    extra: { select_1_us: Number((base[2] ?? 0).toFixed(1)), rows_written: Number(rows.rows[0]?.n ?? 0) },
  };
}

/** Deliveries per second from the outbox to a receiver on loopback (batch 50, 8 in flight). */
async function dispatchThroughput(ctx: BenchContext) {
  const { db } = await ctx.freshDatabase();
  const cipher = createFieldCipher(new LocalKeyProvider([randomBytes(32)], 'bench'));
  const org = (await createOrg(db, { name: 'Bench', baseCurrency: 'EUR' })).id;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  try {
    await createWebhookEndpoint({ db, cipher, clock: systemClock, ssrf: DEV }, systemCtx(org), {
      url: `http://127.0.0.1:${port}/hook`,
      enabled_events: ['*'],
    });
    const N = 2000;
    await inOrg(db, org, async (tx) => {
      for (let i = 0; i < N; i++) await emitEvent(tx, org, 'invoice.paid', object, new Date());
    });
    const d = new WebhookDispatcher(db, cipher, { ssrf: DEV });
    const t0 = process.hrtime.bigint();
    let sent = 0;
    for (;;) {
      const s = await d.runOnce(new Date(Date.now() + 1000));
      sent += s.succeeded;
      if (s.claimed === 0) break;
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    return { value: Math.round(sent / secs), extra: { delivered: sent } };
  } finally {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
}

export const scenarios: Scenario[] = [
  { name: 'webhooks.emit_no_endpoint', unit: 'µs/emit', needsDb: true, run: (c) => emitCost(c, 0) },
  { name: 'webhooks.emit_3_endpoints', unit: 'µs/emit', needsDb: true, run: (c) => emitCost(c, 3) },
  { name: 'webhooks.dispatch_loopback', unit: 'deliveries/s', needsDb: true, run: dispatchThroughput },
];
