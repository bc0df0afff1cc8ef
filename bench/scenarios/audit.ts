import { sql } from 'kysely';
import { inOrg } from '../../src/adapters/db/index.js';
import {
  benchmarkOnlySkipAudit,
  type CanonicalAuditEvent,
  isoMicros,
  recordAudit,
} from '../../src/app/audit.js';
import { AuditSealer, chainHash, GENESIS_HASH, verifyChain } from '../../src/app/audit-chain.js';
import { createOrg } from '../../src/app/orgs.js';
import { type BenchContext, percentile, type Scenario } from '../harness.js';
import { serveBenchApi } from '../http.js';

const EVENTS = Number(process.env.BENCH_AUDIT_EVENTS ?? 1_000_000);
const CHUNK = 10_000;

/**
 * Verify speed: a chain of BENCH_AUDIT_EVENTS events (default 1,000,000), seeded in bulk
 * (events and chain rows built like the writers and the sealer would, inserted with
 * INSERT … SELECT FROM unnest(…) in chunks), then `verifyChain` over all of it.
 */
async function verifySpeed(ctx: BenchContext) {
  const { db } = await ctx.freshDatabase();
  const org = await createOrg(db, { name: 'Bench', baseCurrency: 'EUR' });
  // Seal the org.created event first so the seeded events continue its chain.
  await new AuditSealer(db).sealAll();
  const head = await sql<{
    chain_hash: string;
  }>`SELECT chain_hash FROM audit_chain WHERE chain_id = ${org.id}`.execute(db);
  let prev = head.rows[0]?.chain_hash ?? GENESIS_HASH;
  let seq = 1;
  const t0 = Date.now() + 1000;
  const seedStart = process.hrtime.bigint();
  for (let base = 0; base < EVENTS; base += CHUNK) {
    const n = Math.min(CHUNK, EVENTS - base);
    const ev: Record<string, (string | null)[]> = {
      id: [],
      at: [],
      actor: [],
      action: [],
      target: [],
      request: [],
      ip: [],
      details: [],
    };
    const ch: Record<string, string[]> = { seq: [], event: [], content: [], prev: [], hash: [] };
    for (let i = 0; i < n; i++) {
      const k = base + i;
      const e: CanonicalAuditEvent = {
        id: `evt_${k.toString(36).padStart(32, '0')}`,
        org_id: org.id,
        occurred_at: isoMicros(new Date(t0 + k)),
        actor_type: 'user',
        actor_id: `usr_${(k % 50).toString(36).padStart(32, '0')}`,
        session_id: null,
        action: k % 10 === 0 ? 'invoice.finalized' : 'invoice.created',
        target_type: 'invoice',
        target_id: `inv_${k.toString(36).padStart(32, '0')}`,
        outcome: 'success',
        request_id: `req_${k.toString(36).padStart(32, '0')}`,
        ip: '192.0.2.10',
        user_agent: null,
        details: { lines: k % 7, currency: 'EUR', total: k * 100 },
      };
      ev.id?.push(e.id);
      ev.at?.push(e.occurred_at);
      ev.actor?.push(e.actor_id);
      ev.action?.push(e.action);
      ev.target?.push(e.target_id);
      ev.request?.push(e.request_id);
      ev.ip?.push(e.ip);
      ev.details?.push(JSON.stringify(e.details));
    }
    // The database computes each content hash on insert (v3), as it does for every writer.
    const written = await sql<{
      id: string;
      content_hash: string;
    }>`INSERT INTO audit_events (id, org_id, occurred_at,
        actor_type, actor_id, action, target_type, target_id, outcome, request_id, ip, details)
      SELECT id, ${org.id}, at, 'user', actor, action, 'invoice', target, 'success', request, ip, details::jsonb
      FROM unnest(${ev.id}::text[], ${ev.at}::timestamptz[], ${ev.actor}::text[], ${ev.action}::text[], ${ev.target}::text[],
        ${ev.request}::text[], ${ev.ip}::text[], ${ev.details}::text[])
        AS t(id, at, actor, action, target, request, ip, details)
      RETURNING id, content_hash`.execute(db);
    const contentOf = new Map(written.rows.map((r) => [r.id, r.content_hash]));
    for (const id of ev.id as string[]) {
      const content = contentOf.get(id) as string;
      seq++;
      const hash = chainHash(org.id, seq, id, content, prev);
      ch.seq?.push(String(seq));
      ch.event?.push(id);
      ch.content?.push(content);
      ch.prev?.push(prev);
      ch.hash?.push(hash);
      prev = hash;
    }
    await sql`INSERT INTO audit_chain (chain_id, org_id, seq, event_id, content_hash, prev_hash, chain_hash, sealed_at)
      SELECT ${org.id}, ${org.id}, s, ev, c, p, h, now()
      FROM unnest(${ch.seq}::bigint[], ${ch.event}::text[], ${ch.content}::text[], ${ch.prev}::text[], ${ch.hash}::text[])
        AS t(s, ev, c, p, h)`.execute(db);
  }
  const seedSecs = Number(process.hrtime.bigint() - seedStart) / 1e9;
  await sql`ANALYZE audit_events`.execute(db);
  await sql`ANALYZE audit_chain`.execute(db);
  const start = process.hrtime.bigint();
  const report = await verifyChain(db, org.id, { clock: { now: () => new Date(t0 + EVENTS + 1000) } });
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  if (!report.ok) throw new Error(`the seeded chain does not verify: ${JSON.stringify(report.problems[0])}`);
  return {
    value: report.sealed / secs,
    extra: { events: report.sealed, verify_s: Number(secs.toFixed(2)), seed_s: Number(seedSecs.toFixed(1)) },
  };
}

