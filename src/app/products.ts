import type { Selectable } from 'kysely';
import { inOrg, type Tx } from '../adapters/db/index.js';
import type { ProductPricesTable, ProductsTable } from '../adapters/db/schema-billing.js';
import { DomainError } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import { assertCurrency, formatRational, parseQuantity, type Rational } from '../domain/money.js';
import { recordAudit } from './audit.js';
import { authorize } from './authz.js';
import type { Ctx } from './context.js';
import { fetchPage, type ListPage, type PageParams } from './pagination.js';
import type { CatalogDeps } from './tax-rates.js';

/**
 * The largest unit price we accept, in minor units: 2^53 − 1, so that every amount we return is
 * an exact JSON number in any client.
 */
export const MAX_UNIT_AMOUNT = BigInt(Number.MAX_SAFE_INTEGER);

/** One price of a product: whole minor units, or a decimal string of minor units for sub-minor prices. */
export interface PriceInput {
  currency: string;
  unit_amount?: number | null;
  unit_amount_decimal?: string | null;
}

export interface ProductInput {
  name: string;
  /** The primary price: `unit_amount` (or `unit_amount_decimal`) in `currency`. */
  currency: string;
  unit_amount?: number | null;
  unit_amount_decimal?: string | null;
  /** More prices, one per currency (not repeating the primary one). */
  prices?: PriceInput[];
  tax_rates?: string[];
  description?: string | null;
  /** UN/ECE Recommendation 20 unit code (C62 = one, HUR = hour, …). */
  unit_code?: string;
}

export interface ProductPatch {
  name?: string;
  description?: string | null;
  unit_code?: string;
  tax_rates?: string[];
  active?: boolean;
  /** Replaces every price of the product. */
  prices?: PriceInput[];
}

export interface PriceView {
  currency: string;
  unit_amount: number | null;
  unit_amount_decimal: string | null;
}

export interface ProductView {
  id: string;
  object: 'product';
  name: string;
  description: string | null;
  unit_code: string;
  /** The default price: in the org's base currency when the product has one, else the first by currency code. */
  currency: string;
  unit_amount: number | null;
  unit_amount_decimal: string | null;
  /** Every price, the default one first, then by currency code. */
  prices: PriceView[];
  tax_rates: string[];
  active: boolean;
  created_at: string;
  updated_at: string;
}

interface Price {
  currency: string;
  unit_amount: bigint | null;
  unit_amount_decimal: string | null;
}

type Row = Selectable<ProductsTable>;
type PriceRow = Selectable<ProductPricesTable>;

function invalidAmount(message: string, param: string): DomainError {
  return new DomainError('amount_invalid', message, param);
}

/** A stored amount as an exact JSON number; input checks keep every amount within range. */
function jsonAmount(v: bigint): number {
  if (v > MAX_UNIT_AMOUNT || v < -MAX_UNIT_AMOUNT)
    throw new RangeError('amount outside the exact JSON range');
  return Number(v);
}

/** Validates one price; `at` is the param prefix ('' for the primary price, 'prices.N.' otherwise). */
function parsePrice(p: PriceInput, at: string): Price {
  let currency: string;
  try {
    currency = assertCurrency(p.currency);
  } catch (e) {
    if (e instanceof DomainError) throw new DomainError(e.code, e.message, `${at}currency`);
    throw e;
  }
  const hasWhole = p.unit_amount !== undefined && p.unit_amount !== null;
  const hasDecimal = p.unit_amount_decimal !== undefined && p.unit_amount_decimal !== null;
  if (hasWhole === hasDecimal) {
    throw invalidAmount(
      'Give exactly one of unit_amount (whole minor units) or unit_amount_decimal (a decimal string of minor units).',
      `${at}unit_amount`,
    );
  }
  if (hasWhole) {
    const n = p.unit_amount as number;
    if (!Number.isSafeInteger(n) || n < 0) {
      throw invalidAmount(
        `unit_amount must be a whole number of minor units from 0 to ${MAX_UNIT_AMOUNT}.`,
        `${at}unit_amount`,
      );
    }
    return { currency, unit_amount: BigInt(n), unit_amount_decimal: null };
  }
  let value: Rational;
  try {
    value = parseQuantity(p.unit_amount_decimal as string);
  } catch {
    throw invalidAmount(
      'unit_amount_decimal must be a non-negative decimal string of minor units with at most 6 decimals, like "0.125".',
      `${at}unit_amount_decimal`,
    );
  }
  if (value.num > MAX_UNIT_AMOUNT * value.den) {
    throw invalidAmount(
      `unit_amount_decimal must not exceed ${MAX_UNIT_AMOUNT} minor units.`,
      `${at}unit_amount_decimal`,
    );
  }
  return { currency, unit_amount: null, unit_amount_decimal: formatRational(value) };
}

