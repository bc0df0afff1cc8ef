// Receivables reports over bulk-seeded data (INSERT … SELECT generate_series, not the API):
// AR aging over BENCH_AGING_INVOICES (default 1,000,000) invoices of 100,000 customers, today and
// as of 30 days ago, and one customer's statement with 10,000 documents. Both through the use
// cases (authorisation, audit event, name decryption of the page included).
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { createFieldCipher } from '../../src/adapters/crypto/field-cipher.js';
import { LocalKeyProvider } from '../../src/adapters/crypto/key-provider.js';
import type { Db } from '../../src/adapters/db/index.js';
import { systemCtx } from '../../src/app/context.js';
import { createCustomer } from '../../src/app/customers.js';
import { createOrg } from '../../src/app/orgs.js';
import { systemClock } from '../../src/app/ports.js';
import { agingReport, customerStatement, customerStatementCsv } from '../../src/app/reports.js';
import { type BenchContext, percentile, type Scenario } from '../harness.js';

const RUNS = 9;

function depsFor(db: Db) {
  return {
    db,
    clock: systemClock,
    cipher: createFieldCipher(new LocalKeyProvider([randomBytes(32)], 'bench')),
  };
}

async function timed(runs: number, fn: () => Promise<unknown>) {
  await fn(); // warm-up
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return ms;
}

/** Invoices spread over customers: 45 % open (a third of them part-paid), 50 % paid, 5 % void; 10 % in USD at a recorded rate. */
async function seedInvoices(db: Db, org: string, invoices: number, customers: number) {
  await sql`
    INSERT INTO customers (org_id, id, name_enc, created_at, updated_at)
    SELECT ${org}, 'cus_' || lpad(to_hex(g), 32, '0'), 'bv1:seeded', now(), now()
    FROM generate_series(1, ${customers}) AS g`.execute(db);
  await sql`
    INSERT INTO invoices (org_id, id, customer_id, status, number, currency, rounding, issue_date, due_date,
      payment_terms_days, subtotal, line_extension_amount, allowance_total_amount, charge_total_amount,
      tax_exclusive_amount, tax_amount, total, amount_due, amount_paid, amount_remaining, base_currency, fx_rate,
      total_base, finalized_at, paid_at, voided_at, created_at, updated_at)
    SELECT ${org}, 'inv_' || lpad(to_hex(g), 32, '0'), 'cus_' || lpad(to_hex(1 + (g::bigint * 7919) % ${customers}), 32, '0'),
      CASE WHEN g % 20 = 0 THEN 'void' WHEN g % 20 < 10 THEN 'paid' ELSE 'open' END,
      'INV-B-' || g, CASE WHEN g % 10 = 3 THEN 'USD' ELSE 'EUR' END, 'half_up',
      current_date - 200 + (g % 170), current_date - 170 + (g % 200), 30,
      10000, 10000, 0, 0, 10000, 2000, 12000, 12000,
      CASE WHEN g % 20 < 10 AND g % 20 <> 0 THEN 12000 WHEN g % 3 = 0 THEN 5000 ELSE 0 END,
      CASE WHEN g % 20 = 0 OR g % 20 < 10 THEN 0 WHEN g % 3 = 0 THEN 7000 ELSE 12000 END,
      'EUR', CASE WHEN g % 10 = 3 THEN '0.913' END, CASE WHEN g % 10 = 3 THEN 10956 ELSE 12000 END,
      now(), CASE WHEN g % 20 < 10 AND g % 20 <> 0 THEN now() END, CASE WHEN g % 20 = 0 THEN (current_date - 190 + (g % 170))::timestamp AT TIME ZONE 'UTC' END,
      now(), now()
    FROM generate_series(1, ${invoices}) AS g`.execute(db);
  // payments for a tenth of the paid invoices, received over the last 300 days (the as-of path reads these)
  await sql`
    INSERT INTO payments (org_id, id, customer_id, amount, currency, method, received_on, amount_unapplied, created_at, updated_at)
    SELECT ${org}, 'pay_' || lpad(to_hex(g), 32, '0'), 'cus_' || lpad(to_hex(1 + (g::bigint * 7919) % ${customers}), 32, '0'), 12000,
      CASE WHEN g % 10 = 3 THEN 'USD' ELSE 'EUR' END, 'bank_transfer', current_date - (g % 300), 0,
      now() - make_interval(days => g % 300), now()
    FROM generate_series(1, ${invoices}, 20) AS g`.execute(db);
  await sql`
    INSERT INTO payment_allocations (org_id, id, customer_id, payment_id, invoice_id, source, amount, currency, created_at)
    SELECT ${org}, 'pal_' || lpad(to_hex(g), 32, '0'), 'cus_' || lpad(to_hex(1 + (g::bigint * 7919) % ${customers}), 32, '0'),
      'pay_' || lpad(to_hex(g), 32, '0'), 'inv_' || lpad(to_hex(g), 32, '0'), 'payment', 12000,
      CASE WHEN g % 10 = 3 THEN 'USD' ELSE 'EUR' END, now() - make_interval(days => g % 300)
    FROM generate_series(1, ${invoices}, 20) AS g`.execute(db);
  await sql`VACUUM ANALYZE customers`.execute(db);
  await sql`VACUUM ANALYZE invoices`.execute(db);
  await sql`VACUUM ANALYZE payments`.execute(db);
  await sql`VACUUM ANALYZE payment_allocations`.execute(db);
}

