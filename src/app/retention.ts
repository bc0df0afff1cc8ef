import { sql } from 'kysely';
import { type Db, inOrg, type Tx } from '../adapters/db/index.js';
import { recordAudit } from './audit.js';
import { systemCtx } from './context.js';
import type { BillingDeps } from './customers.js';
import { allOrgIds, shredSubjectKeys } from './keys.js';

/**
 * Retention policies per data class (DESIGN.md §5 Privacy), configured per org through
 * settings (`PUT /v1/settings/retention.sessions_days` …) and run by `billvault retention run`
 * and by `serve` on a schedule. Each org's run is one transaction and one audit event.
 *
 * Audit events are reported, never deleted: the table is append-only (trigger and grants) and
 * each event is linked into a signed hash chain, so removing a prefix would break verification
 * of everything after it. The report counts what is past the policy so an operator can archive
 * it (`billvault audit export`) before an offline, documented truncation.
 */
export const RETENTION_DEFAULTS = {
  /** Ended (expired or revoked) sessions are deleted this many days after they ended. */
  'retention.sessions_days': { value: 30, min: 1, max: 3650 },
  /** Draft invoices and draft quotes untouched this many days are deleted (nothing was issued). */
  'retention.drafts_days': { value: 365, min: 1, max: 3650 },
  /** Stored idempotent replies (encrypted, may hold PII) are deleted after this many hours. */
  'retention.idempotency_hours': { value: 24, min: 1, max: 24 * 30 },
  /** Audit events older than this many years are reported (see above). */
  'retention.audit_years': { value: 10, min: 1, max: 100 },
  /** Archived, not erased customers archived longer than this many years are reported as candidates for erasure. */
  'retention.archived_customer_years': { value: 10, min: 1, max: 100 },
} as const;
export type RetentionSetting = keyof typeof RETENTION_DEFAULTS;

export type RetentionClass =
  | 'sessions'
  | 'draft_invoices'
  | 'draft_quotes'
  | 'idempotency_keys'
  | 'restricted_buyer_details'
  | 'retention_keys'
  | 'audit_events'
  | 'archived_customers';

export interface RetentionClassResult {
  class: RetentionClass;
  /** delete rows, purge (clear) encrypted details, destroy keys, or report only. */
  action: 'delete' | 'purge' | 'destroy_keys' | 'report';
  policy: string;
  count: number;
}

export interface RetentionReport {
  org: string;
  dry_run: boolean;
  as_of: string;
  classes: RetentionClassResult[];
}

async function policy(tx: Tx, key: RetentionSetting): Promise<number> {
  const d = RETENTION_DEFAULTS[key];
  const row = await tx.selectFrom('org_settings').select('value').where('key', '=', key).executeTakeFirst();
  const v = row?.value;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : Number.NaN;
  return Number.isInteger(n) && n >= d.min && n <= d.max ? n : d.value;
}

const daysBefore = (now: Date, days: number) => new Date(now.getTime() - days * 86_400_000);
const yearsBefore = (now: Date, years: number) => {
  const d = new Date(now);
  d.setUTCFullYear(d.getUTCFullYear() - years);
  return d;
};
/** Calls one of the narrow purge functions of 0012_privacy.sql (the app role cannot DELETE those tables). */
async function purge(tx: Tx, call: ReturnType<typeof sql>): Promise<number> {
  const r = await sql<{ n: string }>`SELECT ${call}::text AS n`.execute(tx);
  return Number(r.rows[0]?.n ?? 0);
}

const count = (r: { numDeletedRows: bigint } | { numUpdatedRows: bigint }) =>
  Number('numDeletedRows' in r ? r.numDeletedRows : r.numUpdatedRows);

