import { z } from 'zod';
import {
  type CatalogDeps,
  createTaxRate,
  getTaxRate,
  listTaxRates,
  TAX_RATE_TERMS,
  updateTaxRate,
} from '../../app/tax-rates.js';
import { VAT_CATEGORIES } from '../../domain/tax.js';
import { requireCtx } from '../ctx.js';
import type { App } from '../route.js';
import { IdParam, ListQuery, listOf } from './common.js';

/** Trimmed text of at most `max` characters; NUL cannot be stored in PostgreSQL text, so it is refused here. */
export const Text = (max: number, min = 0) =>
  z
    .string()
    .trim()
    .min(min)
    .max(max)
    .refine((s) => !s.includes('\u0000'), 'must not contain NUL characters');

const Name = Text(100, 1);

export const TaxRateCreate = z
  .object({
    name: Name,
    // The grammar and the EN 16931 rules live in src/domain/tax.ts, so they hold everywhere.
    percentage: z
      .string()
      .min(1)
      .max(20)
      .describe('a decimal string with at most 6 decimals, 0 to 100, e.g. "20.0" or "7.125"'),
    inclusive: z.boolean(),
    category: z.enum(VAT_CATEGORIES).describe('EN 16931 VAT category code (UNCL5305)'),
    compound: z.boolean().optional(),
    exemption_reason: Text(300).nullish(),
    exemption_reason_code: Text(30).nullish(),
    jurisdiction: Text(50).nullish(),
  })
  .strict();

const immutable = Object.fromEntries(
  TAX_RATE_TERMS.map((k) => [
    k,
    z.unknown().optional().describe('immutable: a request that sets it is refused (422)'),
  ]),
) as Record<(typeof TAX_RATE_TERMS)[number], z.ZodOptional<z.ZodUnknown>>;

/** Only name and active change; the terms are accepted by the schema so the refusal can say why. */
export const TaxRatePatch = z
  .object({ name: Name.optional(), active: z.boolean().optional(), ...immutable })
  .strict();

export const TaxRate = z.object({
  id: z.string(),
  object: z.literal('tax_rate'),
  name: z.string(),
  percentage: z.string(),
  inclusive: z.boolean(),
  compound: z.boolean(),
  category: z.string(),
  exemption_reason: z.string().nullable(),
  exemption_reason_code: z.string().nullable(),
  jurisdiction: z.string().nullable(),
  active: z.boolean(),
  created_at: z.string(),
});

export const TaxRateQuery = ListQuery.extend({ active: z.enum(['true', 'false']).optional() });

/** Tax rates: create, read, list, rename or (de)activate; terms are immutable. */
export function taxRateRoutes(app: App, deps: CatalogDeps): void {
  const id = { params: IdParam('txr') };
  app.post(
    '/v1/tax_rates',
    {
      config: { auth: { permission: 'catalog:write' } },
      schema: { body: TaxRateCreate, response: { 200: TaxRate } },
    },
    async (req) => createTaxRate(deps, requireCtx(req), req.body),
  );
  app.get(
    '/v1/tax_rates',
    {
      config: { auth: { permission: 'catalog:read' } },
      schema: { querystring: TaxRateQuery, response: { 200: listOf(TaxRate) } },
    },
    async (req) => {
      const { active, ...page } = req.query;
      return listTaxRates(deps, requireCtx(req), {
        ...page,
        ...(active !== undefined ? { active: active === 'true' } : {}),
      });
    },
  );
  app.get(
    '/v1/tax_rates/:id',
    { config: { auth: { permission: 'catalog:read' } }, schema: { ...id, response: { 200: TaxRate } } },
    async (req) => getTaxRate(deps, requireCtx(req), req.params.id),
  );
  app.patch(
    '/v1/tax_rates/:id',
    {
      config: { auth: { permission: 'catalog:write' } },
      schema: { ...id, body: TaxRatePatch, response: { 200: TaxRate } },
    },
    async (req) => updateTaxRate(deps, requireCtx(req), req.params.id, req.body),
  );
}
