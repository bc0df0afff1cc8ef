import { type Db, inOrg, inTransaction } from '../adapters/db/index.js';
import { DomainError } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import { assertCurrency } from '../domain/money.js';
import { recordAudit } from './audit.js';
import { authorize } from './authz.js';
import type { Ctx, RequestMeta } from './context.js';

export interface OrgView {
  id: string;
  name: string;
  base_currency: string;
  created_at: string;
}

function view(row: { id: string; name: string; base_currency: string; created_at: Date }): OrgView {
  return {
    id: row.id,
    name: row.name,
    base_currency: row.base_currency,
    created_at: row.created_at.toISOString(),
  };
}

/** Creates a new org (the system acting: `billvault init`, or sign-up later). */
export async function createOrg(
  db: Db,
  input: { name: string; baseCurrency: string },
  meta: RequestMeta = {},
) {
  const name = input.name.trim();
  if (name.length < 1 || name.length > 200) {
    throw new DomainError('validation_failed', 'The org name must be 1 to 200 characters.', 'name');
  }
  const baseCurrency = assertCurrency(input.baseCurrency);
  const id = newId('org');
  return inTransaction(db, { orgId: id }, async (tx) => {
    const row = await tx
      .insertInto('orgs')
      .values({ id, name, base_currency: baseCurrency })
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(tx, {
      orgId: id,
      actor: { kind: 'system', id: 'system' },
      action: 'org.created',
      target: { type: 'org', id },
      outcome: 'success',
      meta,
      details: { base_currency: baseCurrency },
    });
    return view(row);
  });
}

/** The actor's own org. */
export async function getOrg(db: Db, ctx: Ctx): Promise<OrgView> {
  return inOrg(db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'org:read');
    const row = await tx.selectFrom('orgs').selectAll().where('id', '=', ctx.actor.orgId).executeTakeFirst();
    if (!row) throw new DomainError('not_found', 'No such org.');
    return view(row);
  });
}

/** All orgs, for administration from the CLI (runs as the owner connection, not per tenant). */
export async function listOrgsAsOperator(db: Db): Promise<OrgView[]> {
  const rows = await db.selectFrom('orgs').selectAll().orderBy('created_at').execute();
  return rows.map(view);
}

/** Reads one org setting. */
export async function getSetting(db: Db, ctx: Ctx, key: string): Promise<unknown> {
  return inOrg(db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'settings:read');
    const row = await tx.selectFrom('org_settings').select('value').where('key', '=', key).executeTakeFirst();
    return row?.value;
  });
}

/** Writes one org setting, audited in the same transaction. */
export async function putSetting(db: Db, ctx: Ctx, key: string, value: unknown): Promise<void> {
  await inOrg(db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'settings:write');
    await tx
      .insertInto('org_settings')
      .values({ org_id: ctx.actor.orgId, key, value: JSON.stringify(value) })
      .onConflict((oc) =>
        oc.columns(['org_id', 'key']).doUpdateSet({ value: JSON.stringify(value), updated_at: new Date() }),
      )
      .execute();
    await recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: 'setting.updated',
      target: { type: 'setting', id: key },
      outcome: 'success',
      meta: ctx.meta,
    });
  });
}
