// Invoicing throughput through the real HTTP API (API-key auth, policy, encryption, audit,
// ledger and gap-free numbering all on), and list latency over a large invoice table.

import { readdirSync, readFileSync } from 'node:fs';
import { sql } from 'kysely';
import type { Db } from '../../src/adapters/db/index.js';
import { batcherOf, type OrgTxBatcher } from '../../src/app/tx-batch.js';
import { type BenchContext, percentile, type Scenario } from '../harness.js';
import { countRoundTrips, serveBenchApi as serve, serveBenchCluster } from '../http.js';

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 16);
/** Server processes of the `serve --workers` scenario. */
const WORKERS = Number(process.env.BENCH_SERVER_WORKERS ?? 2);

/** CPU time (user + system, ms) of the given Linux processes so far. */
function cpuMs(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // gone
    }
  }
  return ticks * 10; // USER_HZ is 100 on Linux
}

/** How the finalisations shared transactions (src/app/tx-batch.ts) during the measurement. */
function batchFigures(db: Db, before: OrgTxBatcher['counts'], invoices: number): Record<string, number> {
  const now = batcherOf(db).counts;
  const shared = now.shared - before.shared;
  return {
    // finalisations per transaction, alone or shared
    invoices_per_transaction: Number(
      (invoices / Math.max(1, now.transactions - before.transactions)).toFixed(2),
    ),
    shared_transactions: shared,
    callers_per_shared_transaction: Number(
      ((now.sharedCallers - before.sharedCallers) / Math.max(1, shared)).toFixed(2),
    ),
    shared_reruns: now.reruns - before.reruns,
  };
}

/**
 * The pids of this machine's PostgreSQL processes (server, backends, background workers): the
 * bench's database runs here, embedded or external, so its CPU per invoice can be read too.
 */
function postgresPids(): number[] {
  const out: number[] = [];
  try {
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres') out.push(Number(pid));
      } catch {
        // gone
      }
    }
  } catch {
    // no /proc
  }
  return out;
}

/**
 * Create a 10-line invoice and finalize it, 16 clients at a time, for a few seconds: with two
 * requests (POST /v1/invoices, then POST /v1/invoices/{id}/finalize), or with one
 * (POST /v1/invoices with `finalize: true`, one transaction).
 */
