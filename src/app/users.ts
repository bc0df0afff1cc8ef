import { randomBytes } from 'node:crypto';
import { inOrg, type Tx } from '../adapters/db/index.js';
import { canAssignRole } from '../domain/auth-policy.js';
import { DomainError } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import { effectivePermissions, isRole, type Permission, type Role } from '../domain/permissions.js';
import { recordAudit } from './audit.js';
import { assertAcceptablePassword, normalizeEmail, passwordContext } from './auth.js';
import { authorize } from './authz.js';
import type { Ctx, RequestMeta } from './context.js';
import { enterOrg, type IdentityDeps, inPlatform, revokeUserSessions } from './sessions.js';

export interface MemberView {
  id: string;
  object: 'user';
  email: string;
  role: Role;
  disabled: boolean;
  locked: boolean;
  mfa_enabled: boolean;
  created_at: string;
}

export interface MeView {
  user: { id: string; object: 'user'; email: string; mfa_enabled: boolean } | null;
  org: { id: string; name: string; base_currency: string };
  role: Role;
  permissions: Permission[];
  actor: { kind: string; id: string };
}

function operatorActor(orgId: string) {
  return { kind: 'system' as const, id: 'system', orgId, role: 'owner' as const };
}

/** Inserts a user row (platform level); the caller adds the membership. */
export async function insertUser(tx: Tx, input: { email: string; passwordHash: string | null }, now: Date) {
  const id = newId('user');
  await tx
    .insertInto('users')
    .values({
      id,
      email: input.email,
      password_hash: input.passwordHash,
      password_changed_at: input.passwordHash ? now : null,
      locked_until: null,
      disabled_at: null,
      totp_secret_enc: null,
      totp_enabled_at: null,
      totp_last_step: null,
      webauthn_user_handle: randomBytes(32),
      created_at: now,
      updated_at: now,
    })
    .execute();
  return id;
}

export async function insertMembership(tx: Tx, orgId: string, userId: string, role: Role, now: Date) {
  await tx
    .insertInto('memberships')
    .values({
      org_id: orgId,
      id: newId('membership'),
      user_id: userId,
      role,
      disabled_at: null,
      created_at: now,
      updated_at: now,
    })
    .execute();
}

/**
 * Creates a user with a password and a role in an org (operator action: `billvault init`,
 * `billvault user create`). An existing user simply gains the membership; their password
 * is left alone.
 */
export async function createUserAsOperator(
  deps: IdentityDeps,
  input: { email: string; password: string; role: string; orgId: string },
  meta: RequestMeta = {},
): Promise<{ id: string; created: boolean }> {
  const email = normalizeEmail(input.email);
  if (!email) throw new DomainError('validation_failed', 'A valid email address is required.', 'email');
  if (!isRole(input.role)) throw new DomainError('validation_failed', `Unknown role ${input.role}.`, 'role');
  const role = input.role;
  const existing = await inPlatform(deps.db, (tx) =>
    tx.selectFrom('users').select('id').where('email', '=', email).executeTakeFirst(),
  );
  let hash: string | null = null;
  if (!existing) {
    assertAcceptablePassword(deps, input.password, passwordContext(email));
    hash = await deps.passwords.hash(input.password);
  }
  const now = deps.clock.now();
  return inPlatform(
    deps.db,
    async (tx) => {
      const org = await tx.selectFrom('orgs').select('id').where('id', '=', input.orgId).executeTakeFirst();
      if (!org) throw new DomainError('not_found', 'No such org.', 'org');
      let userId = existing?.id;
      if (userId) {
        const member = await tx
          .selectFrom('memberships')
          .select('id')
          .where('org_id', '=', input.orgId)
          .where('user_id', '=', userId)
          .executeTakeFirst();
        if (member) throw new DomainError('conflict', 'This user is already a member of the org.', 'email');
      } else {
        userId = await insertUser(tx, { email, passwordHash: hash }, now);
      }
      await insertMembership(tx, input.orgId, userId, role, now);
      await recordAudit(tx, {
        orgId: input.orgId,
        actor: { kind: 'system', id: 'system' },
        action: existing ? 'membership.created' : 'user.created',
        target: { type: 'user', id: userId },
        outcome: 'success',
        meta,
        details: { role },
      });
      return { id: userId, created: !existing };
    },
    input.orgId,
  );
}

/** The caller: user, org, effective role and permissions. */
export async function getMe(deps: IdentityDeps, ctx: Ctx): Promise<MeView> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'org:read');
    const org = await tx
      .selectFrom('orgs')
      .select(['id', 'name', 'base_currency'])
      .where('id', '=', ctx.actor.orgId)
      .executeTakeFirstOrThrow();
    const userId = ctx.actor.userId;
    const user = userId
      ? await tx
          .selectFrom('users')
          .select(['id', 'email', 'totp_enabled_at'])
          .where('id', '=', userId)
          .executeTakeFirst()
      : undefined;
    return {
      user: user
        ? { id: user.id, object: 'user', email: user.email, mfa_enabled: user.totp_enabled_at !== null }
        : null,
      org,
      role: ctx.actor.role,
      permissions: [...effectivePermissions(ctx.actor)].sort(),
      actor: { kind: ctx.actor.kind, id: ctx.actor.id },
    };
  });
}