/** The product's prices, one per currency. */
function parsePrices(list: { price: PriceInput; at: string }[]): Price[] {
  const seen = new Set<string>();
  return list.map(({ price, at }) => {
    const p = parsePrice(price, at);
    if (seen.has(p.currency)) {
      throw new DomainError(
        'validation_failed',
        `A product has one price per currency: ${p.currency} is given twice.`,
        `${at}currency`,
      );
    }
    seen.add(p.currency);
    return p;
  });
}

function checkText(input: { name?: string; description?: string | null; unit_code?: string }) {
  if (input.name !== undefined && (input.name.length < 1 || input.name.length > 200))
    throw new DomainError('validation_failed', 'name must be 1 to 200 characters.', 'name');
  if (input.description && input.description.length > 2000)
    throw new DomainError('validation_failed', 'description must be at most 2000 characters.', 'description');
  if (input.unit_code !== undefined && !/^[A-Z0-9]{1,3}$/.test(input.unit_code))
    throw new DomainError(
      'validation_failed',
      'unit_code must be a UN/ECE Recommendation 20 code such as C62 or HUR.',
      'unit_code',
    );
}

/** Referenced tax rates must be distinct, exist in this org, be active, and agree on inclusive pricing. */
async function checkTaxRates(tx: Tx, ids: string[]): Promise<void> {
  const seen = new Set<string>();
  ids.forEach((id, i) => {
    if (seen.has(id))
      throw new DomainError('validation_failed', `Tax rate ${id} is listed twice.`, `tax_rates.${i}`);
    seen.add(id);
  });
  if (ids.length === 0) return;
  const rows = await tx
    .selectFrom('tax_rates')
    .select(['id', 'active', 'inclusive'])
    .where('id', 'in', ids)
    .execute();
  const byId = new Map(rows.map((r) => [r.id, r]));
  ids.forEach((id, i) => {
    const r = byId.get(id);
    if (!r) throw new DomainError('validation_failed', `No tax rate ${id} in this org.`, `tax_rates.${i}`);
    if (!r.active)
      throw new DomainError(
        'validation_failed',
        `Tax rate ${id} is inactive and cannot be used on products.`,
        `tax_rates.${i}`,
      );
  });
  const inclusive = new Set(rows.map((r) => r.inclusive));
  if (inclusive.size > 1) {
    throw new DomainError(
      'tax_inclusive_mixed',
      'A product cannot mix tax-inclusive and tax-exclusive rates.',
      'tax_rates',
    );
  }
}

async function baseCurrency(tx: Tx, orgId: string): Promise<string> {
  const org = await tx.selectFrom('orgs').select('base_currency').where('id', '=', orgId).executeTakeFirst();
  return org?.base_currency ?? '';
}

function priceView(p: Price | PriceRow): PriceView {
  return {
    currency: p.currency,
    unit_amount: p.unit_amount === null ? null : jsonAmount(p.unit_amount),
    unit_amount_decimal: p.unit_amount_decimal,
  };
}

function toView(row: Row, prices: (Price | PriceRow)[], base: string): ProductView {
  const sorted = [...prices].sort((a, b) =>
    a.currency === base ? -1 : b.currency === base ? 1 : a.currency < b.currency ? -1 : 1,
  );
  const views = sorted.map(priceView);
  const first = views[0];
  if (!first) throw new Error(`product ${row.id} has no price`);
  return {
    id: row.id,
    object: 'product',
    name: row.name,
    description: row.description,
    unit_code: row.unit_code,
    currency: first.currency,
    unit_amount: first.unit_amount,
    unit_amount_decimal: first.unit_amount_decimal,
    prices: views,
    tax_rates: row.tax_rate_ids,
    active: row.active,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

async function pricesOf(tx: Tx, ids: string[]): Promise<Map<string, PriceRow[]>> {
  const out = new Map<string, PriceRow[]>(ids.map((id) => [id, []]));
  if (ids.length === 0) return out;
  const rows = await tx.selectFrom('product_prices').selectAll().where('product_id', 'in', ids).execute();
  for (const r of rows) out.get(r.product_id)?.push(r);
  return out;
}

async function writePrices(tx: Tx, orgId: string, productId: string, prices: Price[]): Promise<void> {
  await tx
    .insertInto('product_prices')
    .values(prices.map((p) => ({ org_id: orgId, product_id: productId, ...p })))
    .execute();
}

async function present(tx: Tx, orgId: string, row: Row): Promise<ProductView> {
  const prices = (await pricesOf(tx, [row.id])).get(row.id) ?? [];
  return toView(row, prices, await baseCurrency(tx, orgId));
}

/** Creates a product with its prices; every referenced tax rate must be an active rate of the org. */
export async function createProduct(deps: CatalogDeps, ctx: Ctx, input: ProductInput): Promise<ProductView> {
  const name = input.name.trim();
  const description = input.description?.trim() || null;
  checkText({ name, description, ...(input.unit_code !== undefined ? { unit_code: input.unit_code } : {}) });
  const prices = parsePrices([
    {
      price: {
        currency: input.currency,
        unit_amount: input.unit_amount ?? null,
        unit_amount_decimal: input.unit_amount_decimal ?? null,
      },
      at: '',
    },
    ...(input.prices ?? []).map((price, i) => ({ price, at: `prices.${i}.` })),
  ]);
  const taxRates = input.tax_rates ?? [];
  const id = newId('product');
  const now = deps.clock.now();
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'catalog:write');
    await checkTaxRates(tx, taxRates);
    const row = await tx
      .insertInto('products')
      .values({
        org_id: ctx.actor.orgId,
        id,
        name,
        description,
        ...(input.unit_code !== undefined ? { unit_code: input.unit_code } : {}),
        tax_rate_ids: taxRates,
        created_at: now,
        updated_at: now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await writePrices(tx, ctx.actor.orgId, id, prices);
    await recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: 'product.created',
      target: { type: 'product', id },
      outcome: 'success',
      meta: ctx.meta,
      details: { currencies: prices.map((p) => p.currency), tax_rates: taxRates },
    });
    return toView(row, prices, await baseCurrency(tx, ctx.actor.orgId));
  });
}

