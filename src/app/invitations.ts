import { canAssignRole, INVITATION_TTL_HOURS } from '../domain/auth-policy.js';
import { DomainError } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import { isRole, type Role } from '../domain/permissions.js';
import { recordAudit } from './audit.js';
import { assertAcceptablePassword, normalizeEmail, passwordContext } from './auth.js';
import { authorize } from './authz.js';
import type { Ctx, RequestMeta } from './context.js';
import { enqueueNotice } from './outbox.js';
import { enterOrg, hashSecret, type IdentityDeps, inPlatform, randomToken } from './sessions.js';
import { insertMembership, insertUser } from './users.js';

export interface InvitationView {
  id: string;
  object: 'invitation';
  email: string;
  role: Role;
  expires_at: string;
  /** The single-use token, returned once at creation (and queued for the invitation email). */
  token?: string;
}

/** Invites someone into the caller's org with a role: a single-use token, expiring in 72 hours. */
export async function inviteUser(
  deps: IdentityDeps,
  ctx: Ctx,
  input: { email: string; role: string },
): Promise<InvitationView> {
  const email = normalizeEmail(input.email);
  if (!email) throw new DomainError('validation_failed', 'A valid email address is required.', 'email');
  if (!isRole(input.role)) throw new DomainError('validation_failed', `Unknown role ${input.role}.`, 'role');
  const role = input.role;
  const now = deps.clock.now();
  return inPlatform(
    deps.db,
    async (tx) => {
      await authorize(tx, ctx, 'users:manage');
      if (!canAssignRole(ctx.actor, null, role)) {
        throw new DomainError('forbidden', 'Only an owner can invite another owner.');
      }
      const member = await tx
        .selectFrom('memberships')
        .innerJoin('users', 'users.id', 'memberships.user_id')
        .select('memberships.id')
        .where('memberships.org_id', '=', ctx.actor.orgId)
        .where('users.email', '=', email)
        .executeTakeFirst();
      if (member) throw new DomainError('conflict', 'This person is already a member.', 'email');
      const token = randomToken();
      const id = newId('invitation');
      const expiresAt = new Date(now.getTime() + INVITATION_TTL_HOURS * 3600_000);
      await tx
        .insertInto('invitations')
        .values({
          org_id: ctx.actor.orgId,
          id,
          email,
          role,
          token_hash: hashSecret(token),
          invited_by: ctx.actor.userId ?? null,
          created_at: now,
          expires_at: expiresAt,
          accepted_at: null,
          revoked_at: null,
        })
        .execute();
      await enqueueNotice(
        tx,
        {
          kind: 'invitation.created',
          userId: null,
          orgId: ctx.actor.orgId,
          payload: { invitation: id, token },
        },
        now,
      );
      await recordAudit(tx, {
        orgId: ctx.actor.orgId,
        actor: ctx.actor,
        action: 'invitation.created',
        target: { type: 'invitation', id },
        outcome: 'success',
        meta: ctx.meta,
        details: { role },
      });
      return { id, object: 'invitation', email, role, expires_at: expiresAt.toISOString(), token };
    },
    ctx.actor.orgId,
  );
}

/**
 * Accepts an invitation. A new person sets their password here; someone who already has an
 * account proves it with their existing password. Signs nobody in.
 */
export async function acceptInvitation(
  deps: IdentityDeps,
  input: { token: string; password: string },
  meta: RequestMeta,
): Promise<{ user: string; org: string; role: Role }> {
  const now = deps.clock.now();
  const inv = await inPlatform(deps.db, async (tx) => {
    const row = await tx
      .selectFrom('invitations')
      .selectAll()
      .where('token_hash', '=', hashSecret(input.token))
      .executeTakeFirst();
    if (!row || row.accepted_at || row.revoked_at || row.expires_at <= now || !isRole(row.role)) return null;
    const user = await tx
      .selectFrom('users')
      .select(['id', 'password_hash', 'disabled_at'])
      .where('email', '=', row.email)
      .executeTakeFirst();
    return { row, user };
  });
  if (!inv) throw new DomainError('token_invalid', 'The invitation is invalid or has expired.', 'token');
  let hash: string | null = null;
  if (inv.user) {
    const ok = await deps.passwords.verify(
      inv.user.password_hash ?? (await deps.passwords.dummyHash()),
      input.password,
    );
    if (!ok || inv.user.disabled_at)
      throw new DomainError('invalid_credentials', 'The password is incorrect.', 'password');
  } else {
    assertAcceptablePassword(deps, input.password, passwordContext(inv.row.email));
    hash = await deps.passwords.hash(input.password);
  }
  const role = inv.row.role as Role;
  return inPlatform(deps.db, async (tx) => {
    await enterOrg(tx, inv.row.org_id);
    const taken = await tx
      .updateTable('invitations')
      .set({ accepted_at: now })
      .where('org_id', '=', inv.row.org_id)
      .where('id', '=', inv.row.id)
      .where('accepted_at', 'is', null)
      .executeTakeFirst();
    if (Number(taken.numUpdatedRows) !== 1) {
      throw new DomainError('token_invalid', 'The invitation is invalid or has expired.', 'token');
    }
    const userId = inv.user?.id ?? (await insertUser(tx, { email: inv.row.email, passwordHash: hash }, now));
    const member = await tx
      .selectFrom('memberships')
      .select('id')
      .where('org_id', '=', inv.row.org_id)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    if (member) throw new DomainError('conflict', 'Already a member of this org.');
    await insertMembership(tx, inv.row.org_id, userId, role, now);
    await recordAudit(tx, {
      orgId: inv.row.org_id,
      actor: { kind: 'user', id: userId },
      action: 'invitation.accepted',
      target: { type: 'invitation', id: inv.row.id },
      outcome: 'success',
      meta,
      details: { role, new_user: !inv.user },
    });
    return { user: userId, org: inv.row.org_id, role };
  });
}

/** Open invitations of the caller's org (never their tokens). */
export async function listInvitations(deps: IdentityDeps, ctx: Ctx): Promise<InvitationView[]> {
  const now = deps.clock.now();
  return inPlatform(
    deps.db,
    async (tx) => {
      await authorize(tx, ctx, 'users:read');
      const rows = await tx
        .selectFrom('invitations')
        .select(['id', 'email', 'role', 'expires_at'])
        .where('org_id', '=', ctx.actor.orgId)
        .where('accepted_at', 'is', null)
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', now)
        .orderBy('created_at', 'desc')
        .limit(200)
        .execute();
      return rows.map((r) => ({
        id: r.id,
        object: 'invitation' as const,
        email: r.email,
        role: isRole(r.role) ? r.role : 'viewer',
        expires_at: r.expires_at.toISOString(),
      }));
    },
    ctx.actor.orgId,
  );
}

/** Withdraws an invitation before it is accepted. */
export async function revokeInvitation(deps: IdentityDeps, ctx: Ctx, id: string): Promise<void> {
  await inPlatform(
    deps.db,
    async (tx) => {
      await authorize(tx, ctx, 'users:manage');
      const r = await tx
        .updateTable('invitations')
        .set({ revoked_at: deps.clock.now() })
        .where('org_id', '=', ctx.actor.orgId)
        .where('id', '=', id)
        .where('accepted_at', 'is', null)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) throw new DomainError('not_found', 'No such invitation.');
      await recordAudit(tx, {
        orgId: ctx.actor.orgId,
        actor: ctx.actor,
        action: 'invitation.revoked',
        target: { type: 'invitation', id },
        outcome: 'success',
        meta: ctx.meta,
      });
    },
    ctx.actor.orgId,
  );
}