async function memberRows(tx: Tx, orgId: string, now: Date, userId?: string) {
  let q = tx
    .selectFrom('memberships')
    .innerJoin('users', 'users.id', 'memberships.user_id')
    .select([
      'users.id',
      'users.email',
      'users.disabled_at as user_disabled',
      'users.locked_until',
      'users.totp_enabled_at',
      'memberships.role',
      'memberships.disabled_at',
      'memberships.created_at',
    ])
    .where('memberships.org_id', '=', orgId);
  if (userId) q = q.where('users.id', '=', userId);
  const rows = await q.orderBy('memberships.created_at').orderBy('users.id').limit(1000).execute();
  return rows.map(
    (r): MemberView => ({
      id: r.id,
      object: 'user',
      email: r.email,
      role: isRole(r.role) ? r.role : 'viewer',
      disabled: r.disabled_at !== null || r.user_disabled !== null,
      locked: r.locked_until !== null && r.locked_until > now,
      mfa_enabled: r.totp_enabled_at !== null,
      created_at: r.created_at.toISOString(),
    }),
  );
}

export async function listMembers(deps: IdentityDeps, ctx: Ctx): Promise<MemberView[]> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'users:read');
    return memberRows(tx, ctx.actor.orgId, deps.clock.now());
  });
}

export async function getMember(deps: IdentityDeps, ctx: Ctx, userId: string): Promise<MemberView> {
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'users:read');
    const [row] = await memberRows(tx, ctx.actor.orgId, deps.clock.now(), userId);
    if (!row) throw new DomainError('not_found', 'No such user.');
    return row;
  });
}

/** Revokes every API key a user created (in one org, or everywhere). */
async function revokeKeysOf(tx: Tx, userId: string, now: Date, orgId?: string): Promise<number> {
  let q = tx
    .updateTable('api_keys')
    .set({ revoked_at: now })
    .where('created_by', '=', userId)
    .where('revoked_at', 'is', null);
  if (orgId) q = q.where('org_id', '=', orgId);
  return Number((await q.executeTakeFirst()).numUpdatedRows);
}

/**
 * Changes a member's role or disables/enables them in the caller's org. A role change or a
 * disable ends the member's sessions in the org (their next sign-in gets a fresh session with
 * the new privileges); a disable also revokes the API keys they created here.
 */
export async function updateMember(
  deps: IdentityDeps,
  ctx: Ctx,
  userId: string,
  input: { role?: string | undefined; disabled?: boolean | undefined },
): Promise<MemberView> {
  const now = deps.clock.now();
  return inPlatform(
    deps.db,
    async (tx) => {
      await authorize(tx, ctx, 'users:manage');
      const m = await tx
        .selectFrom('memberships')
        .select(['role', 'disabled_at'])
        .where('org_id', '=', ctx.actor.orgId)
        .where('user_id', '=', userId)
        .forUpdate()
        .executeTakeFirst();
      if (!m || !isRole(m.role)) throw new DomainError('not_found', 'No such user.');
      if (input.role !== undefined && !isRole(input.role)) {
        throw new DomainError('validation_failed', `Unknown role ${input.role}.`, 'role');
      }
      const newRole = (input.role as Role | undefined) ?? m.role;
      if (userId === ctx.actor.userId) {
        throw new DomainError('forbidden', 'You cannot change your own role or disable yourself.');
      }
      if (!canAssignRole(ctx.actor, m.role, newRole)) {
        throw new DomainError('forbidden', 'Only an owner can grant, change or disable the owner role.');
      }
      const demotesOwner = m.role === 'owner' && (newRole !== 'owner' || input.disabled === true);
      if (demotesOwner) {
        const owners = await tx
          .selectFrom('memberships')
          .select('user_id')
          .where('org_id', '=', ctx.actor.orgId)
          .where('role', '=', 'owner')
          .where('disabled_at', 'is', null)
          .execute();
        if (owners.length <= 1) throw new DomainError('conflict', 'An org keeps at least one active owner.');
      }
      const disabledAt =
        input.disabled === undefined ? m.disabled_at : input.disabled ? (m.disabled_at ?? now) : null;
      await tx
        .updateTable('memberships')
        .set({ role: newRole, disabled_at: disabledAt, updated_at: now })
        .where('org_id', '=', ctx.actor.orgId)
        .where('user_id', '=', userId)
        .execute();
      let sessions = 0;
      let keys = 0;
      if (newRole !== m.role || (disabledAt && !m.disabled_at)) {
        sessions = await revokeUserSessions(
          tx,
          userId,
          newRole !== m.role ? 'role_changed' : 'disabled',
          now,
          {
            orgId: ctx.actor.orgId,
          },
        );
      }
      if (disabledAt && !m.disabled_at) keys = await revokeKeysOf(tx, userId, now, ctx.actor.orgId);
      await recordAudit(tx, {
        orgId: ctx.actor.orgId,
        actor: ctx.actor,
        action: 'user.updated',
        target: { type: 'user', id: userId },
        outcome: 'success',
        meta: ctx.meta,
        details: {
          role: newRole !== m.role ? { from: m.role, to: newRole } : undefined,
          disabled: input.disabled,
          sessions_revoked: sessions,
          api_keys_revoked: keys,
        },
      });
      const [row] = await memberRows(tx, ctx.actor.orgId, now, userId);
      if (!row) throw new DomainError('not_found', 'No such user.');
      return row;
    },
    ctx.actor.orgId,
  );
}