/** One product of the caller's org, with its prices. */
export async function getProduct(deps: CatalogDeps, ctx: Ctx, id: string): Promise<ProductView> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'catalog:read');
    const row = await tx.selectFrom('products').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new DomainError('not_found', 'No such product.', 'id');
    return present(tx, ctx.actor.orgId, row);
  });
}

export interface ProductFilter extends PageParams {
  active?: boolean;
}

/** Products newest first, optionally only active or only inactive ones. */
export async function listProducts(
  deps: CatalogDeps,
  ctx: Ctx,
  f: ProductFilter,
): Promise<ListPage<ProductView>> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'catalog:read');
    let q = tx.selectFrom('products').selectAll();
    if (f.active !== undefined) q = q.where('active', '=', f.active);
    const { rows, has_more } = await fetchPage(q, f);
    const prices = await pricesOf(
      tx,
      rows.map((r) => r.id),
    );
    const base = await baseCurrency(tx, ctx.actor.orgId);
    return { object: 'list', data: rows.map((r) => toView(r, prices.get(r.id) ?? [], base)), has_more };
  });
}

/** Updates a product; `prices` replaces every price, `tax_rates` the whole list. */
export async function updateProduct(
  deps: CatalogDeps,
  ctx: Ctx,
  id: string,
  patch: ProductPatch,
): Promise<ProductView> {
  const name = patch.name?.trim();
  const description = patch.description === undefined ? undefined : patch.description?.trim() || null;
  checkText({
    ...(name !== undefined ? { name } : {}),
    ...(description !== undefined ? { description } : {}),
    ...(patch.unit_code !== undefined ? { unit_code: patch.unit_code } : {}),
  });
  let prices: Price[] | undefined;
  if (patch.prices !== undefined) {
    if (patch.prices.length === 0)
      throw new DomainError('validation_failed', 'A product needs at least one price.', 'prices');
    prices = parsePrices(patch.prices.map((price, i) => ({ price, at: `prices.${i}.` })));
  }
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'catalog:write');
    // The row lock serialises concurrent price replacements of one product.
    const current = await tx
      .selectFrom('products')
      .select('id')
      .where('id', '=', id)
      .forUpdate()
      .executeTakeFirst();
    if (!current) throw new DomainError('not_found', 'No such product.', 'id');
    if (patch.tax_rates !== undefined) await checkTaxRates(tx, patch.tax_rates);
    const row = await tx
      .updateTable('products')
      .set({
        ...(name !== undefined ? { name } : {}),
        ...(description !== undefined ? { description } : {}),
        ...(patch.unit_code !== undefined ? { unit_code: patch.unit_code } : {}),
        ...(patch.tax_rates !== undefined ? { tax_rate_ids: patch.tax_rates } : {}),
        ...(patch.active !== undefined ? { active: patch.active } : {}),
        updated_at: deps.clock.now(),
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    if (prices) {
      await tx.deleteFrom('product_prices').where('product_id', '=', id).execute();
      await writePrices(tx, ctx.actor.orgId, id, prices);
    }
    await recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: 'product.updated',
      target: { type: 'product', id },
      outcome: 'success',
      meta: ctx.meta,
      details: {
        fields: Object.keys(patch)
          .filter((k) => patch[k as keyof ProductPatch] !== undefined)
          .sort(),
        ...(prices ? { currencies: prices.map((p) => p.currency) } : {}),
      },
    });
    return present(tx, ctx.actor.orgId, row);
  });
}
