import { z } from 'zod';
import {
  type BillingDeps,
  createCustomer,
  getCustomer,
  listCustomers,
  setCustomerArchived,
  updateCustomer,
} from '../../app/customers.js';
import { requireCtx } from '../ctx.js';
import type { App } from '../route.js';
import { IdParam, ListQuery, listOf } from './common.js';

export const Address = z
  .object({
    line1: z.string().trim().min(1).max(200),
    line2: z.string().trim().max(200).nullish(),
    city: z.string().trim().min(1).max(100),
    postal_code: z.string().trim().max(20).nullish(),
    region: z.string().trim().max(100).nullish(),
    country: z.string().regex(/^[A-Z]{2}$/, 'ISO 3166-1 alpha-2 country code, e.g. DE'),
  })
  .strict();

const Metadata = z
  .record(
    z.string().regex(/^[a-z0-9_.-]{1,40}$/, 'metadata keys are 1-40 of a-z 0-9 _ . -'),
    z.string().max(500),
  )
  .refine((m) => Object.keys(m).length <= 50, 'at most 50 metadata keys');

const UserId = z.string().regex(/^usr_[0-9a-z]{32}$/, 'a user id (usr_…)');

const fields = {
  name: z.string().trim().min(1).max(200),
  legal_name: z.string().trim().min(1).max(200).nullish(),
  display_name: z.string().trim().min(1).max(200).nullish(),
  email: z.email().max(254).nullish(),
  cc_emails: z.array(z.email().max(254)).max(10).nullish(),
  phone: z
    .string()
    .trim()
    .regex(/^\+?[0-9 ()./-]{3,32}$/, 'a phone number')
    .nullish(),
  address: Address.nullish(),
  shipping_address: Address.nullish(),
  tax_id: z.string().trim().min(2).max(50).nullish(),
  currency: z
    .string()
    .regex(/^[A-Za-z]{3}$/, 'an ISO 4217 currency code')
    .nullish(),
  language: z
    .string()
    .regex(/^[a-z]{2,3}(-[A-Z]{2})?$/, 'a language tag such as en or de-AT')
    .nullish(),
  payment_terms_days: z.number().int().min(0).max(365),
  owner_user: UserId.nullish(),
  notes: z.string().max(5000).nullish(),
  metadata: Metadata,
};

export const CustomerCreate = z
  .object({
    ...fields,
    payment_terms_days: fields.payment_terms_days.optional(),
    metadata: Metadata.optional(),
  })
  .strict();
export const CustomerPatch = z
  .object({
    ...fields,
    name: fields.name.optional(),
    payment_terms_days: fields.payment_terms_days.optional(),
    metadata: Metadata.optional(),
  })
  .strict();

export const Customer = z.object({
  id: z.string(),
  object: z.literal('customer'),
  name: z.string(),
  legal_name: z.string().nullable(),
  display_name: z.string().nullable(),
  email: z.string().nullable(),
  cc_emails: z.array(z.string()),
  phone: z.string().nullable(),
  address: Address.nullable(),
  shipping_address: Address.nullable(),
  tax_id: z.string().nullable(),
  currency: z.string().nullable(),
  language: z.string().nullable(),
  payment_terms_days: z.number(),
  owner_user: z.string().nullable(),
  notes: z.string().nullable(),
  metadata: z.record(z.string(), z.string()),
  pii_masked: z.boolean(),
  credit_balance: z.number().int(),
  archived: z.boolean(),
  erased: z.boolean(),
  legal_hold: z.boolean(),
  created_at: z.string(),
  updated_at: z.string(),
});

const CustomerQuery = ListQuery.extend({
  email: z.string().max(254).optional(),
  tax_id: z.string().max(50).optional(),
  display_name_prefix: z.string().min(1).max(200).optional(),
  owner_user: UserId.optional(),
  include_archived: z.enum(['true', 'false']).optional(),
});

/** Customers: create, read (PII masked without customers:read_pii), search, rectify, archive. */
export function customerRoutes(app: App, deps: BillingDeps): void {
  const id = { params: IdParam('cus') };
  app.post(
    '/v1/customers',
    {
      config: { auth: { permission: 'customers:write' } },
      schema: { body: CustomerCreate, response: { 200: Customer } },
    },
    async (req) => createCustomer(deps, requireCtx(req), req.body),
  );
  app.get(
    '/v1/customers',
    {
      config: { auth: { permission: 'customers:read' } },
      schema: { querystring: CustomerQuery, response: { 200: listOf(Customer) } },
    },
    async (req) =>
      listCustomers(deps, requireCtx(req), {
        ...req.query,
        include_archived: req.query.include_archived === 'true',
      }),
  );
  app.get(
    '/v1/customers/:id',
    { config: { auth: { permission: 'customers:read' } }, schema: { ...id, response: { 200: Customer } } },
    async (req) => getCustomer(deps, requireCtx(req), req.params.id),
  );
  app.patch(
    '/v1/customers/:id',
    {
      config: { auth: { permission: 'customers:write' } },
      schema: { ...id, body: CustomerPatch, response: { 200: Customer } },
    },
    async (req) => updateCustomer(deps, requireCtx(req), req.params.id, req.body),
  );
  for (const [action, archived] of [
    ['archive', true],
    ['unarchive', false],
  ] as const) {
    app.post(
      `/v1/customers/:id/${action}`,
      { config: { auth: { permission: 'customers:write' } }, schema: { ...id, response: { 200: Customer } } },
      async (req) => setCustomerArchived(deps, requireCtx(req), req.params.id, archived),
    );
  }
}
