import { type Selectable, sql } from 'kysely';
import { customersCrypto } from '../adapters/crypto/encrypted-tables.js';
import { type Db, inOrg, type Tx } from '../adapters/db/index.js';
import type { CustomersTable } from '../adapters/db/schema-billing.js';
import { DomainError } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import { maskEmail, maskName, maskTail, maskText } from '../domain/masking.js';
import { assertCurrency } from '../domain/money.js';
import { can, type ResourceRef } from '../domain/permissions.js';
import { recordAudit } from './audit.js';
import { assignedOnly, authorize } from './authz.js';
import type { Ctx } from './context.js';
import { fetchPage, type ListPage, type PageParams } from './pagination.js';
import type { CipherScope, Clock, FieldCipher } from './ports.js';

/** What the billing use cases need from the outside. */
export interface BillingDeps {
  db: Db;
  cipher: FieldCipher;
  clock: Clock;
}

export interface Address {
  line1: string;
  line2?: string | null;
  city: string;
  postal_code?: string | null;
  region?: string | null;
  /** ISO 3166-1 alpha-2. */
  country: string;
}

export interface CustomerInput {
  name: string;
  legal_name?: string | null;
  display_name?: string | null;
  email?: string | null;
  cc_emails?: string[] | null;
  phone?: string | null;
  address?: Address | null;
  shipping_address?: Address | null;
  tax_id?: string | null;
  currency?: string | null;
  language?: string | null;
  payment_terms_days?: number;
  owner_user?: string | null;
  notes?: string | null;
  metadata?: Record<string, string>;
}

export type CustomerPatch = Partial<CustomerInput>;

export interface CustomerView {
  id: string;
  object: 'customer';
  name: string;
  legal_name: string | null;
  display_name: string | null;
  email: string | null;
  cc_emails: string[];
  phone: string | null;
  address: Address | null;
  shipping_address: Address | null;
  tax_id: string | null;
  currency: string | null;
  language: string | null;
  payment_terms_days: number;
  owner_user: string | null;
  notes: string | null;
  metadata: Record<string, string>;
  /** True when PII fields are masked because the caller lacks customers:read_pii. */
  pii_masked: boolean;
  /** Unapplied customer credit in minor units (ledger), in the customer's currency or the org's base. */
  credit_balance: number;
  archived: boolean;
  /** Erased (crypto-shredded): every PII field is gone for good. */
  erased: boolean;
  /** A legal hold blocks erasure. */
  legal_hold: boolean;
  created_at: string;
  updated_at: string;
}

type Row = Selectable<CustomersTable>;
type Plain = Record<keyof typeof customersCrypto.spec.fields, string | null>;

const scopeOf = (orgId: string, id: string): CipherScope => ({ orgId, subject: { type: 'customer', id } });

/** The record-level facts the policy needs about a customer. */
export function customerResource(row: { org_id: string; owner_user_id: string | null }): ResourceRef {
  return { orgId: row.org_id, ownerUserId: row.owner_user_id };
}

function parseJson<T>(v: string | null): T | null {
  return v === null ? null : (JSON.parse(v) as T);
}

function maskAddress(a: Address | null): Address | null {
  return (
    a && {
      line1: maskText(a.line1),
      line2: null,
      city: maskText(a.city),
      postal_code: null,
      region: null,
      country: a.country,
    }
  );
}