/** Lifts a lockout (an admin in the org, after checking who is asking). */
export async function unlockMember(deps: IdentityDeps, ctx: Ctx, userId: string): Promise<void> {
  await inPlatform(
    deps.db,
    async (tx) => {
      await authorize(tx, ctx, 'users:manage');
      const member = await tx
        .selectFrom('memberships')
        .select('id')
        .where('org_id', '=', ctx.actor.orgId)
        .where('user_id', '=', userId)
        .executeTakeFirst();
      if (!member) throw new DomainError('not_found', 'No such user.');
      await tx
        .updateTable('users')
        .set({ failed_logins: 0, locked_until: null })
        .where('id', '=', userId)
        .execute();
      await recordAudit(tx, {
        orgId: ctx.actor.orgId,
        actor: ctx.actor,
        action: 'user.unlocked',
        target: { type: 'user', id: userId },
        outcome: 'success',
        meta: ctx.meta,
      });
    },
    ctx.actor.orgId,
  );
}

async function userOrgs(tx: Tx, userId: string): Promise<string[]> {
  const rows = await tx.selectFrom('memberships').select('org_id').where('user_id', '=', userId).execute();
  return rows.map((r) => r.org_id);
}

/** Operator: disables a user everywhere; all their sessions and API keys die at once. */
export async function disableUserAsOperator(deps: IdentityDeps, emailInput: string, meta: RequestMeta = {}) {
  const email = normalizeEmail(emailInput);
  if (!email) throw new DomainError('validation_failed', 'A valid email address is required.', 'email');
  const now = deps.clock.now();
  return inPlatform(deps.db, async (tx) => {
    const u = await tx
      .selectFrom('users')
      .select(['id', 'disabled_at'])
      .where('email', '=', email)
      .executeTakeFirst();
    if (!u) throw new DomainError('not_found', 'No such user.', 'email');
    await tx
      .updateTable('users')
      .set({ disabled_at: u.disabled_at ?? now, updated_at: now })
      .where('id', '=', u.id)
      .execute();
    const sessions = await revokeUserSessions(tx, u.id, 'disabled', now);
    const keys = await revokeKeysOf(tx, u.id, now);
    const orgs = await userOrgs(tx, u.id);
    if (orgs.length === 0) {
      await recordAudit(tx, {
        orgId: null,
        actor: { kind: 'system', id: 'system' },
        action: 'user.disabled',
        target: { type: 'user', id: u.id },
        outcome: 'success',
        meta,
      });
    }
    for (const orgId of orgs) {
      await enterOrg(tx, orgId);
      await recordAudit(tx, {
        orgId,
        actor: operatorActor(orgId),
        action: 'user.disabled',
        target: { type: 'user', id: u.id },
        outcome: 'success',
        meta,
        details: { sessions_revoked: sessions, api_keys_revoked: keys },
      });
    }
    return { id: u.id, sessions_revoked: sessions, api_keys_revoked: keys };
  });
}

/** Operator: lifts a lockout by email (`billvault user unlock`). */
export async function unlockUserAsOperator(deps: IdentityDeps, emailInput: string, meta: RequestMeta = {}) {
  const email = normalizeEmail(emailInput);
  if (!email) throw new DomainError('validation_failed', 'A valid email address is required.', 'email');
  return inPlatform(deps.db, async (tx) => {
    const u = await tx.selectFrom('users').select('id').where('email', '=', email).executeTakeFirst();
    if (!u) throw new DomainError('not_found', 'No such user.', 'email');
    await tx
      .updateTable('users')
      .set({ failed_logins: 0, locked_until: null })
      .where('id', '=', u.id)
      .execute();
    for (const orgId of await userOrgs(tx, u.id)) {
      await enterOrg(tx, orgId);
      await recordAudit(tx, {
        orgId,
        actor: operatorActor(orgId),
        action: 'user.unlocked',
        target: { type: 'user', id: u.id },
        outcome: 'success',
        meta,
      });
    }
    return { id: u.id };
  });
}