/** Runs (or with dryRun, only counts) every retention policy of one org, audited. */
export async function runRetention(
  deps: BillingDeps,
  orgId: string,
  opts: { dryRun: boolean },
): Promise<RetentionReport> {
  const now = deps.clock.now();
  const today = now.toISOString().slice(0, 10);
  const year = now.getUTCFullYear();
  const ctx = systemCtx(orgId, { requestId: 'retention' });
  const report = await inOrg(deps.db, orgId, async (tx) => {
    const out: RetentionClassResult[] = [];
    const dry = opts.dryRun;

    const sessionsDays = await policy(tx, 'retention.sessions_days');
    const sessionCut = daysBefore(now, sessionsDays);
    const ended = sql<boolean>`(expires_at < ${sessionCut} OR revoked_at < ${sessionCut})`;
    out.push({
      class: 'sessions',
      action: 'delete',
      policy: `ended more than ${sessionsDays} days ago`,
      count: dry
        ? Number(
            (
              await tx
                .selectFrom('sessions')
                .select((eb) => eb.fn.countAll<string>().as('n'))
                .where(ended)
                .executeTakeFirstOrThrow()
            ).n,
          )
        : await purge(tx, sql`purge_ended_sessions(${sessionCut})`),
    });

    const draftsDays = await policy(tx, 'retention.drafts_days');
    const draftCut = daysBefore(now, draftsDays);
    const staleInvoices = (
      await tx
        .selectFrom('invoices')
        .select('id')
        .where('status', '=', 'draft')
        .where('updated_at', '<', draftCut)
        .execute()
    ).map((r) => r.id);
    if (!dry && staleInvoices.length) {
      await tx
        .updateTable('quotes')
        .set({ invoice_id: null })
        .where('invoice_id', 'in', staleInvoices)
        .execute();
      await tx
        .deleteFrom('invoices')
        .where('id', 'in', staleInvoices)
        .where('status', '=', 'draft')
        .execute();
    }
    out.push({
      class: 'draft_invoices',
      action: 'delete',
      policy: `drafts untouched for ${draftsDays} days`,
      count: staleInvoices.length,
    });
    const staleQuotes = tx
      .selectFrom('quotes')
      .where('status', '=', 'draft')
      .where('updated_at', '<', draftCut);
    out.push({
      class: 'draft_quotes',
      action: 'delete',
      policy: `drafts untouched for ${draftsDays} days`,
      count: dry
        ? Number(
            (await staleQuotes.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n,
          )
        : await purge(tx, sql`purge_stale_draft_quotes(${draftCut})`),
    });

    const idemHours = await policy(tx, 'retention.idempotency_hours');
    const idemCut = new Date(now.getTime() - idemHours * 3_600_000);
    out.push({
      class: 'idempotency_keys',
      action: 'delete',
      policy: `stored replies older than ${idemHours} hours`,
      count: dry
        ? Number(
            (
              await tx
                .selectFrom('idempotency_keys')
                .select((eb) => eb.fn.countAll<string>().as('n'))
                .where('created_at', '<', idemCut)
                .executeTakeFirstOrThrow()
            ).n,
          )
        : count(await tx.deleteFrom('idempotency_keys').where('created_at', '<', idemCut).executeTakeFirst()),
    });

    // Restricted buyer details past retain_until: the ciphertext is cleared now, and the
    // retention key of a year is destroyed once that year is over and nothing under it is kept.
    const due = tx
      .selectFrom('retained_buyer_details')
      .where('purged_at', 'is', null)
      .where('retain_until', '<', today);
    out.push({
      class: 'restricted_buyer_details',
      action: 'purge',
      policy: 'past retain_until (issue date + privacy.retention_years)',
      count: dry
        ? Number((await due.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n)
        : count(
            await tx
              .updateTable('retained_buyer_details')
              .set({ details_enc: null, purged_at: now })
              .where('purged_at', 'is', null)
              .where('retain_until', '<', today)
              .executeTakeFirst(),
          ),
    });
    const doneYears = await sql<{ retention_key: string }>`
      SELECT retention_key FROM retained_buyer_details
       GROUP BY retention_key
      HAVING bool_and(purged_at IS NOT NULL OR retain_until < ${today}::date)
         AND substr(retention_key, 2)::int < ${year}
       ORDER BY retention_key`.execute(tx);
    let keysDestroyed = 0;
    for (const r of doneYears.rows) {
      if (dry) {
        const live = await sql<{ n: string }>`SELECT count(*)::text AS n FROM org_data_keys
          WHERE org_id = ${orgId} AND subject_type = 'retention' AND subject_id = ${r.retention_key}
            AND status <> 'destroyed'`.execute(tx);
        keysDestroyed += Number(live.rows[0]?.n ?? 0);
      } else {
        keysDestroyed += await shredSubjectKeys(tx, { forget: () => deps.cipher.forget?.() }, orgId, {
          type: 'retention',
          id: r.retention_key,
        });
      }
    }
    out.push({
      class: 'retention_keys',
      action: 'destroy_keys',
      policy: 'retention keys of years that are over, with nothing left under them',
      count: keysDestroyed,
    });

    const auditYears = await policy(tx, 'retention.audit_years');
    const audit = await sql<{ n: string }>`SELECT count(*)::text AS n FROM audit_events
      WHERE org_id = ${orgId} AND occurred_at < ${yearsBefore(now, auditYears)}`.execute(tx);
    out.push({
      class: 'audit_events',
      action: 'report',
      policy: `older than ${auditYears} years (append-only, hash-chained: reported, not deleted)`,
      count: Number(audit.rows[0]?.n ?? 0),
    });

    const archivedYears = await policy(tx, 'retention.archived_customer_years');
    const archived = await tx
      .selectFrom('customers')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('erased_at', 'is', null)
      .where('archived_at', '<', yearsBefore(now, archivedYears))
      .executeTakeFirstOrThrow();
    out.push({
      class: 'archived_customers',
      action: 'report',
      policy: `archived more than ${archivedYears} years ago and not erased (candidates for erasure)`,
      count: Number(archived.n),
    });

    await recordAudit(tx, {
      orgId,
      actor: ctx.actor,
      action: 'retention.run',
      outcome: 'success',
      meta: ctx.meta,
      details: { dry_run: dry, counts: Object.fromEntries(out.map((c) => [c.class, c.count])) },
    });
    return { org: orgId, dry_run: dry, as_of: now.toISOString(), classes: out };
  });
  if (!opts.dryRun) deps.cipher.forget?.();
  return report;
}

/** Runs retention for every org (the CLI and the scheduler; needs a role that sees every org). */
export async function runRetentionAll(
  deps: BillingDeps & { db: Db },
  opts: { dryRun: boolean; orgId?: string },
): Promise<RetentionReport[]> {
  const orgs = opts.orgId ? [opts.orgId] : await allOrgIds(deps.db);
  const out: RetentionReport[] = [];
  for (const org of orgs) out.push(await runRetention(deps, org, opts));
  return out;
}