function toView(row: Row, plain: Plain, masked: boolean, creditBalance: bigint): CustomerView {
  const address = parseJson<Address>(plain.billing_address);
  const shipping = parseJson<Address>(plain.shipping_address);
  const cc = parseJson<string[]>(plain.cc_emails) ?? [];
  const name = row.erased_at ? 'Erased customer' : (plain.name ?? '');
  return {
    id: row.id,
    object: 'customer',
    name: masked && !row.erased_at ? maskName(name) : name,
    legal_name: plain.legal_name && (masked ? maskName(plain.legal_name) : plain.legal_name),
    display_name: row.display_name,
    email: plain.email && (masked ? maskEmail(plain.email) : plain.email),
    cc_emails: masked ? cc.map(maskEmail) : cc,
    phone: plain.phone && (masked ? maskTail(plain.phone) : plain.phone),
    address: masked ? maskAddress(address) : address,
    shipping_address: masked ? maskAddress(shipping) : shipping,
    tax_id: plain.tax_id && (masked ? maskTail(plain.tax_id, 3) : plain.tax_id),
    currency: row.currency,
    language: row.language,
    payment_terms_days: row.payment_terms_days,
    owner_user: row.owner_user_id,
    notes: plain.notes && (masked ? maskText(plain.notes) : plain.notes),
    metadata: row.metadata,
    pii_masked: masked,
    credit_balance: Number(creditBalance),
    archived: row.archived_at !== null,
    erased: row.erased_at !== null,
    legal_hold: row.legal_hold_at !== null,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

function piiValues(input: CustomerPatch): Partial<Plain> {
  const out: Partial<Plain> = {};
  const set = <K extends keyof Plain>(k: K, v: string | null | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set('name', input.name);
  set('legal_name', input.legal_name);
  set('email', input.email === undefined ? undefined : (input.email?.trim().toLowerCase() ?? null));
  if (input.cc_emails !== undefined)
    out.cc_emails = input.cc_emails?.length ? JSON.stringify(input.cc_emails) : null;
  set('phone', input.phone);
  if (input.address !== undefined) out.billing_address = input.address && JSON.stringify(input.address);
  if (input.shipping_address !== undefined)
    out.shipping_address = input.shipping_address && JSON.stringify(input.shipping_address);
  set('tax_id', input.tax_id);
  set('notes', input.notes);
  return out;
}

async function assertMember(tx: Tx, userId: string): Promise<void> {
  const m = await tx
    .selectFrom('memberships')
    .select('user_id')
    .where('user_id', '=', userId)
    .where('disabled_at', 'is', null)
    .executeTakeFirst();
  if (!m)
    throw new DomainError(
      'validation_failed',
      'owner_user is not an active member of this org.',
      'owner_user',
    );
}

/** Who owns a new or re-assigned customer: a sales rep can only assign to themselves. */
async function resolveOwner(
  tx: Tx,
  ctx: Ctx,
  requested: string | null | undefined,
): Promise<string | null | undefined> {
  if (assignedOnly(ctx, 'customers:write')) {
    if (requested !== undefined && requested !== ctx.actor.userId) {
      throw new DomainError(
        'forbidden',
        'A sales representative can only own their customers.',
        'owner_user',
      );
    }
    return ctx.actor.userId ?? null;
  }
  if (requested) await assertMember(tx, requested);
  return requested;
}

async function loadVisible(tx: Tx, ctx: Ctx, id: string, permission: 'customers:read' | 'customers:write') {
  const row = await tx.selectFrom('customers').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw new DomainError('not_found', 'No such customer.', 'id');
  await authorize(tx, ctx, permission, customerResource(row));
  if (permission === 'customers:write' && row.erased_at)
    throw new DomainError('customer_erased', 'This customer was erased and can no longer change.');
  return row;
}

async function present(deps: BillingDeps, tx: Tx, ctx: Ctx, row: Row): Promise<CustomerView> {
  const plain = (await customersCrypto.open(
    deps.cipher,
    tx,
    scopeOf(row.org_id, row.id),
    row.id,
    row,
  )) as Plain;
  const masked = !can(ctx.actor, 'customers:read_pii', customerResource(row));
  const currency =
    row.currency ??
    (await tx.selectFrom('orgs').select('base_currency').executeTakeFirstOrThrow()).base_currency;
  return toView(row, plain, masked, await creditBalance(tx, row.id, currency));
}

/** A customer's unapplied credit in one currency: credits − debits on the ledger's customer-credit account. */
export async function creditBalance(tx: Tx, customerId: string, currency: string): Promise<bigint> {
  const r = await sql<{ balance: string }>`
    SELECT coalesce(sum(l.credit - l.debit), 0)::text AS balance
      FROM journal_lines l
      JOIN journal_entries e ON e.org_id = l.org_id AND e.id = l.entry_id
     WHERE l.account = 'customer_credit' AND l.customer_id = ${customerId} AND e.currency = ${currency}`.execute(
    tx,
  );
  return BigInt(r.rows[0]?.balance ?? '0');
}

/** Creates a customer; PII is encrypted under the customer's own data key before it reaches SQL. */
export async function createCustomer(
  deps: BillingDeps,
  ctx: Ctx,
  input: CustomerInput,
): Promise<CustomerView> {
  const currency = input.currency ? assertCurrency(input.currency) : null;
  const id = newId('customer');
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'customers:write');
    const owner = await resolveOwner(tx, ctx, input.owner_user);
    const sealed = await customersCrypto.seal(
      deps.cipher,
      tx,
      scopeOf(ctx.actor.orgId, id),
      id,
      piiValues(input),
    );
    const now = deps.clock.now();
    const row = await tx
      .insertInto('customers')
      .values({
        ...sealed,
        org_id: ctx.actor.orgId,
        id,
        name_enc: sealed.name_enc as string,
        display_name: input.display_name ?? null,
        currency,
        language: input.language ?? null,
        payment_terms_days: input.payment_terms_days ?? 30,
        owner_user_id: owner ?? null,
        metadata: JSON.stringify(input.metadata ?? {}),
        created_at: now,
        updated_at: now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: 'customer.created',
      target: { type: 'customer', id },
      outcome: 'success',
      meta: ctx.meta,
      details: { fields: Object.keys(input).sort() },
    });
    return present(deps, tx, ctx, row);
  });
}

/** One customer; reading unmasked PII is itself an audited event. */
export async function getCustomer(deps: BillingDeps, ctx: Ctx, id: string): Promise<CustomerView> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    const row = await loadVisible(tx, ctx, id, 'customers:read');
    const view = await present(deps, tx, ctx, row);
    if (!view.pii_masked) {
      await recordAudit(tx, {
        orgId: ctx.actor.orgId,
        actor: ctx.actor,
        action: 'customer.pii_read',
        target: { type: 'customer', id },
        outcome: 'success',
        meta: ctx.meta,
      });
    }
    return view;
  });
}

