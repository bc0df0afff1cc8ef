/**
 * Receivables and reports (issue 6): AR aging as of any date, customer statements, DSO, revenue,
 * tax, outstanding and top customers, and the invoice export. Every figure is aggregated in SQL
 * (one statement per report, never row by row in JavaScript); amounts are bigint minor units,
 * converted to the org's base currency with each invoice's recorded finalisation FX rate, exactly
 * (PostgreSQL numeric) and rounded once per invoice in the invoice's rounding mode.
 */
import { type RawBuilder, sql } from 'kysely';
import { customersCrypto } from '../adapters/crypto/encrypted-tables.js';
import { inOrg, type Tx, txOrgScope } from '../adapters/db/index.js';
import { AGING_BOUNDS, AGING_BUCKETS, type AgingBuckets } from '../domain/aging.js';
import { type CsvCell, csvLine } from '../domain/csv.js';
import { addDays, assertIsoDate, type IsoDate } from '../domain/dates.js';
import { DomainError } from '../domain/errors.js';
import { maskName } from '../domain/masking.js';
import { assertCurrency, currencyExponent, knownCurrencyExponents } from '../domain/money.js';
import { can, type Permission } from '../domain/permissions.js';
import {
  assertGroupable,
  daysSalesOutstanding,
  type Period,
  type ReportGroup,
  reportPeriod,
  runningBalance,
  type StatementEntry,
  type StatementLineType,
} from '../domain/reports.js';
import { recordAudit } from './audit.js';
import { authorize } from './authz.js';
import type { Ctx } from './context.js';
import { type BillingDeps, customerResource } from './customers.js';
import { amount, isoDay } from './invoices.js';

// ---------------------------------------------------------------------------------------------
// Shared pieces

const CUSTOMER_ID = /^cus_[0-9a-z]{32}$/;

/** Opens a read transaction (one snapshot for every statement of the report), checks the permission and audits the read. */
async function readReport<T>(
  deps: BillingDeps,
  ctx: Ctx,
  permission: Permission,
  report: string,
  params: Record<string, unknown>,
  fn: (tx: Tx) => Promise<T>,
): Promise<T> {
  return inOrg(
    deps.db,
    ctx.actor.orgId,
    async (tx) => {
      await authorize(tx, ctx, permission);
      // the aggregates group up to one row per customer: keep them in memory, not on disk
      await sql`SET LOCAL work_mem = '64MB'`.execute(tx);
      const out = await fn(tx);
      await recordAudit(tx, {
        orgId: ctx.actor.orgId,
        actor: ctx.actor,
        action: 'report.viewed',
        target: { type: 'report', id: report },
        outcome: 'success',
        meta: ctx.meta,
        details: params,
      });
      return out;
    },
    { isolation: 'repeatable read' },
  );
}

async function baseCurrency(tx: Tx): Promise<string> {
  return (await tx.selectFrom('orgs').select('base_currency').executeTakeFirstOrThrow()).base_currency;
}

/**
 * SQL for a non-negative amount in an invoice's currency converted to the base currency with the
 * invoice's decimal FX rate: exact numeric product, shifted by the exponents, rounded once
 * (half-up or half-even as the invoice says). NULL when the invoice has no rate. `exp` is the
 * exponent of the amount's currency (from `cur`).
 */
function toBase(
  amountSql: RawBuilder<unknown>,
  currencySql: RawBuilder<unknown>,
  rateSql: RawBuilder<unknown>,
  roundingSql: RawBuilder<unknown>,
  base: string,
): RawBuilder<unknown> {
  const baseExp = currencyExponent(base);
  // The shift between the amount's exponent and the base's, as an exact decimal constant per
  // exponent (no power() per row); exponents other than 2 are listed (few codes).
  const shift = (e: number) => {
    const d = baseExp - e;
    return d >= 0 ? `1${'0'.repeat(d)}` : `0.${'0'.repeat(-d - 1)}1`;
  };
  const byExp = new Map<number, string[]>();
  for (const [code, e] of knownCurrencyExponents())
    if (e !== 2) byExp.set(e, [...(byExp.get(e) ?? []), code]);
  const scale = sql`(CASE ${sql.join(
    [...byExp].map(
      ([e, codes]) =>
        sql`WHEN ${currencySql}::text = ANY(${codes}::text[]) THEN ${sql.lit(shift(e))}::numeric`,
    ),
    sql` `,
  )} ELSE ${sql.lit(shift(2))}::numeric END)`;
  // Half-up is floor(x + 0.5); half-even needs x's fraction, so x is computed once in a sub-select.
  return sql`(CASE WHEN ${currencySql} = ${base}::bpchar THEN ${amountSql}::bigint
    WHEN ${rateSql} IS NULL THEN NULL
    WHEN ${roundingSql} <> 'half_even' THEN floor(${amountSql}::numeric * ${rateSql}::numeric * ${scale} + 0.5)
    ELSE (SELECT floor(x) + CASE WHEN x - floor(x) > 0.5 OR (x - floor(x) = 0.5 AND mod(floor(x), 2) = 1) THEN 1 ELSE 0 END
            FROM (SELECT ${amountSql}::numeric * ${rateSql}::numeric * ${scale} AS x) fx)
    END)::bigint`;
}

const big = (v: string | number | bigint | null | undefined): bigint =>
  v === null || v === undefined ? 0n : BigInt(v);

/** Names of customers for display: clear with customers:read_pii, masked otherwise; null when unreadable (erased). */
async function customerNames(
  deps: BillingDeps,
  tx: Tx,
  ctx: Ctx,
  ids: readonly string[],
): Promise<{ names: Map<string, string | null>; unmasked: string[] }> {
  const names = new Map<string, string | null>();
  const unmasked: string[] = [];
  if (ids.length === 0) return { names, unmasked };
  const rows = await tx
    .selectFrom('customers')
    .select(['org_id', 'id', 'name_enc', 'owner_user_id', 'display_name'])
    .where('id', 'in', [...ids])
    .execute();
  for (const r of rows) {
    let name: string | null = null;
    try {
      const plain = await customersCrypto.open(
        deps.cipher,
        tx,
        { orgId: r.org_id, subject: { type: 'customer', id: r.id } },
        r.id,
        { name_enc: r.name_enc },
      );
      name = plain.name;
    } catch {
      name = null; // the customer's key is gone (erased): nothing to show
    }
    if (name !== null && can(ctx.actor, 'customers:read_pii', customerResource(r))) unmasked.push(r.id);
    else if (name !== null) name = maskName(name);
    names.set(r.id, name);
  }
  return { names, unmasked };
}

async function auditPiiRead(tx: Tx, ctx: Ctx, report: string, customers: string[]): Promise<void> {
  if (customers.length === 0) return;
  await recordAudit(tx, {
    orgId: ctx.actor.orgId,
    actor: ctx.actor,
    action: 'customer.pii_listed',
    target: { type: 'report', id: report },
    outcome: 'success',
    meta: ctx.meta,
    details: { customers },
  });
}

