import type { Command } from 'commander';
import { type Ctx, systemCtx } from '../../app/context.js';
import type { BillingDeps } from '../../app/customers.js';
import {
  agingCsv,
  agingReport,
  customerStatement,
  customerStatementCsv,
  revenueCsv,
  revenueReport,
  taxCsv,
  taxReport,
} from '../../app/reports.js';
import { loadConfig } from '../../config/config.js';
import { AGING_BUCKETS } from '../../domain/aging.js';
import { REPORT_GROUPS, type ReportGroup } from '../../domain/reports.js';
import { openRuntime } from '../../main/runtime.js';
import { createIdentityDeps } from '../../main/server.js';
import { CliError, makeOut } from '../output.js';
import { resolveOrg } from './users.js';

/** Runs a report as the system actor of the org (`--org`, or the only org). */
async function asSystem<T>(
  org: string | undefined,
  fn: (deps: BillingDeps, ctx: Ctx) => Promise<T>,
): Promise<T> {
  const rt = await openRuntime(loadConfig(), { migrate: true });
  try {
    const identity = await createIdentityDeps(rt);
    const orgId = await resolveOrg(rt, org);
    return await fn({ db: identity.db, cipher: identity.cipher, clock: identity.clock }, systemCtx(orgId));
  } finally {
    await rt.close();
  }
}

function format(value: string | undefined, json: boolean): 'csv' | 'json' | 'text' {
  if (value === undefined) return json ? 'json' : 'text';
  if (value !== 'csv' && value !== 'json') throw new CliError('--format must be csv or json');
  return value;
}

function needPeriod(opts: { from?: string; to?: string }): { from: string; to: string } {
  if (!opts.from || !opts.to) throw new CliError('--from and --to are required (YYYY-MM-DD)');
  return { from: opts.from, to: opts.to };
}

interface ReportOpts {
  asOf?: string;
  from?: string;
  to?: string;
  group?: string;
  customer?: string;
  limit?: string;
  format?: string;
  org?: string;
}

/** `billvault report aging|revenue|tax` and `billvault statement`: the reports of issue 6 as the system actor. */
export function registerReportCommands(program: Command): void {
  program
    .command('report')
    .description('receivables and financial reports (amounts in minor units)')
    .argument('<kind>', 'aging | revenue | tax')
    .option('--as-of <date>', 'aging: as of this date (default today)')
    .option('--from <date>', 'revenue, tax: first day')
    .option('--to <date>', 'revenue, tax: last day')
    .option('--group <unit>', `revenue: ${REPORT_GROUPS.join(' | ')} (default month)`)
    .option('--customer <id>', 'aging: one customer only')
    .option('--limit <n>', 'aging: customers listed (default 100, at most 10000)')
    .option('--format <f>', 'csv | json (default: a table, or json with --json)')
    .option('--org <id>', 'org id (default: the only org)')
    .action(async (kind: string, opts: ReportOpts, cmd: Command) => {
      const json = Boolean(cmd.optsWithGlobals().json);
      const o = makeOut(json);
      const f = format(opts.format, json);
      const write = (s: string) => process.stdout.write(s);
      if (kind === 'aging') {
        const limit = opts.limit === undefined ? 100 : Number(opts.limit);
        const v = await asSystem(opts.org, (deps, ctx) =>
          agingReport(
            deps,
            ctx,
            {
              limit,
              ...(opts.asOf ? { as_of: opts.asOf } : {}),
              ...(opts.customer ? { customer: opts.customer } : {}),
            },
            10_000,
          ),
        );
        if (f === 'csv') return void write(agingCsv(v));
        if (f === 'json') return void write(`${JSON.stringify(v)}\n`);
        const cols = AGING_BUCKETS.map((k) => `${k}=${v.buckets[k]}`).join(' ');
        const lines = v.customers.map(
          (c) => `  ${c.customer}  ${AGING_BUCKETS.map((k) => c.buckets[k]).join(' ')}  total=${c.total}`,
        );
        o.result(
          v,
          [`aging as of ${v.as_of} (${v.currency}): ${cols} total=${v.total}`, ...lines].join('\n'),
        );
        if (v.unconverted.count > 0) o.info(`${v.unconverted.count} invoice(s) without an FX rate left out`);
        return;
      }
      if (kind === 'revenue') {
        if (opts.group !== undefined && !(REPORT_GROUPS as readonly string[]).includes(opts.group))
          throw new CliError(`--group must be one of ${REPORT_GROUPS.join(', ')}`);
        const p = needPeriod(opts);
        const v = await asSystem(opts.org, (deps, ctx) =>
          revenueReport(deps, ctx, { ...p, ...(opts.group ? { group: opts.group as ReportGroup } : {}) }),
        );
        if (f === 'csv') return void write(revenueCsv(v));
        if (f === 'json') return void write(`${JSON.stringify(v)}\n`);
        o.result(
          v,
          v.rows
            .map(
              (r) =>
                `${r.period} ${r.currency} invoiced=${r.invoiced} credited=${r.credited} collected=${r.collected} refunded=${r.refunded}`,
            )
            .join('\n') || '(nothing in this period)',
        );
        return;
      }
      if (kind === 'tax') {
        const p = needPeriod(opts);
        const v = await asSystem(opts.org, (deps, ctx) => taxReport(deps, ctx, p));
        if (f === 'csv') return void write(taxCsv(v));
        if (f === 'json') return void write(`${JSON.stringify(v)}\n`);
        o.result(
          v,
          v.rows
            .map((r) => `${r.currency} ${r.category} ${r.percentage}% net=${r.net} tax=${r.tax}`)
            .join('\n') || '(nothing in this period)',
        );
        return;
      }
      throw new CliError(`unknown report ${kind}: aging, revenue or tax`);
    });

  program
    .command('statement')
    .description("a customer's statement: opening balance, lines with running balance, closing balance")
    .requiredOption('--customer <id>', 'customer id')
    .requiredOption('--from <date>', 'first day')
    .requiredOption('--to <date>', 'last day')
    .option('--currency <code>', "statement currency (default: the customer's, else the org's base)")
    .option('--format <f>', 'csv | json (default: a table, or json with --json)')
    .option('--org <id>', 'org id (default: the only org)')
    .action(
      async (
        opts: {
          customer: string;
          from: string;
          to: string;
          currency?: string;
          format?: string;
          org?: string;
        },
        cmd: Command,
      ) => {
        const json = Boolean(cmd.optsWithGlobals().json);
        const f = format(opts.format, json);
        const q = { from: opts.from, to: opts.to, ...(opts.currency ? { currency: opts.currency } : {}) };
        if (f === 'csv') {
          await asSystem(opts.org, async (deps, ctx) => {
            for await (const chunk of await customerStatementCsv(deps, ctx, opts.customer, q))
              process.stdout.write(chunk);
          });
          return;
        }
        const v = await asSystem(opts.org, (deps, ctx) => customerStatement(deps, ctx, opts.customer, q));
        if (f === 'json') return void process.stdout.write(`${JSON.stringify(v)}\n`);
        const lines = v.lines.map(
          (l) =>
            `${l.date}  ${l.type.padEnd(14)} ${(l.number ?? l.id).padEnd(36)} ${String(l.debit - l.credit).padStart(12)} ${String(l.balance).padStart(12)}`,
        );
        makeOut(false).result(
          v,
          [
            `statement ${v.customer} ${v.currency} ${v.from}..${v.to}`,
            `opening balance ${v.opening_balance}`,
            ...lines,
            `closing balance ${v.closing_balance}`,
          ].join('\n'),
        );
      },
    );
}