async function createAndFinalize(
  ctx: BenchContext,
  flow: 'two_requests' | 'one_request',
  server: 'in_process' | 'serve_workers' = 'in_process',
): Promise<{ value: number; extra: Record<string, number> }> {
  const { db, url } = await ctx.freshDatabase();
  const cluster = server === 'serve_workers' ? await serveBenchCluster(db, url, WORKERS) : undefined;
  const { app, call, drive } = cluster ?? (await serve(db));
  try {
    const rate = (await call('POST', '/v1/tax_rates', {
      name: 'VAT',
      percentage: '20',
      inclusive: false,
      category: 'S',
    })) as {
      id: string;
    };
    const customers: string[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const c = await call('POST', '/v1/customers', {
        name: `Customer ${i}`,
        email: `c${i}@bench.example`,
        tax_id: `DE${100000 + i}`,
      });
      customers.push(c.id as string);
    }
    const lines = Array.from({ length: 10 }, (_, i) => ({
      description: `Line ${i}`,
      quantity: String(1 + (i % 3)),
      unit_amount: 1000 + i * 137,
      tax_rates: [rate.id],
    }));
    const one = async (client: number) => {
      const t0 = process.hrtime.bigint();
      if (flow === 'one_request') {
        const inv = await call('POST', '/v1/invoices', {
          customer: customers[client],
          lines,
          finalize: true,
        });
        if (inv.status !== 'open') throw new Error('not finalized');
      } else {
        const inv = await call('POST', '/v1/invoices', { customer: customers[client], lines });
        await call('POST', `/v1/invoices/${inv.id as string}/finalize`, {});
      }
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    // Round trips to the database per create + finalize pair (authentication included), counted
    // on one client at a time so nothing else is in flight.
    // (Only in this process: the `serve --workers` processes are not counted.)
    const counted = countRoundTrips();
    for (let i = 0; i < 20; i++) await one(i % CLIENTS);
    const roundTrips = cluster ? undefined : counted() / 20;
    // Steady state: the same load for a while first, unmeasured, so the figures are not those of
    // code V8 has not optimised yet (a cold process measured ~25 % lower) nor of cold caches. 10 s:
    // after 3 s V8's compiler threads still took ~10 % of the CPU, and the server's CPU per
    // invoice was ~20 % above its level after 15 s.
    // The clients run on a thread of their own (bench/load-worker.mjs), as if on other machines.
    const flows = customers.map((customer) =>
      flow === 'one_request'
        ? [
            {
              method: 'POST',
              path: '/v1/invoices',
              body: JSON.stringify({ customer, lines, finalize: true }),
            },
          ]
        : [
            { method: 'POST', path: '/v1/invoices', body: JSON.stringify({ customer, lines }) },
            { method: 'POST', path: '/v1/invoices/{id}/finalize', body: '{}' },
          ],
    );
    await drive(flows, Number(process.env.BENCH_WARMUP_MS ?? 10_000), 'open');
    // What autovacuum does on a live system within a minute of the first invoices: without it,
    // the plans each connection cached while the tables were empty (foreign-key checks, the lines
    // guard) may pick an index that reads the org's whole range, and cost grows with the table.
    if (!process.env.BENCH_NO_ANALYZE) await sql`ANALYZE`.execute(db);
    const batch0 = { ...batcherOf(db).counts };
    const cpu0 = process.cpuUsage();
    const elu0 = performance.eventLoopUtilization();
    const serverCpu0 = cluster ? cpuMs(cluster.pids()) : 0;
    const dbPids = postgresPids();
    const dbCpu0 = cpuMs(dbPids);
    const { latencies, seconds: secs } = await drive(
      flows,
      Number(process.env.BENCH_MEASURE_MS ?? 5000),
      'open',
    );
    const cpu = process.cpuUsage(cpu0);
    const elu = performance.eventLoopUtilization(elu0);
    const n = latencies.length;
    const common = {
      p50_ms: percentile(latencies, 50),
      p99_ms: percentile(latencies, 99),
      clients: CLIENTS,
      // CPU of this machine's PostgreSQL processes per invoice (0 where /proc cannot tell)
      db_cpu_ms_per_invoice: Number(((cpuMs(dbPids) - dbCpu0) / n).toFixed(2)),
    };
    if (cluster) {
      return {
        value: n / secs,
        extra: {
          ...common,
          server_processes: WORKERS,
          // CPU of the serve processes (primary and workers) per invoice, and of the load generator
          server_cpu_ms_per_invoice: Number(((cpuMs(cluster.pids()) - serverCpu0) / n).toFixed(2)),
          load_cpu_ms_per_invoice: Number(((cpu.user + cpu.system) / 1000 / n).toFixed(2)),
        },
      };
    }
    return {
      value: n / secs,
      extra: {
        ...common,
        db_round_trips_per_invoice: roundTrips ?? Number.NaN,
        // CPU of this process (server and load-generator threads) per invoice; the database's is not in it.
        node_cpu_ms_per_invoice: (cpu.user + cpu.system) / 1000 / n,
        // how busy the server's own thread was (1 = never idle)
        server_event_loop_utilization: Number(elu.utilization.toFixed(3)),
        ...batchFigures(db, batch0, n),
      },
    };
  } finally {
    await app.close();
  }
}

/** GET /v1/invoices?limit=50 (first page and deep pages) over a table of BENCH_INVOICES (default 1,000,000). */
async function listFromLargeTable(ctx: BenchContext) {
  const total = Number(process.env.BENCH_INVOICES ?? 1_000_000);
  const { db } = await ctx.freshDatabase();
  const { app, org, call } = await serve(db);
  try {
    const c = (await call('POST', '/v1/customers', { name: 'Big Customer' })) as { id: string };
    // Seeding as the owner, in bulk: finalised invoices with one line each.
    const line = JSON.stringify([
      {
        position: 0,
        product_id: null,
        description: 'Seeded line',
        quantity: '1',
        unit_code: 'C62',
        unit_amount: '10000',
        unit_amount_decimal: null,
        discounts: [],
        charges: [],
        tax_rates: [],
        gross_amount: '10000',
        discount_amount: '0',
        charge_amount: '0',
        amount: '10000',
        net_amount: '10000',
      },
    ]);
    await sql`
      INSERT INTO invoices (org_id, id, customer_id, status, number, currency, rounding, issue_date, due_date,
        payment_terms_days, subtotal, line_extension_amount, allowance_total_amount, charge_total_amount,
        tax_exclusive_amount, tax_amount, total, amount_due, amount_remaining, lines, finalized_at, created_at, updated_at)
      SELECT ${org}, 'inv_' || lpad(to_hex(g), 32, '0'), ${c.id}, 'open', 'INV-B-' || g, 'EUR', 'half_up',
        DATE '2026-01-01' + (g % 300), DATE '2026-01-31' + (g % 300), 30, 10000, 10000, 0, 0, 10000, 2000, 12000,
        12000, 12000, ${line}::json, now(), now() - make_interval(secs => ${total} - g), now()
      FROM generate_series(1, ${total}) AS g`.execute(db);
    // What the table is like on a live system, where autovacuum has long run; otherwise the vacuum
    // of a million just-inserted rows (autovacuum's insert threshold) may run during the
    // measurement and take a core.
    await sql`VACUUM ANALYZE invoices`.execute(db);
    const first: number[] = [];
    const deep: number[] = [];
    let cursor: string | undefined;
    for (let i = 0; i < 200; i++) {
      let t0 = process.hrtime.bigint();
      const page = (await call('GET', '/v1/invoices?limit=50')) as { data: { id: string }[] };
      first.push(Number(process.hrtime.bigint() - t0) / 1e6);
      t0 = process.hrtime.bigint();
      const next = (await call(
        'GET',
        `/v1/invoices?limit=50${cursor ? `&starting_after=${cursor}` : ''}`,
      )) as {
        data: { id: string }[];
      };
      deep.push(Number(process.hrtime.bigint() - t0) / 1e6);
      cursor = next.data.at(-1)?.id ?? page.data.at(-1)?.id;
    }
    return {
      value: percentile(first, 99),
      extra: { p50_ms: percentile(first, 50), paging_p99_ms: percentile(deep, 99), invoices: total },
    };
  } finally {
    await app.close();
  }
}

export const scenarios: Scenario[] = [
  {
    name: 'invoices.create_finalize_http',
    unit: 'invoices/s',
    needsDb: true,
    run: (ctx) => createAndFinalize(ctx, 'two_requests'),
  },
  {
    name: 'invoices.create_finalized_1req_http',
    unit: 'invoices/s',
    needsDb: true,
    run: (ctx) => createAndFinalize(ctx, 'one_request'),
  },
  {
    // the same load on `billvault serve --workers N` (BENCH_SERVER_WORKERS, default 2)
    name: 'invoices.create_finalized_1req_serve_workers',
    unit: 'invoices/s',
    needsDb: true,
    run: (ctx) => createAndFinalize(ctx, 'one_request', 'serve_workers'),
  },
  { name: 'invoices.list50_p99', unit: 'ms', needsDb: true, run: listFromLargeTable },
];