function bucketsOf(r: Record<string, string | null>): AgingBuckets {
  return {
    current: big(r.current),
    d1_30: big(r.d1_30),
    d31_60: big(r.d31_60),
    d61_90: big(r.d61_90),
    over_90: big(r.over_90),
  };
}

const bucketsJson = (b: AgingBuckets) =>
  Object.fromEntries(AGING_BUCKETS.map((k) => [k, amount(b[k])])) as Record<keyof AgingBuckets, number>;

// ---------------------------------------------------------------------------------------------
// AR aging

export interface AgingQuery {
  as_of?: string;
  customer?: string;
  limit?: number;
  starting_after?: string;
}

export interface AgingView {
  object: 'aging_report';
  as_of: string;
  currency: string;
  buckets: Record<keyof AgingBuckets, number>;
  total: number;
  customer_count: number;
  customers: {
    customer: string;
    name: string | null;
    buckets: Record<keyof AgingBuckets, number>;
    total: number;
  }[];
  has_more: boolean;
  /** Open invoices in another currency without a recorded FX rate: left out of every figure above. */
  unconverted: { count: number; invoices: string[]; by_currency: { currency: string; amount: number }[] };
}

interface AgingRaw {
  as_of: IsoDate;
  currency: string;
  totals: AgingBuckets;
  total: bigint;
  customerCount: number;
  customers: { customer: string; buckets: AgingBuckets; total: bigint }[];
  hasMore: boolean;
  unconverted: AgingView['unconverted'];
}

/**
 * What was still owed on `asOf` on invoices issued by then (see README "AR aging"): starting from
 * today's open remainders, money that settled an invoice after `asOf` is added back and money
 * taken back after it is taken off again; invoices voided, written off or settled since then come
 * back with the same rule. `adj` holds those changes, per invoice.
 */
function agingItems(
  tx: Tx,
  asOf: IsoDate,
  afterTs: RawBuilder<unknown>,
  customer: string | undefined,
  history: boolean,
): RawBuilder<unknown> {
  // Row-level security limits the rows to the org already; naming it as a value lets the planner
  // see the org's share of the table and read the covering index invoices_aging_open alone (an
  // index-only scan in customer order, no sort) instead of a bitmap scan of the whole table.
  const org = txOrgScope(tx);
  const only = sql`${org ? sql`AND i.org_id = ${org}` : sql``} ${customer ? sql`AND i.customer_id = ${customer}` : sql``}`;
  if (!history) {
    // nothing changed after as_of (the usual case for today): the open remainders as they are
    return sql`
    items AS (
      SELECT i.id, i.customer_id, i.due_date, i.currency, i.fx_rate, i.rounding, i.amount_remaining AS rem
        FROM invoices i
       WHERE i.status = 'open' AND i.issue_date <= ${asOf}::date ${only}
    )`;
  }
  return sql`
    cand_alloc AS (
      SELECT id FROM payment_allocations WHERE created_at >= ${afterTs}
      UNION SELECT id FROM payment_allocations WHERE unapplied_at >= ${afterTs}
      UNION SELECT a.id FROM payment_allocations a
              JOIN payments p ON p.org_id = a.org_id AND p.id = a.payment_id
             WHERE p.received_on > ${asOf}::date
    ),
    adj AS (
      SELECT invoice_id, sum(delta)::bigint AS delta FROM (
        SELECT a.invoice_id,
          (CASE WHEN a.unapplied_at IS NULL THEN a.amount ELSE 0 END)
          - (CASE WHEN (CASE WHEN p.id IS NOT NULL AND a.created_at = p.created_at THEN p.received_on
                             ELSE (a.created_at AT TIME ZONE 'UTC')::date END) <= ${asOf}::date
                   AND (a.unapplied_at IS NULL OR a.unapplied_at >= ${afterTs})
                  THEN a.amount ELSE 0 END) AS delta
          FROM payment_allocations a
          JOIN cand_alloc c ON c.id = a.id
          LEFT JOIN payments p ON p.org_id = a.org_id AND p.id = a.payment_id
        UNION ALL
        SELECT invoice_id, applied_to_invoice FROM credit_notes
         WHERE issue_date > ${asOf}::date AND applied_to_invoice > 0
      ) x GROUP BY invoice_id
    ),
    cand AS (
      SELECT id, sum(delta)::bigint AS delta FROM (
        SELECT invoice_id AS id, delta FROM adj
        UNION ALL SELECT id, 0 FROM invoices WHERE voided_at >= ${afterTs}
        UNION ALL SELECT id, 0 FROM invoices WHERE uncollectible_at >= ${afterTs}
      ) c GROUP BY id
    ),
    items AS (
      -- open invoices nothing happened to after as_of: their remainder as it is
      SELECT i.id, i.customer_id, i.due_date, i.currency, i.fx_rate, i.rounding, i.amount_remaining AS rem
        FROM invoices i
       WHERE i.status = 'open' AND i.issue_date <= ${asOf}::date ${only}
         AND NOT EXISTS (SELECT 1 FROM cand WHERE cand.id = i.id)
      UNION ALL
      -- invoices something happened to after as_of (few): remainder today plus what changed since,
      -- one index lookup each. It can come out negative: a payment received on a past day but
      -- recorded after another allocation to the invoice was unapplied counts from that day, so
      -- the invoice was paid twice over then; rem > 0 in the callers reads that as paid.
      SELECT i.id, i.customer_id, i.due_date, i.currency, i.fx_rate, i.rounding,
             i.amount_due - i.amount_paid - i.amount_credited + cand.delta AS rem
        FROM cand
       CROSS JOIN LATERAL (SELECT * FROM invoices i WHERE i.id = cand.id LIMIT 1) i
       WHERE i.status <> 'draft' AND i.issue_date <= ${asOf}::date ${only}
         AND (i.voided_at IS NULL OR i.voided_at >= ${afterTs})
         AND (i.uncollectible_at IS NULL OR i.uncollectible_at >= ${afterTs})
    )`;
}

/** Whether anything that moves a receivable happened after `asOf` (each test is one index probe). */
async function changedSince(tx: Tx, asOf: IsoDate, afterTs: RawBuilder<unknown>): Promise<boolean> {
  const r = await sql<{ changed: boolean }>`
    SELECT EXISTS (SELECT 1 FROM payment_allocations WHERE created_at >= ${afterTs})
        OR EXISTS (SELECT 1 FROM payment_allocations WHERE unapplied_at >= ${afterTs})
        OR EXISTS (SELECT 1 FROM payments WHERE received_on > ${asOf}::date)
        OR EXISTS (SELECT 1 FROM credit_notes WHERE issue_date > ${asOf}::date)
        OR EXISTS (SELECT 1 FROM invoices WHERE voided_at >= ${afterTs})
        OR EXISTS (SELECT 1 FROM invoices WHERE uncollectible_at >= ${afterTs}) AS changed`.execute(tx);
  return r.rows[0]?.changed ?? true;
}