/** AR aging (first page of 20 customers and the totals over all) as of today and as of 30 days ago. */
async function aging(ctx: BenchContext) {
  const invoices = Number(process.env.BENCH_AGING_INVOICES ?? 1_000_000);
  const customers = Math.max(1, Math.floor(invoices / 10));
  const { db } = await ctx.freshDatabase();
  const deps = depsFor(db);
  const org = (await createOrg(db, { name: 'Bench', baseCurrency: 'EUR' })).id;
  const t0 = Date.now();
  await seedInvoices(db, org, invoices, customers);
  const seedSeconds = (Date.now() - t0) / 1000;
  const c = systemCtx(org);
  const today = await timed(RUNS, () => agingReport(deps, c, {}));
  const pastDate = new Date(Date.now() - 30 * 86_400_000).toISOString().slice(0, 10);
  const past = await timed(RUNS, () => agingReport(deps, c, { as_of: pastDate }));
  const v = await agingReport(deps, c, {});
  return {
    value: percentile(today, 50),
    extra: {
      p99_ms: percentile(today, 99),
      as_of_30_days_ago_p50_ms: percentile(past, 50),
      as_of_30_days_ago_p99_ms: percentile(past, 99),
      invoices,
      customers,
      customers_with_open_ar: v.customer_count,
      seed_s: seedSeconds,
    },
  };
}

/** One customer with 10,000 documents (5,000 invoices, 5,000 payments): statement as JSON and the full CSV stream. */
async function statement(ctx: BenchContext) {
  const docs = Number(process.env.BENCH_STATEMENT_DOCS ?? 10_000);
  const { db } = await ctx.freshDatabase();
  const deps = depsFor(db);
  const org = (await createOrg(db, { name: 'Bench', baseCurrency: 'EUR' })).id;
  const c = systemCtx(org);
  const customer = (await createCustomer(deps, c, { name: 'Statement Customer', currency: 'EUR' })).id;
  const half = Math.floor(docs / 2);
  await sql`
    INSERT INTO invoices (org_id, id, customer_id, status, number, currency, rounding, issue_date, due_date,
      payment_terms_days, subtotal, line_extension_amount, allowance_total_amount, charge_total_amount,
      tax_exclusive_amount, tax_amount, total, amount_due, amount_paid, amount_remaining, finalized_at, created_at, updated_at)
    SELECT ${org}, 'inv_' || lpad(to_hex(g), 32, '0'), ${customer}, 'open', 'INV-S-' || g, 'EUR', 'half_up',
      DATE '2020-01-01' + (g % 2000), DATE '2020-01-31' + (g % 2000), 30,
      10000, 10000, 0, 0, 10000, 2000, 12000, 12000, 0, 12000, now(), now(), now()
    FROM generate_series(1, ${half}) AS g`.execute(db);
  await sql`
    INSERT INTO payments (org_id, id, customer_id, amount, currency, method, received_on, amount_unapplied, created_at, updated_at)
    SELECT ${org}, 'pay_' || lpad(to_hex(g), 32, '0'), ${customer}, 11000, 'EUR', 'bank_transfer',
      DATE '2020-01-15' + (g % 2000), 11000, now(), now()
    FROM generate_series(1, ${docs - half}) AS g`.execute(db);
  await sql`VACUUM ANALYZE invoices`.execute(db);
  await sql`VACUUM ANALYZE payments`.execute(db);
  const q = { from: '2020-01-01', to: '2030-12-31' };
  const json = await timed(RUNS, () => customerStatement(deps, c, customer, q));
  let bytes = 0;
  const csv = await timed(3, async () => {
    bytes = 0;
    for await (const chunk of await customerStatementCsv(deps, c, customer, q)) bytes += chunk.length;
  });
  return {
    value: percentile(json, 50),
    extra: {
      p99_ms: percentile(json, 99),
      csv_stream_p50_ms: percentile(csv, 50),
      csv_bytes: bytes,
      documents: docs,
    },
  };
}

export { seedInvoices };

export const scenarios: Scenario[] = [
  { name: 'reports.aging_1m_p50', unit: 'ms', needsDb: true, run: aging },
  { name: 'reports.statement_10k_p50', unit: 'ms', needsDb: true, run: statement },
];
