import type { Selectable } from 'kysely';
import { type Db, inOrg, type Tx } from '../adapters/db/index.js';
import type { TaxRatesTable } from '../adapters/db/schema-billing.js';
import { DomainError } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import { validateTaxRate } from '../domain/tax.js';
import { recordAudit } from './audit.js';
import { authorize } from './authz.js';
import type { Ctx } from './context.js';
import { fetchPage, type ListPage, type PageParams } from './pagination.js';
import type { Clock } from './ports.js';

/** What the catalog use cases need (nothing in the catalog is encrypted, so no cipher). */
export interface CatalogDeps {
  db: Db;
  clock: Clock;
}

export interface TaxRateInput {
  name: string;
  /** Decimal string with at most 6 decimals, e.g. "20.0" or "7.125". */
  percentage: string;
  inclusive: boolean;
  category: string;
  compound?: boolean;
  exemption_reason?: string | null;
  exemption_reason_code?: string | null;
  jurisdiction?: string | null;
}

/** The terms of a rate: fixed at creation, because documents reference the rate. */
export const TAX_RATE_TERMS = [
  'percentage',
  'inclusive',
  'category',
  'compound',
  'exemption_reason',
  'exemption_reason_code',
  'jurisdiction',
] as const;

/** Only the label and whether the rate may be used on new documents can change. */
export type TaxRatePatch = { name?: string; active?: boolean } & {
  [K in (typeof TAX_RATE_TERMS)[number]]?: unknown;
};

export interface TaxRateView {
  id: string;
  object: 'tax_rate';
  name: string;
  /** Normalised decimal string ("20.0" is returned as "20"). */
  percentage: string;
  inclusive: boolean;
  compound: boolean;
  category: string;
  exemption_reason: string | null;
  exemption_reason_code: string | null;
  jurisdiction: string | null;
  active: boolean;
  created_at: string;
}

type Row = Selectable<TaxRatesTable>;

/** The public shape of a stored rate. */
export function taxRateView(row: Row): TaxRateView {
  return {
    id: row.id,
    object: 'tax_rate',
    name: row.name,
    percentage: row.percentage,
    inclusive: row.inclusive,
    compound: row.compound,
    category: row.category,
    exemption_reason: row.exemption_reason,
    exemption_reason_code: row.exemption_reason_code,
    jurisdiction: row.jurisdiction,
    active: row.active,
    created_at: row.created_at.toISOString(),
  };
}

function trimmed(v: string | null | undefined): string | undefined {
  const s = v?.trim();
  return s ? s : undefined;
}

/** Validates through the domain's EN 16931 rules, reporting the offending field as a top-level param. */
function validated(input: TaxRateInput) {
  try {
    const exemptionReason = trimmed(input.exemption_reason);
    const exemptionReasonCode = trimmed(input.exemption_reason_code);
    return validateTaxRate(
      {
        percentage: input.percentage,
        inclusive: input.inclusive,
        compound: input.compound ?? false,
        category: input.category,
        ...(exemptionReason !== undefined ? { exemption_reason: exemptionReason } : {}),
        ...(exemptionReasonCode !== undefined ? { exemption_reason_code: exemptionReasonCode } : {}),
      },
      'tax_rate',
    );
  } catch (e) {
    if (e instanceof DomainError) {
      throw new DomainError(e.code, e.message, e.param?.replace(/^tax_rate\.?/, '') || undefined, e.details);
    }
    throw e;
  }
}

async function loadRate(tx: Tx, id: string): Promise<Row> {
  const row = await tx.selectFrom('tax_rates').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw new DomainError('not_found', 'No such tax rate.', 'id');
  return row;
}

/** Creates a tax rate; its percentage is stored in minimal decimal form. */
export async function createTaxRate(deps: CatalogDeps, ctx: Ctx, input: TaxRateInput): Promise<TaxRateView> {
  const rate = validated(input);
  const name = input.name.trim();
  if (name.length < 1 || name.length > 100)
    throw new DomainError('validation_failed', 'name must be 1 to 100 characters.', 'name');
  const jurisdiction = trimmed(input.jurisdiction) ?? null;
  const id = newId('tax_rate');
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'catalog:write');
    const row = await tx
      .insertInto('tax_rates')
      .values({
        org_id: ctx.actor.orgId,
        id,
        name,
        percentage: rate.percentage,
        inclusive: rate.inclusive,
        compound: rate.compound,
        category: rate.category,
        exemption_reason: rate.exemption_reason ?? null,
        exemption_reason_code: rate.exemption_reason_code ?? null,
        jurisdiction,
        created_at: deps.clock.now(),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: 'tax_rate.created',
      target: { type: 'tax_rate', id },
      outcome: 'success',
      meta: ctx.meta,
      details: { percentage: rate.percentage, category: rate.category, inclusive: rate.inclusive },
    });
    return taxRateView(row);
  });
}

/** One tax rate of the caller's org. */
export async function getTaxRate(deps: CatalogDeps, ctx: Ctx, id: string): Promise<TaxRateView> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'catalog:read');
    return taxRateView(await loadRate(tx, id));
  });
}

export interface TaxRateFilter extends PageParams {
  active?: boolean;
}

/** Tax rates newest first, optionally only active or only inactive ones. */
export async function listTaxRates(
  deps: CatalogDeps,
  ctx: Ctx,
  f: TaxRateFilter,
): Promise<ListPage<TaxRateView>> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'catalog:read');
    let q = tx.selectFrom('tax_rates').selectAll();
    if (f.active !== undefined) q = q.where('active', '=', f.active);
    const { rows, has_more } = await fetchPage(q, f);
    return { object: 'list', data: rows.map(taxRateView), has_more };
  });
}

/**
 * Renames or (de)activates a rate. Its terms never change: invoices and products refer to it,
 * so a different rate is a new rate (create it, then deactivate this one).
 */
export async function updateTaxRate(
  deps: CatalogDeps,
  ctx: Ctx,
  id: string,
  patch: TaxRatePatch,
): Promise<TaxRateView> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'catalog:write');
    await loadRate(tx, id);
    const term = TAX_RATE_TERMS.find((k) => patch[k] !== undefined);
    if (term) {
      throw new DomainError(
        'validation_failed',
        `A tax rate's ${term} cannot change once created, because documents refer to the rate: create a new rate and deactivate this one. Only name and active can be updated.`,
        term,
      );
    }
    const name = patch.name?.trim();
    if (name !== undefined && (name.length < 1 || name.length > 100))
      throw new DomainError('validation_failed', 'name must be 1 to 100 characters.', 'name');
    const changes = {
      ...(name !== undefined ? { name } : {}),
      ...(patch.active !== undefined ? { active: patch.active } : {}),
    };
    if (Object.keys(changes).length === 0) return taxRateView(await loadRate(tx, id));
    const row = await tx
      .updateTable('tax_rates')
      .set(changes)
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: 'tax_rate.updated',
      target: { type: 'tax_rate', id },
      outcome: 'success',
      meta: ctx.meta,
      details: {
        fields: Object.keys(changes).sort(),
        ...(patch.active !== undefined ? { active: patch.active } : {}),
      },
    });
    return taxRateView(row);
  });
}