/**
 * The aging aggregate as of `asOf`: open remainder on that date of every invoice issued on or
 * before it and not voided or written off by then, bucketed by days past its due date, per
 * customer (one SQL aggregate); totals over all customers and one page of customers after
 * `startingAfter`.
 */
export async function agingAggregate(
  tx: Tx,
  asOf: IsoDate,
  opts: { customer?: string; limit: number; startingAfter?: string },
): Promise<AgingRaw> {
  const base = await baseCurrency(tx);
  const after = addDays(asOf, 1, 'as_of'); // events at or after midnight UTC of the next day are later than as_of
  const afterTs = sql`(${after}::date::timestamp AT TIME ZONE 'UTC')`;
  // the first day past due of each bucket boundary: due on or after d1 is at most 30 days past due, …
  const [d1, d2, d3] = AGING_BOUNDS.map((b) => addDays(asOf, -b, 'as_of'));
  const history = await changedSince(tx, asOf, afterTs);
  // One large aggregate, planned for what it is (for this transaction only): JIT compilation
  // costs more than it saves (~60 ms at 1M invoices); the per-customer grouping of the as-of path
  // needs more than the default 4 MB not to spill to disk; and index pages are as cheap to reach as
  // heap pages on an SSD, so the narrow covering index wins over a bitmap scan of the table.
  await sql`SELECT set_config('jit', 'off', true), set_config('work_mem', '64MB', true),
    set_config('random_page_cost', '1.1', true)`.execute(tx);
  const r = await sql<Record<string, string | null> & { kind: string; customer_id: string | null }>`
    WITH ${agingItems(tx, asOf, afterTs, opts.customer, history)},
    per_customer AS (
      -- days past due = as_of − due_date, compared as dates: d1_30 is due in [as_of − 30, as_of − 1], …
      SELECT x.customer_id,
             sum(x.amt) FILTER (WHERE x.due_date >= ${asOf}::date) AS current,
             sum(x.amt) FILTER (WHERE x.due_date < ${asOf}::date AND x.due_date >= ${d1}::date) AS d1_30,
             sum(x.amt) FILTER (WHERE x.due_date < ${d1}::date AND x.due_date >= ${d2}::date) AS d31_60,
             sum(x.amt) FILTER (WHERE x.due_date < ${d2}::date AND x.due_date >= ${d3}::date) AS d61_90,
             sum(x.amt) FILTER (WHERE x.due_date < ${d3}::date) AS over_90,
             sum(x.amt) AS total,
             count(*) FILTER (WHERE x.amt IS NULL) AS missing
        -- OFFSET 0 keeps the conversion in the sub-select: computed once per invoice, not once per
        -- aggregate. Today's aging reads in customer order: the covering index delivers it as
        -- stored, so the grouping streams instead of sorting half a million rows. The as-of path
        -- merges two sets, so it groups by hash instead (in memory: see work_mem above).
        FROM (SELECT it.customer_id, it.due_date,
                     ${toBase(sql`it.rem`, sql`it.currency`, sql`it.fx_rate`, sql`it.rounding`, base)} AS amt
                FROM items it WHERE it.rem > 0 ${history ? sql`` : sql`ORDER BY it.customer_id`} OFFSET 0) x
       GROUP BY x.customer_id
    )
    SELECT 'total' AS kind, NULL AS customer_id, sum(current)::text AS current, sum(d1_30)::text AS d1_30,
           sum(d31_60)::text AS d31_60, sum(d61_90)::text AS d61_90, sum(over_90)::text AS over_90,
           sum(total)::text AS total, count(total)::text AS customers, sum(missing)::text AS missing_count
      FROM per_customer
    UNION ALL
    (SELECT 'customer', customer_id, current::text, d1_30::text, d31_60::text, d61_90::text, over_90::text,
            total::text, NULL, NULL
       FROM per_customer WHERE total IS NOT NULL AND customer_id > ${opts.startingAfter ?? ''}
      ORDER BY customer_id LIMIT ${opts.limit + 1})`.execute(tx);
  const totalRow = r.rows.find((x) => x.kind === 'total');
  const rows = r.rows.filter((x) => x.kind === 'customer');
  const missingCount = Number(totalRow?.missing_count ?? 0);
  const unconverted: AgingView['unconverted'] = { count: missingCount, invoices: [], by_currency: [] };
  if (missingCount > 0) {
    // rare (foreign invoices finalised without a rate): name them, from the same definition
    const m = await sql<{ ids: string | null; by_currency: string | null }>`
      WITH ${agingItems(tx, asOf, afterTs, opts.customer, history)},
      t AS (SELECT id, currency::text AS currency, rem FROM items
             WHERE rem > 0 AND currency::text <> ${base} AND fx_rate IS NULL)
      SELECT (SELECT json_agg(id ORDER BY id)::text FROM (SELECT id FROM t ORDER BY id LIMIT 100) x) AS ids,
             (SELECT json_agg(json_build_object('currency', currency, 'amount', s::text) ORDER BY currency)::text
                FROM (SELECT currency, sum(rem) AS s FROM t GROUP BY currency) y) AS by_currency`.execute(tx);
    unconverted.invoices = JSON.parse(m.rows[0]?.ids ?? '[]') as string[];
    unconverted.by_currency = (
      JSON.parse(m.rows[0]?.by_currency ?? '[]') as { currency: string; amount: string }[]
    ).map((x) => ({ currency: x.currency, amount: amount(BigInt(x.amount)) }));
  }
  return {
    as_of: asOf,
    currency: base,
    totals: bucketsOf(totalRow ?? {}),
    total: big(totalRow?.total),
    customerCount: Number(totalRow?.customers ?? 0),
    customers: rows
      .slice(0, opts.limit)
      .map((c) => ({ customer: c.customer_id as string, buckets: bucketsOf(c), total: big(c.total) })),
    hasMore: rows.length > opts.limit,
    unconverted,
  };
}

function parseAgingQuery(deps: BillingDeps, q: AgingQuery, maxLimit: number) {
  const asOf = q.as_of ? assertIsoDate(q.as_of, 'as_of') : isoDay(deps.clock.now());
  const limit = q.limit ?? 20;
  if (!Number.isInteger(limit) || limit < 1 || limit > maxLimit) {
    throw new DomainError(
      'validation_failed',
      `limit must be a whole number from 1 to ${maxLimit}.`,
      'limit',
    );
  }
  if (q.customer !== undefined && !CUSTOMER_ID.test(q.customer))
    throw new DomainError('validation_failed', 'customer must be a customer id.', 'customer');
  if (q.starting_after !== undefined && !CUSTOMER_ID.test(q.starting_after))
    throw new DomainError('validation_failed', 'starting_after must be a customer id.', 'starting_after');
  return { asOf, limit };
}