export interface CustomerFilter extends PageParams {
  email?: string;
  tax_id?: string;
  display_name_prefix?: string;
  owner_user?: string;
  include_archived?: boolean;
}

/** Lists customers newest first; a sales rep sees only their own. Exact search by email/tax id uses blind indexes. */
export async function listCustomers(
  deps: BillingDeps,
  ctx: Ctx,
  f: CustomerFilter,
): Promise<ListPage<CustomerView>> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'customers:read');
    let q = tx.selectFrom('customers').selectAll();
    if (assignedOnly(ctx, 'customers:read')) q = q.where('owner_user_id', '=', ctx.actor.userId ?? '');
    if (!f.include_archived) q = q.where('archived_at', 'is', null);
    if (f.email)
      q = q.where(
        'email_bidx',
        '=',
        await customersCrypto.index(deps.cipher, tx, ctx.actor.orgId, 'email', f.email),
      );
    if (f.tax_id)
      q = q.where(
        'tax_id_bidx',
        '=',
        await customersCrypto.index(deps.cipher, tx, ctx.actor.orgId, 'tax_id', f.tax_id),
      );
    if (f.owner_user) q = q.where('owner_user_id', '=', f.owner_user);
    if (f.display_name_prefix) {
      const escaped = f.display_name_prefix.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`);
      q = q.where(sql<string>`lower(display_name)`, 'like', `${escaped}%`);
    }
    const { rows, has_more } = await fetchPage(q, f);
    const data: CustomerView[] = [];
    for (const row of rows) data.push(await present(deps, tx, ctx, row));
    const unmasked = data.filter((c) => !c.pii_masked).map((c) => c.id);
    if (unmasked.length > 0) {
      await recordAudit(tx, {
        orgId: ctx.actor.orgId,
        actor: ctx.actor,
        action: 'customer.pii_listed',
        outcome: 'success',
        meta: ctx.meta,
        details: { customers: unmasked },
      });
    }
    return { object: 'list', data, has_more };
  });
}

/** Rectification: an ordinary audited update (the event names the fields changed, never their values). */
export async function updateCustomer(
  deps: BillingDeps,
  ctx: Ctx,
  id: string,
  patch: CustomerPatch,
): Promise<CustomerView> {
  const currency = patch.currency ? assertCurrency(patch.currency) : patch.currency;
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    const row = await loadVisible(tx, ctx, id, 'customers:write');
    if (patch.name === null) throw new DomainError('validation_failed', 'name cannot be removed.', 'name');
    const owner = patch.owner_user === undefined ? undefined : await resolveOwner(tx, ctx, patch.owner_user);
    const sealed = await customersCrypto.seal(deps.cipher, tx, scopeOf(row.org_id, id), id, piiValues(patch));
    const updated = await tx
      .updateTable('customers')
      .set({
        ...sealed,
        ...(patch.display_name !== undefined ? { display_name: patch.display_name } : {}),
        ...(currency !== undefined ? { currency } : {}),
        ...(patch.language !== undefined ? { language: patch.language } : {}),
        ...(patch.payment_terms_days !== undefined ? { payment_terms_days: patch.payment_terms_days } : {}),
        ...(owner !== undefined ? { owner_user_id: owner } : {}),
        ...(patch.metadata !== undefined ? { metadata: JSON.stringify(patch.metadata) } : {}),
        version: sql<number>`version + 1`,
        updated_at: deps.clock.now(),
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: 'customer.updated',
      target: { type: 'customer', id },
      outcome: 'success',
      meta: ctx.meta,
      details: { fields: Object.keys(patch).sort() },
    });
    return present(deps, tx, ctx, updated);
  });
}

/** Archives (or restores) a customer: documents keep referring to it, new ones cannot. */
export async function setCustomerArchived(
  deps: BillingDeps,
  ctx: Ctx,
  id: string,
  archived: boolean,
): Promise<CustomerView> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await loadVisible(tx, ctx, id, 'customers:write');
    const updated = await tx
      .updateTable('customers')
      .set({
        archived_at: archived ? deps.clock.now() : null,
        updated_at: deps.clock.now(),
        version: sql<number>`version + 1`,
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: archived ? 'customer.archived' : 'customer.unarchived',
      target: { type: 'customer', id },
      outcome: 'success',
      meta: ctx.meta,
    });
    return present(deps, tx, ctx, updated);
  });
}

/** A customer shown inside a document (`expand`): same masking and PII-read audit as a direct read. */
export async function getCustomerForDocument(
  deps: BillingDeps,
  tx: Tx,
  ctx: Ctx,
  id: string,
): Promise<CustomerView> {
  const row = await tx.selectFrom('customers').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const view = await present(deps, tx, ctx, row);
  if (!view.pii_masked) {
    await recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: 'customer.pii_read',
      target: { type: 'customer', id },
      outcome: 'success',
      meta: ctx.meta,
      details: { via: 'expand' },
    });
  }
  return view;
}