/** Sealing lag (sealed_at − occurred_at) while 16 clients write audited transactions as fast as they can. */
async function sealingLag(ctx: BenchContext) {
  const { db } = await ctx.freshDatabase();
  const org = await createOrg(db, { name: 'Bench', baseCurrency: 'EUR' });
  const intervalMs = Number(process.env.BENCH_AUDIT_SEAL_INTERVAL_MS ?? 1000);
  const sealer = new AuditSealer(db);
  const loop = sealer.start(intervalMs, (e) => {
    throw e;
  });
  const durationMs = 5000;
  const start = Date.now();
  let written = 0;
  await Promise.all(
    Array.from({ length: 16 }, async (_, w) => {
      while (Date.now() - start < durationMs) {
        await inOrg(db, org.id, (tx) =>
          recordAudit(tx, {
            orgId: org.id,
            actor: { kind: 'user', id: `usr_${w}` },
            action: 'invoice.created',
            target: { type: 'invoice', id: `inv_${written}` },
            outcome: 'success',
            details: { w },
          }),
        );
        written++;
      }
    }),
  );
  const writeSecs = (Date.now() - start) / 1000;
  // Wait until everything written is sealed.
  for (;;) {
    const r = await sql<{ n: number }>`SELECT count(*)::int AS n FROM audit_events e
      WHERE e.org_id = ${org.id} AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = e.id)`.execute(
      db,
    );
    if ((r.rows[0]?.n ?? 0) === 0) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  await loop.stop();
  const lags = await sql<{
    ms: number;
  }>`SELECT extract(epoch FROM c.sealed_at - e.occurred_at)::float8 * 1000 AS ms
    FROM audit_chain c JOIN audit_events e ON e.id = c.event_id WHERE c.chain_id = ${org.id}`.execute(db);
  const ms = lags.rows.map((r) => r.ms);
  return {
    value: percentile(ms, 99),
    extra: {
      p50_ms: Number(percentile(ms, 50).toFixed(1)),
      max_ms: Number(Math.max(...ms).toFixed(1)),
      writes_per_s: Math.round(written / writeSecs),
      seal_interval_ms: intervalMs,
    },
  };
}

/**
 * What auditing costs the business: 10-line invoice create + finalize through the HTTP API with
 * 16 clients, in alternating phases with auditing on and off (the benchmark-only switch), in one
 * run; plus raw append rates of recordAudit itself.
 */
async function appendCost(ctx: BenchContext) {
  const { db } = await ctx.freshDatabase();
  const { app, org, call } = await serveBenchApi(db);
  const CLIENTS = 16;
  const phaseMs = Number(process.env.BENCH_AUDIT_PHASE_MS ?? 2500);
  try {
    const rate = (await call('POST', '/v1/tax_rates', {
      name: 'VAT',
      percentage: '20',
      inclusive: false,
      category: 'S',
    })) as { id: string };
    const customers: string[] = [];
    for (let i = 0; i < CLIENTS; i++)
      customers.push(
        (await call('POST', '/v1/customers', { name: `Customer ${i}`, email: `c${i}@bench.example` }))
          .id as string,
      );
    const lines = Array.from({ length: 10 }, (_, i) => ({
      description: `Line ${i}`,
      quantity: String(1 + (i % 3)),
      unit_amount: 1000 + i * 137,
      tax_rates: [rate.id],
    }));
    const one = async (c: number) => {
      const inv = await call('POST', '/v1/invoices', { customer: customers[c], lines });
      await call('POST', `/v1/invoices/${inv.id as string}/finalize`, {});
    };
    const events = async () =>
      Number(
        (
          await sql<{
            n: string;
          }>`SELECT count(*)::text AS n FROM audit_events WHERE org_id = ${org}`.execute(db)
        ).rows[0]?.n,
      );
    const phase = async () => {
      let n = 0;
      const start = Date.now();
      await Promise.all(
        Array.from({ length: CLIENTS }, async (_, c) => {
          while (Date.now() - start < phaseMs) {
            await one(c);
            n++;
          }
        }),
      );
      return { n, secs: (Date.now() - start) / 1000 };
    };
    for (let i = 0; i < 20; i++) await one(i % CLIENTS); // warm-up
    const totals = { on: { n: 0, secs: 0 }, off: { n: 0, secs: 0 } };
    let eventsOn = 0;
    // Pairs of phases in ABBA order (on-off, off-on, …): drift in the machine's load, and the
    // tables growing, hit both modes alike. The figure is the median of the pairs' ratios, which
    // one disturbed phase cannot move the way it moves a pooled ratio.
    const pairs = Number(process.env.BENCH_AUDIT_PAIRS ?? 8);
    const ratios: number[] = [];
    for (let p = 0; p < pairs; p++) {
      const rate = { on: 0, off: 0 };
      for (const mode of p % 2 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
        benchmarkOnlySkipAudit(mode === 'off');
        const before = await events();
        try {
          const r = await phase();
          totals[mode].n += r.n;
          totals[mode].secs += r.secs;
          rate[mode] = r.n / r.secs;
        } finally {
          benchmarkOnlySkipAudit(false);
        }
        if (mode === 'on') eventsOn += (await events()) - before;
      }
      ratios.push(rate.off / rate.on);
    }
    const on = totals.on.n / totals.on.secs;
    const off = totals.off.n / totals.off.secs;

    // Raw appends: 16 clients, one event per transaction; and 1,000 events in one transaction.
    let raw = 0;
    const rawStart = Date.now();
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, w) => {
        while (Date.now() - rawStart < 3000) {
          await inOrg(db, org, (tx) =>
            recordAudit(tx, {
              orgId: org,
              actor: { kind: 'user', id: `usr_${w}` },
              action: 'invoice.created',
              target: { type: 'invoice', id: `inv_${raw}` },
              outcome: 'success',
              details: { w, lines: 10 },
            }),
          );
          raw++;
        }
      }),
    );
    const rawPerS = raw / ((Date.now() - rawStart) / 1000);
    const batchStart = process.hrtime.bigint();
    await inOrg(db, org, async (tx) => {
      for (let i = 0; i < 1000; i++)
        await recordAudit(tx, {
          orgId: org,
          actor: { kind: 'system', id: 'system' },
          action: 'invoice.created',
          target: { type: 'invoice', id: `inv_${i}` },
          outcome: 'success',
          details: { i },
        });
    });
    const batchPerS = 1000 / (Number(process.hrtime.bigint() - batchStart) / 1e9);
    return {
      value: Number(percentile(ratios, 50).toFixed(3)),
      extra: {
        pairs,
        pooled_ratio: Number((off / on).toFixed(3)),
        pair_ratio_min: Number(Math.min(...ratios).toFixed(3)),
        pair_ratio_max: Number(Math.max(...ratios).toFixed(3)),
        audit_on_invoices_per_s: Number(on.toFixed(1)),
        audit_off_invoices_per_s: Number(off.toFixed(1)),
        events_per_invoice: Number((eventsOn / Math.max(1, totals.on.n)).toFixed(2)),
        raw_events_per_s_16_clients_1_per_tx: Math.round(rawPerS),
        raw_events_per_s_one_tx: Math.round(batchPerS),
      },
    };
  } finally {
    benchmarkOnlySkipAudit(false);
    await app.close();
  }
}

export const scenarios: Scenario[] = [
  { name: 'audit.append_cost.on_over_off', unit: 'time ratio', needsDb: true, run: appendCost },
  { name: 'audit.verify', unit: 'events/s', needsDb: true, run: verifySpeed },
  { name: 'audit.sealing_lag.16_writers', unit: 'ms p99', needsDb: true, run: sealingLag },
];
