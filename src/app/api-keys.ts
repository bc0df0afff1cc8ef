import { sql } from 'kysely';
import { inOrg, PREPARED } from '../adapters/db/index.js';
import { invalidScopes } from '../domain/auth-policy.js';
import { DomainError } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import { type Actor, isPermission, isRole, type Permission, type Role } from '../domain/permissions.js';
import { recordAudit } from './audit.js';
import { authorize } from './authz.js';
import type { Ctx, RequestMeta } from './context.js';
import { enqueueNotice } from './outbox.js';
import { hashSecret, type IdentityDeps, inPlatform, randomToken } from './sessions.js';

export const API_KEY_PREFIX = 'bv_live_';

export interface ApiKeyView {
  id: string;
  object: 'api_key';
  name: string;
  hint: string;
  scopes: Permission[] | null;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked: boolean;
}

function view(r: {
  id: string;
  name: string;
  secret_hint: string;
  scopes: string[] | null;
  created_at: Date;
  expires_at: Date | null;
  last_used_at: Date | null;
  revoked_at: Date | null;
}): ApiKeyView {
  return {
    id: r.id,
    object: 'api_key',
    name: r.name,
    hint: r.secret_hint,
    scopes: r.scopes ? r.scopes.filter(isPermission) : null,
    created_at: r.created_at.toISOString(),
    expires_at: r.expires_at?.toISOString() ?? null,
    last_used_at: r.last_used_at?.toISOString() ?? null,
    revoked: r.revoked_at !== null,
  };
}

function parseScopes(role: Role, scopes: readonly string[] | undefined): Permission[] | null {
  if (scopes === undefined) return null;
  const bad = scopes.filter((s) => !isPermission(s));
  if (bad.length > 0) throw new DomainError('validation_failed', `Unknown scope ${bad[0]}.`, 'scopes');
  const perms = [...new Set(scopes as Permission[])];
  if (perms.length === 0) throw new DomainError('validation_failed', 'Give at least one scope.', 'scopes');
  const wider = invalidScopes(role, perms);
  if (wider.length > 0) {
    throw new DomainError(
      'forbidden',
      `A key cannot hold ${wider[0]}: you do not have it yourself.`,
      'scopes',
    );
  }
  return perms;
}

async function insertKey(
  deps: IdentityDeps,
  orgId: string,
  actor: Pick<Actor, 'kind' | 'id' | 'sessionId'>,
  createdBy: string | null,
  input: { name: string; role: Role; scopes: Permission[] | null; expiresAt: Date | null },
  meta: RequestMeta,
  check?: (tx: Parameters<Parameters<typeof inOrg>[2]>[0]) => Promise<void>,
) {
  const name = input.name.trim();
  if (name.length < 1 || name.length > 100)
    throw new DomainError('validation_failed', 'The name must be 1 to 100 characters.', 'name');
  const now = deps.clock.now();
  if (input.expiresAt && input.expiresAt <= now) {
    throw new DomainError('validation_failed', 'The expiry must be in the future.', 'expires_at');
  }
  const secret = `${API_KEY_PREFIX}${randomToken(32)}`;
  const id = newId('api_key');
  return inOrg(deps.db, orgId, async (tx) => {
    await check?.(tx);
    const row = await tx
      .insertInto('api_keys')
      .values({
        org_id: orgId,
        id,
        name,
        secret_hash: hashSecret(secret),
        secret_hint: `${secret.slice(0, API_KEY_PREFIX.length + 4)}…`,
        role: input.role,
        scopes: input.scopes,
        created_by: createdBy,
        created_at: now,
        expires_at: input.expiresAt,
        last_used_at: null,
        revoked_at: null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    if (createdBy)
      await enqueueNotice(
        tx,
        { kind: 'credential.api_key_created', userId: createdBy, orgId, payload: { api_key: id } },
        now,
      );
    await recordAudit(tx, {
      orgId,
      actor,
      action: 'api_key.created',
      target: { type: 'api_key', id },
      outcome: 'success',
      meta,
      details: { scopes: input.scopes ?? 'all', expires_at: input.expiresAt?.toISOString() ?? null },
    });
    return { ...view(row), secret };
  });
}

/** Creates a key for the caller's org; its scopes can only narrow the creator's own role. */
export async function createApiKey(
  deps: IdentityDeps,
  ctx: Ctx,
  input: { name: string; scopes?: string[] | undefined; expiresAt?: Date | null | undefined },
) {
  const scopes = parseScopes(ctx.actor.role, input.scopes);
  const narrowed = scopes && ctx.actor.scopes ? scopes.filter((s) => ctx.actor.scopes?.has(s)) : scopes;
  if (scopes && narrowed && narrowed.length !== scopes.length) {
    throw new DomainError('forbidden', 'A key cannot hold scopes its creator does not have.', 'scopes');
  }
  return insertKey(
    deps,
    ctx.actor.orgId,
    ctx.actor,
    ctx.actor.kind === 'user' ? (ctx.actor.userId ?? null) : null,
    {
      name: input.name,
      role: ctx.actor.role,
      scopes: narrowed ?? (ctx.actor.scopes ? [...ctx.actor.scopes] : null),
      expiresAt: input.expiresAt ?? null,
    },
    ctx.meta,
    (tx) => authorize(tx, ctx, 'api_keys:manage'),
  );
}

/** Operator (`billvault apikey create`): an owner-level key, narrowed by scopes when given. */
export async function createApiKeyAsOperator(
  deps: IdentityDeps,
  orgId: string,
  input: { name: string; scopes?: string[] | undefined },
) {
  const exists = await inOrg(deps.db, orgId, (tx) =>
    tx.selectFrom('orgs').select('id').where('id', '=', orgId).executeTakeFirst(),
  );
  if (!exists) throw new DomainError('not_found', 'No such org.', 'org');
  const scopes = parseScopes('owner', input.scopes);
  return insertKey(
    deps,
    orgId,
    { kind: 'system', id: 'system' },
    null,
    { name: input.name, role: 'owner', scopes, expiresAt: null },
    {},
  );
}

export async function listApiKeys(deps: IdentityDeps, ctx: Ctx): Promise<ApiKeyView[]> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'api_keys:manage');
    const rows = await tx
      .selectFrom('api_keys')
      .selectAll()
      .orderBy('created_at', 'desc')
      .limit(500)
      .execute();
    return rows.map(view);
  });
}

