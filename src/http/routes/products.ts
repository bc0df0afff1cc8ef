import { z } from 'zod';
import {
  createProduct,
  getProduct,
  listProducts,
  MAX_UNIT_AMOUNT,
  updateProduct,
} from '../../app/products.js';
import type { CatalogDeps } from '../../app/tax-rates.js';
import { requireCtx } from '../ctx.js';
import type { App } from '../route.js';
import { IdParam, ListQuery, listOf } from './common.js';
import { Text } from './tax-rates.js';

const Currency = z.string().regex(/^[A-Za-z]{3}$/, 'an ISO 4217 currency code');
const amountMessage = `a whole number of minor units from 0 to ${MAX_UNIT_AMOUNT} (2^53-1); use unit_amount_decimal for sub-minor prices`;
/** Whole minor units; JSON numbers beyond 2^53-1 are not exact, so they are out of range. */
const UnitAmount = z
  .number()
  .int({ error: amountMessage })
  .min(0, amountMessage)
  .max(Number.MAX_SAFE_INTEGER, amountMessage);
const UnitAmountDecimal = z
  .string()
  .min(1)
  .max(40)
  .describe('a decimal string of minor units with at most 6 decimals, e.g. "0.125" for an eighth of a cent');
const TaxRateId = z.string().regex(/^txr_[0-9a-z]{32}$/, 'a tax rate id (txr_…)');
const UnitCode = z
  .string()
  .regex(/^[A-Z0-9]{1,3}$/, 'a UN/ECE Recommendation 20 unit code such as C62 (one) or HUR (hour)');

export const PriceIn = z
  .object({
    currency: Currency,
    unit_amount: UnitAmount.nullish(),
    unit_amount_decimal: UnitAmountDecimal.nullish(),
  })
  .strict();

export const ProductCreate = z
  .object({
    name: Text(200, 1),
    unit_amount: UnitAmount.nullish(),
    unit_amount_decimal: UnitAmountDecimal.nullish(),
    currency: Currency,
    tax_rates: z.array(TaxRateId).max(10).optional(),
    description: Text(2000).nullish(),
    unit_code: UnitCode.optional(),
    prices: z.array(PriceIn).max(50).optional(),
  })
  .strict();

export const ProductPatch = z
  .object({
    name: Text(200, 1).optional(),
    description: Text(2000).nullish(),
    unit_code: UnitCode.optional(),
    tax_rates: z.array(TaxRateId).max(10).optional(),
    active: z.boolean().optional(),
    prices: z.array(PriceIn).min(1).max(50).optional().describe('replaces every price of the product'),
  })
  .strict();

const PriceOut = z.object({
  currency: z.string(),
  unit_amount: z.number().int().nullable(),
  unit_amount_decimal: z.string().nullable(),
});

export const Product = z.object({
  id: z.string(),
  object: z.literal('product'),
  name: z.string(),
  description: z.string().nullable(),
  unit_code: z.string(),
  currency: z.string(),
  unit_amount: z.number().int().nullable(),
  unit_amount_decimal: z.string().nullable(),
  prices: z.array(PriceOut),
  tax_rates: z.array(z.string()),
  active: z.boolean(),
  created_at: z.string(),
  updated_at: z.string(),
});

export const ProductQuery = ListQuery.extend({ active: z.enum(['true', 'false']).optional() });

/** Products: create, read, list, update (prices and tax rates are replaced as a whole). */
export function productRoutes(app: App, deps: CatalogDeps): void {
  const id = { params: IdParam('prd') };
  app.post(
    '/v1/products',
    {
      config: { auth: { permission: 'catalog:write' } },
      schema: { body: ProductCreate, response: { 200: Product } },
    },
    async (req) => createProduct(deps, requireCtx(req), req.body),
  );
  app.get(
    '/v1/products',
    {
      config: { auth: { permission: 'catalog:read' } },
      schema: { querystring: ProductQuery, response: { 200: listOf(Product) } },
    },
    async (req) => {
      const { active, ...page } = req.query;
      return listProducts(deps, requireCtx(req), {
        ...page,
        ...(active !== undefined ? { active: active === 'true' } : {}),
      });
    },
  );
  app.get(
    '/v1/products/:id',
    { config: { auth: { permission: 'catalog:read' } }, schema: { ...id, response: { 200: Product } } },
    async (req) => getProduct(deps, requireCtx(req), req.params.id),
  );
  app.patch(
    '/v1/products/:id',
    {
      config: { auth: { permission: 'catalog:write' } },
      schema: { ...id, body: ProductPatch, response: { 200: Product } },
    },
    async (req) => updateProduct(deps, requireCtx(req), req.params.id, req.body),
  );
}