/** `GET /v1/reports/aging`: AR aging in the base currency, one page of customers (names masked without customers:read_pii). */
export async function agingReport(
  deps: BillingDeps,
  ctx: Ctx,
  q: AgingQuery,
  maxLimit = 100,
): Promise<AgingView> {
  const { asOf, limit } = parseAgingQuery(deps, q, maxLimit);
  return readReport(
    deps,
    ctx,
    'reports:read',
    'aging',
    { as_of: asOf, customer: q.customer ?? null },
    async (tx) => {
      const raw = await agingAggregate(tx, asOf, {
        limit,
        ...(q.customer ? { customer: q.customer } : {}),
        ...(q.starting_after ? { startingAfter: q.starting_after } : {}),
      });
      const { names, unmasked } = await customerNames(
        deps,
        tx,
        ctx,
        raw.customers.map((c) => c.customer),
      );
      await auditPiiRead(tx, ctx, 'aging', unmasked);
      return {
        object: 'aging_report' as const,
        as_of: raw.as_of,
        currency: raw.currency,
        buckets: bucketsJson(raw.totals),
        total: amount(raw.total),
        customer_count: raw.customerCount,
        customers: raw.customers.map((c) => ({
          customer: c.customer,
          name: names.get(c.customer) ?? null,
          buckets: bucketsJson(c.buckets),
          total: amount(c.total),
        })),
        has_more: raw.hasMore,
        unconverted: raw.unconverted,
      };
    },
  );
}