export async function revokeApiKey(deps: IdentityDeps, ctx: Ctx, id: string): Promise<void> {
  await inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'api_keys:manage');
    await revokeKeyInTx(tx, deps, ctx.actor.orgId, id, ctx.actor, ctx.meta);
  });
}

async function revokeKeyInTx(
  tx: Parameters<Parameters<typeof inOrg>[2]>[0],
  deps: IdentityDeps,
  orgId: string,
  id: string,
  actor: Pick<Actor, 'kind' | 'id' | 'sessionId'>,
  meta: RequestMeta,
) {
  const r = await tx
    .updateTable('api_keys')
    .set({ revoked_at: deps.clock.now() })
    .where('org_id', '=', orgId)
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  if (Number(r.numUpdatedRows) === 0) throw new DomainError('not_found', 'No such API key.');
  await recordAudit(tx, {
    orgId,
    actor,
    action: 'api_key.revoked',
    target: { type: 'api_key', id },
    outcome: 'success',
    meta,
  });
}

/** Operator (`billvault apikey revoke ID`). */
export async function revokeApiKeyAsOperator(
  deps: IdentityDeps,
  id: string,
): Promise<{ id: string; org: string }> {
  const found = await inPlatform(deps.db, (tx) =>
    tx.selectFrom('api_keys').select(['org_id']).where('id', '=', id).executeTakeFirst(),
  );
  if (!found) throw new DomainError('not_found', 'No such API key.');
  await inOrg(deps.db, found.org_id, (tx) =>
    revokeKeyInTx(tx, deps, found.org_id, id, { kind: 'system', id: 'system' }, {}),
  );
  return { id, org: found.org_id };
}

interface KeyRow {
  org_id: string;
  id: string;
  role: string;
  scopes: string[] | null;
  created_by: string | null;
  member_role: string | null;
  last_used_at: Date | null;
}

/**
 * Resolves a `bv_live_…` secret to its actor. A key made by a user acts with that user's
 * current role in the org (narrowed by its scopes), so demoting or disabling the user
 * narrows or kills their keys at once.
 */
export async function authenticateApiKey(deps: IdentityDeps, secret: string): Promise<Actor | null> {
  if (!secret.startsWith(API_KEY_PREFIX) || secret.length > 100) return null;
  const now = deps.clock.now();
  // One round trip: the function runs the lookup as the application role with the platform
  // scope on (migration 0014), which a transaction here would need four round trips for.
  const res =
    await sql<KeyRow>`${PREPARED} SELECT * FROM api_key_lookup(${hashSecret(secret)}, ${now})`.execute(
      deps.db,
    );
  const row = res.rows[0];
  if (!row) return null;
  const role = row.created_by ? row.member_role : row.role;
  if (!role || !isRole(role)) return null;
  // last_used_at is informational: write it at most once a minute per key.
  if (!row.last_used_at || now.getTime() - row.last_used_at.getTime() > 60_000) {
    await inPlatform(deps.db, (tx) =>
      tx
        .updateTable('api_keys')
        .set({ last_used_at: now })
        .where('org_id', '=', row.org_id)
        .where('id', '=', row.id)
        .execute(),
    );
  }
  return {
    kind: 'api_key',
    id: row.id,
    orgId: row.org_id,
    role,
    ...(row.scopes ? { scopes: new Set(row.scopes.filter(isPermission)) } : {}),
    ...(row.created_by ? { userId: row.created_by } : {}),
  };
}