/** The aging report as CSV: a TOTAL line, then one line per customer of the page. */
export function agingCsv(v: AgingView): string {
  let out = csvLine(['customer', 'name', ...AGING_BUCKETS, 'total']);
  out += csvLine(['TOTAL', v.currency, ...AGING_BUCKETS.map((k) => v.buckets[k]), v.total]);
  for (const c of v.customers)
    out += csvLine([c.customer, c.name, ...AGING_BUCKETS.map((k) => c.buckets[k]), c.total]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Outstanding, DSO

export interface OutstandingView {
  object: 'outstanding_report';
  as_of: string;
  currency: string;
  outstanding: number;
  overdue: number;
  invoices: number;
  overdue_invoices: number;
  by_currency: {
    currency: string;
    outstanding: number;
    overdue: number;
    invoices: number;
    overdue_invoices: number;
  }[];
  unconverted_invoices: number;
}

/** `GET /v1/reports/outstanding`: open remainders today, and the part past its due date. */
export async function outstandingReport(deps: BillingDeps, ctx: Ctx): Promise<OutstandingView> {
  const today = isoDay(deps.clock.now());
  return readReport(deps, ctx, 'reports:read', 'outstanding', {}, async (tx) => {
    const base = await baseCurrency(tx);
    const r = await sql<Record<string, string>>`
      WITH conv AS (
        SELECT i.currency, i.amount_remaining AS rem, i.due_date < ${today}::date AS overdue,
               ${toBase(sql`i.amount_remaining`, sql`i.currency`, sql`i.fx_rate`, sql`i.rounding`, base)} AS amt
          FROM invoices i
         WHERE i.status = 'open' AND i.amount_remaining > 0
      )
      SELECT currency::text, sum(rem)::text AS outstanding, coalesce(sum(rem) FILTER (WHERE overdue), 0)::text AS overdue,
             count(*)::text AS invoices, count(*) FILTER (WHERE overdue)::text AS overdue_invoices,
             coalesce(sum(amt), 0)::text AS base_outstanding,
             coalesce(sum(amt) FILTER (WHERE overdue), 0)::text AS base_overdue,
             count(*) FILTER (WHERE amt IS NULL)::text AS unconverted
        FROM conv GROUP BY currency ORDER BY currency`.execute(tx);
    const sum = (k: string) => r.rows.reduce((s, x) => s + big(x[k]), 0n);
    return {
      object: 'outstanding_report' as const,
      as_of: today,
      currency: base,
      outstanding: amount(sum('base_outstanding')),
      overdue: amount(sum('base_overdue')),
      invoices: Number(sum('invoices')),
      overdue_invoices: Number(sum('overdue_invoices')),
      by_currency: r.rows.map((x) => ({
        currency: x.currency as string,
        outstanding: amount(big(x.outstanding)),
        overdue: amount(big(x.overdue)),
        invoices: Number(x.invoices),
        overdue_invoices: Number(x.overdue_invoices),
      })),
      unconverted_invoices: Number(sum('unconverted')),
    };
  });
}

/** Credit sales of a period in the base currency: finalised invoices issued in it (not voided by its end) less credit notes issued in it. */
async function creditSales(tx: Tx, base: string, p: Period) {
  const afterTs = sql`(${addDays(p.to, 1, 'to')}::date::timestamp AT TIME ZONE 'UTC')`;
  const r = await sql<{ invoiced: string | null; credited: string | null; unconverted: string }>`
    WITH inv AS (
      SELECT CASE WHEN i.currency::text = ${base} THEN i.total::numeric ELSE i.total_base::numeric END AS amt
        FROM invoices i
       WHERE i.status <> 'draft' AND i.issue_date BETWEEN ${p.from}::date AND ${p.to}::date
         AND (i.voided_at IS NULL OR i.voided_at >= ${afterTs})
    ),
    cn AS (
      SELECT ${toBase(sql`n.total`, sql`n.currency`, sql`i.fx_rate`, sql`i.rounding`, base)} AS amt
        FROM credit_notes n JOIN invoices i ON i.org_id = n.org_id AND i.id = n.invoice_id
       WHERE n.issue_date BETWEEN ${p.from}::date AND ${p.to}::date
    )
    SELECT (SELECT sum(amt) FROM inv)::text AS invoiced, (SELECT sum(amt) FROM cn)::text AS credited,
           ((SELECT count(*) FROM inv WHERE amt IS NULL) + (SELECT count(*) FROM cn WHERE amt IS NULL))::text AS unconverted`.execute(
    tx,
  );
  const row = r.rows[0];
  return {
    invoiced: big(row?.invoiced),
    credited: big(row?.credited),
    unconverted: Number(row?.unconverted ?? 0),
  };
}

export interface DsoView {
  object: 'dso_report';
  from: string;
  to: string;
  currency: string;
  days: number;
  receivables: number;
  credit_sales: number;
  dso: string | null;
  formula: string;
  unconverted: number;
}

/** `GET /v1/reports/dso`: DSO = AR at period end ÷ credit sales in the period × days in the period. */
export async function dsoReport(
  deps: BillingDeps,
  ctx: Ctx,
  q: { from: string; to: string },
): Promise<DsoView> {
  const p = reportPeriod(q.from, q.to);
  return readReport(deps, ctx, 'reports:read', 'dso', { from: p.from, to: p.to }, async (tx) => {
    const aging = await agingAggregate(tx, p.to, { limit: 1 });
    const sales = await creditSales(tx, aging.currency, p);
    const net = sales.invoiced - sales.credited;
    return {
      object: 'dso_report' as const,
      from: p.from,
      to: p.to,
      currency: aging.currency,
      days: p.days,
      receivables: amount(aging.total),
      credit_sales: amount(net),
      dso: daysSalesOutstanding(aging.total, net, p.days),
      formula:
        'receivables as of `to` / (invoiced − credited from `from` to `to`) × days, half-up to 2 decimals',
      unconverted: aging.unconverted.count + sales.unconverted,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Revenue, tax, top customers

export interface RevenueRow {
  period: string;
  currency: string;
  invoiced: number;
  credited: number;
  collected: number;
  refunded: number;
}

export interface RevenueView {
  object: 'revenue_report';
  from: string;
  to: string;
  group: ReportGroup;
  currency: string;
  rows: RevenueRow[];
  /** Per period in the base currency (invoice and credit-note amounts at the invoice's FX rate). */
  totals: (Omit<RevenueRow, 'currency'> & { net_invoiced: number })[];
  /** Documents left out of `totals`: foreign invoices without a rate, and payments or refunds in another currency (no rate is recorded for them). */
  unconverted: number;
}

/** `GET /v1/reports/revenue`: invoiced (finalised, not void), credited, collected (payments by date received) and refunded, per period and currency. */
export async function revenueReport(
  deps: BillingDeps,
  ctx: Ctx,
  q: { from: string; to: string; group?: ReportGroup },
): Promise<RevenueView> {
  const p = reportPeriod(q.from, q.to);
  const group = q.group ?? 'month';
  assertGroupable(p, group);
  return readReport(deps, ctx, 'reports:read', 'revenue', { from: p.from, to: p.to, group }, async (tx) => {
    const base = await baseCurrency(tx);
    const unit = sql.lit(group);
    const fromTs = sql`(${p.from}::date::timestamp AT TIME ZONE 'UTC')`;
    const afterTs = sql`(${addDays(p.to, 1, 'to')}::date::timestamp AT TIME ZONE 'UTC')`;
    const r = await sql<Record<string, string | null>>`
      WITH ev AS (
        SELECT date_trunc(${unit}, i.issue_date)::date AS period, i.currency::text AS currency,
               i.total AS invoiced, 0::bigint AS credited, 0::bigint AS collected, 0::bigint AS refunded,
               CASE WHEN i.currency::text = ${base} THEN i.total::numeric ELSE i.total_base::numeric END AS base_amt
          FROM invoices i
         WHERE i.status NOT IN ('draft', 'void') AND i.issue_date BETWEEN ${p.from}::date AND ${p.to}::date
        UNION ALL
        SELECT date_trunc(${unit}, n.issue_date)::date, n.currency::text, 0, n.total, 0, 0,
               ${toBase(sql`n.total`, sql`n.currency`, sql`i.fx_rate`, sql`i.rounding`, base)}
          FROM credit_notes n JOIN invoices i ON i.org_id = n.org_id AND i.id = n.invoice_id
         WHERE n.issue_date BETWEEN ${p.from}::date AND ${p.to}::date
        UNION ALL
        SELECT date_trunc(${unit}, received_on)::date, currency::text, 0, 0, amount, 0,
               CASE WHEN currency::text = ${base} THEN amount::numeric END
          FROM payments WHERE received_on BETWEEN ${p.from}::date AND ${p.to}::date
        UNION ALL
        SELECT date_trunc(${unit}, (posted_at AT TIME ZONE 'UTC')::date)::date, currency::text, 0, 0, 0, amount,
               CASE WHEN currency::text = ${base} THEN amount::numeric END
          FROM refunds WHERE status = 'posted' AND posted_at >= ${fromTs} AND posted_at < ${afterTs}
      )
      SELECT period::text, currency, sum(invoiced)::text AS invoiced, sum(credited)::text AS credited,
             sum(collected)::text AS collected, sum(refunded)::text AS refunded,
             sum(base_amt) FILTER (WHERE invoiced > 0)::text AS b_invoiced,
             sum(base_amt) FILTER (WHERE credited > 0)::text AS b_credited,
             sum(base_amt) FILTER (WHERE collected > 0)::text AS b_collected,
             sum(base_amt) FILTER (WHERE refunded > 0)::text AS b_refunded,
             count(*) FILTER (WHERE base_amt IS NULL)::text AS unconverted
        FROM ev GROUP BY period, currency ORDER BY period, currency`.execute(tx);
    const totals = new Map<
      string,
      { invoiced: bigint; credited: bigint; collected: bigint; refunded: bigint }
    >();
    let unconverted = 0;
    for (const x of r.rows) {
      const t = totals.get(x.period as string) ?? { invoiced: 0n, credited: 0n, collected: 0n, refunded: 0n };
      t.invoiced += big(x.b_invoiced);
      t.credited += big(x.b_credited);
      t.collected += big(x.b_collected);
      t.refunded += big(x.b_refunded);
      totals.set(x.period as string, t);
      unconverted += Number(x.unconverted ?? 0);
    }
    return {
      object: 'revenue_report' as const,
      from: p.from,
      to: p.to,
      group,
      currency: base,
      rows: r.rows.map((x) => ({
        period: x.period as string,
        currency: x.currency as string,
        invoiced: amount(big(x.invoiced)),
        credited: amount(big(x.credited)),
        collected: amount(big(x.collected)),
        refunded: amount(big(x.refunded)),
      })),
      totals: [...totals.entries()].map(([period, t]) => ({
        period,
        invoiced: amount(t.invoiced),
        credited: amount(t.credited),
        net_invoiced: amount(t.invoiced - t.credited),
        collected: amount(t.collected),
        refunded: amount(t.refunded),
      })),
      unconverted,
    };
  });
}

export function revenueCsv(v: RevenueView): string {
  let out = csvLine(['period', 'currency', 'invoiced', 'credited', 'collected', 'refunded']);
  for (const x of v.rows)
    out += csvLine([x.period, x.currency, x.invoiced, x.credited, x.collected, x.refunded]);
  for (const x of v.totals)
    out += csvLine([x.period, `TOTAL ${v.currency}`, x.invoiced, x.credited, x.collected, x.refunded]);
  return out;
}

export interface TaxRow {
  currency: string;
  category: string;
  percentage: string;
  invoiced_net: number;
  invoiced_tax: number;
  credited_net: number;
  credited_tax: number;
  net: number;
  tax: number;
  base_net: number | null;
  base_tax: number | null;
}

export interface TaxView {
  object: 'tax_report';
  from: string;
  to: string;
  currency: string;
  rows: TaxRow[];
  totals: { base_net: number; base_tax: number };
}

/** `GET /v1/reports/tax`: tax liability by EN 16931 category and rate from finalised invoices (not void) less credit notes. */
export async function taxReport(
  deps: BillingDeps,
  ctx: Ctx,
  q: { from: string; to: string },
): Promise<TaxView> {
  const p = reportPeriod(q.from, q.to);
  return readReport(deps, ctx, 'reports:read', 'tax', { from: p.from, to: p.to }, async (tx) => {
    const base = await baseCurrency(tx);
    const r = await sql<Record<string, string | null>>`
      WITH docs AS (
        SELECT i.currency, i.fx_rate, i.rounding, i.tax_breakdown AS tb, 1 AS sign
          FROM invoices i
         WHERE i.status NOT IN ('draft', 'void') AND i.issue_date BETWEEN ${p.from}::date AND ${p.to}::date
        UNION ALL
        SELECT n.currency, i.fx_rate, i.rounding, n.tax_breakdown, -1
          FROM credit_notes n JOIN invoices i ON i.org_id = n.org_id AND i.id = n.invoice_id
         WHERE n.issue_date BETWEEN ${p.from}::date AND ${p.to}::date
      ),
      g AS (
        SELECT d.currency::text AS currency, e->>'category' AS category, e->>'percentage' AS percentage, d.sign,
               (e->>'taxable_amount')::bigint AS net, (e->>'tax_amount')::bigint AS tax,
               ${toBase(sql`(e->>'taxable_amount')::bigint`, sql`d.currency`, sql`d.fx_rate`, sql`d.rounding`, base)} AS bnet,
               ${toBase(sql`(e->>'tax_amount')::bigint`, sql`d.currency`, sql`d.fx_rate`, sql`d.rounding`, base)} AS btax
          FROM docs d CROSS JOIN LATERAL jsonb_array_elements(d.tb) AS e
      )
      SELECT currency, category, percentage,
             coalesce(sum(net) FILTER (WHERE sign = 1), 0)::text AS inet, coalesce(sum(tax) FILTER (WHERE sign = 1), 0)::text AS itax,
             coalesce(sum(net) FILTER (WHERE sign = -1), 0)::text AS cnet, coalesce(sum(tax) FILTER (WHERE sign = -1), 0)::text AS ctax,
             CASE WHEN bool_and(bnet IS NOT NULL) THEN sum(sign * bnet)::text END AS bnet,
             CASE WHEN bool_and(btax IS NOT NULL) THEN sum(sign * btax)::text END AS btax
        FROM g GROUP BY currency, category, percentage
       ORDER BY currency, category, percentage::numeric`.execute(tx);
    const rows: TaxRow[] = r.rows.map((x) => ({
      currency: x.currency as string,
      category: x.category as string,
      percentage: x.percentage as string,
      invoiced_net: amount(big(x.inet)),
      invoiced_tax: amount(big(x.itax)),
      credited_net: amount(big(x.cnet)),
      credited_tax: amount(big(x.ctax)),
      net: amount(big(x.inet) - big(x.cnet)),
      tax: amount(big(x.itax) - big(x.ctax)),
      base_net: x.bnet === null ? null : amount(big(x.bnet)),
      base_tax: x.btax === null ? null : amount(big(x.btax)),
    }));
    return {
      object: 'tax_report' as const,
      from: p.from,
      to: p.to,
      currency: base,
      rows,
      totals: {
        base_net: rows.reduce((s, x) => s + (x.base_net ?? 0), 0),
        base_tax: rows.reduce((s, x) => s + (x.base_tax ?? 0), 0),
      },
    };
  });
}

export function taxCsv(v: TaxView): string {
  let out = csvLine([
    'currency',
    'category',
    'percentage',
    'invoiced_net',
    'invoiced_tax',
    'credited_net',
    'credited_tax',
    'net',
    'tax',
    `net_${v.currency}`,
    `tax_${v.currency}`,
  ]);
  for (const x of v.rows)
    out += csvLine([
      x.currency,
      x.category,
      x.percentage,
      x.invoiced_net,
      x.invoiced_tax,
      x.credited_net,
      x.credited_tax,
      x.net,
      x.tax,
      x.base_net,
      x.base_tax,
    ]);
  return out;
}

export interface TopCustomersView {
  object: 'top_customers_report';
  from: string;
  to: string;
  currency: string;
  customers: {
    customer: string;
    name: string | null;
    invoiced: number;
    invoices: number;
    outstanding: number;
  }[];
}

/** `GET /v1/reports/top_customers`: customers by invoiced amount (base currency, not void) in the period. */
export async function topCustomersReport(
  deps: BillingDeps,
  ctx: Ctx,
  q: { from: string; to: string; limit?: number },
): Promise<TopCustomersView> {
  const p = reportPeriod(q.from, q.to);
  const limit = q.limit ?? 10;
  if (!Number.isInteger(limit) || limit < 1 || limit > 100)
    throw new DomainError('validation_failed', 'limit must be a whole number from 1 to 100.', 'limit');
  return readReport(
    deps,
    ctx,
    'reports:read',
    'top_customers',
    { from: p.from, to: p.to, limit },
    async (tx) => {
      const base = await baseCurrency(tx);
      const r = await sql<{ customer_id: string; invoiced: string; invoices: string; outstanding: string }>`
      WITH top AS (
        SELECT customer_id,
               sum(CASE WHEN currency::text = ${base} THEN total::numeric ELSE total_base::numeric END) AS invoiced,
               count(*) AS invoices
          FROM invoices
         WHERE status NOT IN ('draft', 'void') AND issue_date BETWEEN ${p.from}::date AND ${p.to}::date
         GROUP BY customer_id
         ORDER BY 2 DESC NULLS LAST, customer_id
         LIMIT ${limit}
      )
      SELECT t.customer_id, coalesce(t.invoiced, 0)::text AS invoiced, t.invoices::text AS invoices,
             coalesce((SELECT sum(${toBase(sql`i.amount_remaining`, sql`i.currency`, sql`i.fx_rate`, sql`i.rounding`, base)})
                         FROM invoices i
                        WHERE i.customer_id = t.customer_id AND i.status = 'open'), 0)::text AS outstanding
        FROM top t ORDER BY t.invoiced DESC NULLS LAST, t.customer_id`.execute(tx);
      const { names, unmasked } = await customerNames(
        deps,
        tx,
        ctx,
        r.rows.map((x) => x.customer_id),
      );
      await auditPiiRead(tx, ctx, 'top_customers', unmasked);
      return {
        object: 'top_customers_report' as const,
        from: p.from,
        to: p.to,
        currency: base,
        customers: r.rows.map((x) => ({
          customer: x.customer_id,
          name: names.get(x.customer_id) ?? null,
          invoiced: amount(big(x.invoiced)),
          invoices: Number(x.invoices),
          outstanding: amount(big(x.outstanding)),
        })),
      };
    },
  );
}

export function topCustomersCsv(v: TopCustomersView): string {
  let out = csvLine(['customer', 'name', 'invoiced', 'invoices', 'outstanding']);
  for (const c of v.customers) out += csvLine([c.customer, c.name, c.invoiced, c.invoices, c.outstanding]);
  return out;
}

export const outstandingCsv = (v: OutstandingView): string =>
  csvLine(['currency', 'outstanding', 'overdue', 'invoices', 'overdue_invoices']) +
  v.by_currency
    .map((x) => csvLine([x.currency, x.outstanding, x.overdue, x.invoices, x.overdue_invoices]))
    .join('') +
  csvLine([`TOTAL ${v.currency}`, v.outstanding, v.overdue, v.invoices, v.overdue_invoices]);

export const dsoCsv = (v: DsoView): string =>
  csvLine(['from', 'to', 'currency', 'days', 'receivables', 'credit_sales', 'dso']) +
  csvLine([v.from, v.to, v.currency, v.days, v.receivables, v.credit_sales, v.dso]);

// ---------------------------------------------------------------------------------------------
// Customer statement

export interface StatementQuery {
  from: string;
  to: string;
  currency?: string;
}

interface StatementHead {
  customer: string;
  name: string | null;
  /** The name is the decrypted one (not masked): showing it is a PII read. */
  nameUnmasked: boolean;
  currency: string;
  period: Period;
  opening: bigint;
}

/**
 * Every document of one customer in one currency as statement entries, in statement order
 * (date, then invoice, credit note, payment, credit applied, refund, void; then id). The effect
 * on the balance: invoices +total, credit notes −total, payments −amount, refunds paid out
 * +amount, a void −(total not already credited); credit applied moves nothing (shown for reference).
 */
function statementEntries(customer: string, currency: string): RawBuilder<unknown> {
  return sql`
    SELECT issue_date AS date, 1 AS ord, id, 'invoice' AS type, number, total AS debit, 0::bigint AS credit,
           0::bigint AS applied, NULL::text AS invoice
      FROM invoices WHERE customer_id = ${customer} AND currency = ${currency} AND status <> 'draft'
    UNION ALL
    SELECT n.issue_date, 2, n.id, 'credit_note', n.number, 0, n.total, 0, n.invoice_id
      FROM credit_notes n WHERE n.customer_id = ${customer} AND n.currency = ${currency}
    UNION ALL
    SELECT received_on, 3, id, 'payment', NULL, 0, amount, 0, NULL
      FROM payments WHERE customer_id = ${customer} AND currency = ${currency}
    UNION ALL
    SELECT (a.created_at AT TIME ZONE 'UTC')::date, 4, a.id, 'credit_applied', NULL, 0, 0, a.amount, a.invoice_id
      FROM payment_allocations a LEFT JOIN payments p ON p.org_id = a.org_id AND p.id = a.payment_id
     WHERE a.customer_id = ${customer} AND a.currency = ${currency}
       AND (a.source = 'credit' OR a.created_at <> p.created_at)
    UNION ALL
    SELECT (posted_at AT TIME ZONE 'UTC')::date, 5, id, 'refund', NULL, amount, 0, 0, NULL
      FROM refunds WHERE customer_id = ${customer} AND currency = ${currency} AND status = 'posted'
    UNION ALL
    SELECT (i.voided_at AT TIME ZONE 'UTC')::date, 6, i.id, 'invoice_voided', i.number, 0,
           i.total - coalesce((SELECT sum(n.total) FROM credit_notes n WHERE n.invoice_id = i.id), 0), 0, i.id
      FROM invoices i WHERE i.customer_id = ${customer} AND i.currency = ${currency} AND i.status = 'void'`;
}

interface EntryRow {
  date: string;
  ord: number;
  id: string;
  type: StatementLineType;
  number: string | null;
  debit: string;
  credit: string;
  applied: string;
  invoice: string | null;
}

const toEntry = (r: EntryRow): StatementEntry => ({
  date: r.date,
  type: r.type,
  id: r.id,
  number: r.number,
  debit: BigInt(r.debit),
  credit: BigInt(r.credit),
  applied: BigInt(r.applied),
  invoice: r.invoice,
});

/** Checks the customer is visible to the actor (a sales rep: assigned only), reads the opening balance and audits the read. */
async function statementHead(
  deps: BillingDeps,
  tx: Tx,
  ctx: Ctx,
  id: string,
  q: StatementQuery,
): Promise<StatementHead> {
  const period = reportPeriod(q.from, q.to);
  const row = await tx
    .selectFrom('customers')
    .select(['org_id', 'id', 'owner_user_id', 'currency'])
    .where('id', '=', id)
    .executeTakeFirst();
  if (!row) throw new DomainError('not_found', 'No such customer.', 'id');
  await authorize(tx, ctx, 'invoices:read', customerResource(row));
  const currency = q.currency ? assertCurrency(q.currency) : (row.currency ?? (await baseCurrency(tx)));
  const opening = await sql<{ b: string | null }>`
    SELECT sum(debit - credit)::text AS b FROM (${statementEntries(id, currency)}) e WHERE e.date < ${period.from}::date`.execute(
    tx,
  );
  const { names, unmasked } = await customerNames(deps, tx, ctx, [id]);
  await recordAudit(tx, {
    orgId: ctx.actor.orgId,
    actor: ctx.actor,
    action: 'report.viewed',
    target: { type: 'customer', id },
    outcome: 'success',
    meta: ctx.meta,
    details: { report: 'statement', from: period.from, to: period.to, currency, pii: unmasked.length > 0 },
  });
  return {
    customer: id,
    name: names.get(id) ?? null,
    nameUnmasked: unmasked.length > 0,
    currency,
    period,
    opening: big(opening.rows[0]?.b),
  };
}

/** The lines of a statement after a keyset position, at most `limit`. */
async function statementBatch(
  tx: Tx,
  head: StatementHead,
  after: { date: string; ord: number; id: string } | null,
  limit: number,
): Promise<EntryRow[]> {
  const r = await sql<EntryRow>`
    SELECT date::text AS date, ord, id, type, number, debit::text, credit::text, applied::text, invoice
      FROM (${statementEntries(head.customer, head.currency)}) e
     WHERE e.date BETWEEN ${head.period.from}::date AND ${head.period.to}::date
       ${after ? sql`AND (e.date, e.ord, e.id) > (${after.date}::date, ${after.ord}::int, ${after.id})` : sql``}
     ORDER BY e.date, e.ord, e.id
     LIMIT ${limit}`.execute(tx);
  return r.rows;
}

export interface StatementView {
  object: 'customer_statement';
  customer: string;
  name: string | null;
  currency: string;
  from: string;
  to: string;
  opening_balance: number;
  closing_balance: number;
  lines: {
    date: string;
    type: StatementLineType;
    id: string;
    number: string | null;
    invoice: string | null;
    debit: number;
    credit: number;
    applied: number;
    balance: number;
  }[];
}

/** Most lines a JSON statement carries; longer periods are asked for as CSV (streamed). */
export const STATEMENT_JSON_MAX_LINES = 20_000;

/** `GET /v1/customers/{id}/statement`: opening balance, chronological lines with running balance, closing balance. */
export async function customerStatement(
  deps: BillingDeps,
  ctx: Ctx,
  id: string,
  q: StatementQuery,
): Promise<StatementView> {
  return inOrg(
    deps.db,
    ctx.actor.orgId,
    async (tx) => {
      const head = await statementHead(deps, tx, ctx, id, q);
      const rows = await statementBatch(tx, head, null, STATEMENT_JSON_MAX_LINES + 1);
      if (rows.length > STATEMENT_JSON_MAX_LINES) {
        throw new DomainError(
          'validation_failed',
          `The period has more than ${STATEMENT_JSON_MAX_LINES} lines: ask for format=csv or a shorter period.`,
          'from',
        );
      }
      // the JSON statement shows the customer's name: when unmasked, that is a PII read (the CSV
      // carries no name)
      if (head.nameUnmasked)
        await recordAudit(tx, {
          orgId: ctx.actor.orgId,
          actor: ctx.actor,
          action: 'customer.pii_read',
          target: { type: 'customer', id },
          outcome: 'success',
          meta: ctx.meta,
          details: { via: 'statement' },
        });
      const { lines, closing } = runningBalance(head.opening, rows.map(toEntry));
      return {
        object: 'customer_statement' as const,
        customer: head.customer,
        name: head.name,
        currency: head.currency,
        from: head.period.from,
        to: head.period.to,
        opening_balance: amount(head.opening),
        closing_balance: amount(closing),
        lines: lines.map((l) => ({
          date: l.date,
          type: l.type,
          id: l.id,
          number: l.number,
          invoice: l.invoice,
          debit: amount(l.debit),
          credit: amount(l.credit),
          applied: amount(l.applied),
          balance: amount(l.balance),
        })),
      };
    },
    { isolation: 'repeatable read' },
  );
}

const STATEMENT_HEADER = ['date', 'type', 'id', 'number', 'invoice', 'debit', 'credit', 'applied', 'balance'];
const BATCH = 2000;

/**
 * The statement as CSV, produced in keyset batches of 2,000 lines (one short transaction each, so
 * a slow reader never holds a transaction open): the first line is the opening balance, the last
 * the closing balance. Authorisation and the audit event happen before the first byte.
 */
export async function customerStatementCsv(
  deps: BillingDeps,
  ctx: Ctx,
  id: string,
  q: StatementQuery,
): Promise<AsyncIterable<string>> {
  const head = await inOrg(deps.db, ctx.actor.orgId, (tx) => statementHead(deps, tx, ctx, id, q));
  return (async function* () {
    yield csvLine(STATEMENT_HEADER);
    yield csvLine([
      head.period.from,
      'opening_balance',
      head.customer,
      null,
      null,
      null,
      null,
      null,
      head.opening,
    ]);
    let balance = head.opening;
    let after: { date: string; ord: number; id: string } | null = null;
    for (;;) {
      const cursor: { date: string; ord: number; id: string } | null = after;
      const rows: EntryRow[] = await inOrg(deps.db, ctx.actor.orgId, (tx) =>
        statementBatch(tx, head, cursor, BATCH),
      );
      const { lines, closing } = runningBalance(balance, rows.map(toEntry));
      balance = closing;
      let chunk = '';
      for (const l of lines)
        chunk += csvLine([
          l.date,
          l.type,
          l.id,
          l.number,
          l.invoice,
          l.debit,
          l.credit,
          l.applied,
          l.balance,
        ]);
      if (chunk) yield chunk;
      const last: EntryRow | undefined = rows.at(-1);
      if (!last || rows.length < BATCH) break;
      after = { date: last.date, ord: Number(last.ord), id: last.id };
    }
    yield csvLine([head.period.to, 'closing_balance', head.customer, null, null, null, null, null, balance]);
  })();
}

// ---------------------------------------------------------------------------------------------
// Export

const INVOICE_EXPORT_HEADER = [
  'id',
  'number',
  'customer',
  'status',
  'currency',
  'issue_date',
  'due_date',
  'po_number',
  'subtotal',
  'tax',
  'total',
  'amount_paid',
  'amount_credited',
  'amount_remaining',
  'fx_rate',
  'total_base',
];

/**
 * `GET /v1/exports/invoices.csv`: every finalised invoice (optionally issued within a period), in
 * id order, streamed in keyset batches; the export itself is an audit event written before the
 * first byte. No PII: customers appear by id.
 */
export async function exportInvoicesCsv(
  deps: BillingDeps,
  ctx: Ctx,
  q: { from?: string; to?: string },
): Promise<AsyncIterable<string>> {
  const period =
    q.from !== undefined || q.to !== undefined
      ? reportPeriod(q.from ?? '0001-01-01', q.to ?? '9999-12-31')
      : null;
  await inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'exports:create');
    await recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: 'export.created',
      target: { type: 'export', id: 'invoices' },
      outcome: 'success',
      meta: ctx.meta,
      details: { export: 'invoices', format: 'csv', from: period?.from ?? null, to: period?.to ?? null },
    });
  });
  return (async function* () {
    yield csvLine(INVOICE_EXPORT_HEADER);
    let after = '';
    for (;;) {
      const cursor: string = after;
      const rows = await inOrg(deps.db, ctx.actor.orgId, async (tx) => {
        let s = tx
          .selectFrom('invoices')
          .select([
            'id',
            'number',
            'customer_id',
            'status',
            'currency',
            'issue_date',
            'due_date',
            'po_number',
            'subtotal',
            'tax_amount',
            'total',
            'amount_paid',
            'amount_credited',
            'amount_remaining',
            'fx_rate',
            'total_base',
          ])
          .where('status', '!=', 'draft')
          .where('id', '>', cursor);
        if (period) s = s.where('issue_date', '>=', period.from).where('issue_date', '<=', period.to);
        return s.orderBy('id').limit(BATCH).execute();
      });
      let chunk = '';
      for (const r of rows) {
        const cells: CsvCell[] = [
          r.id,
          r.number,
          r.customer_id,
          r.status,
          r.currency,
          r.issue_date,
          r.due_date,
          r.po_number,
          r.subtotal,
          r.tax_amount,
          r.total,
          r.amount_paid,
          r.amount_credited,
          r.amount_remaining,
          r.fx_rate,
          r.total_base,
        ];
        chunk += csvLine(cells);
      }
      if (chunk) yield chunk;
      const last: string | undefined = rows.at(-1)?.id;
      if (last === undefined || rows.length < BATCH) break;
      after = last;
    }
  })();
}
