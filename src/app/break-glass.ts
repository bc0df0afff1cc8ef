import { BREAK_GLASS_MAX_MINUTES } from '../domain/auth-policy.js';
import { DomainError } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import { isRole, type Role } from '../domain/permissions.js';
import { recordAudit } from './audit.js';
import { authorize } from './authz.js';
import type { Ctx } from './context.js';
import { enqueueNotice } from './outbox.js';
import { type IdentityDeps, inPlatform, revokeUserSessions } from './sessions.js';

export interface BreakGlassView {
  id: string;
  object: 'break_glass_grant';
  user: string;
  role: Role;
  reason: string;
  granted_by: string | null;
  created_at: string;
  expires_at: string;
  active: boolean;
}

function view(
  r: {
    id: string;
    user_id: string;
    role: string;
    reason: string;
    granted_by: string | null;
    created_at: Date;
    expires_at: Date;
    revoked_at: Date | null;
  },
  now: Date,
): BreakGlassView {
  return {
    id: r.id,
    object: 'break_glass_grant',
    user: r.user_id,
    role: isRole(r.role) ? r.role : 'viewer',
    reason: r.reason,
    granted_by: r.granted_by,
    created_at: r.created_at.toISOString(),
    expires_at: r.expires_at.toISOString(),
    active: r.revoked_at === null && r.expires_at > now && r.created_at <= now,
  };
}

/**
 * An owner grants a member emergency owner rights for at most 4 hours, with a reason. The
 * member's sessions are ended so the elevated rights start on a fresh session; every admin
 * can see the grant, and every change made under it is audited (`break_glass.used`).
 */
export async function grantBreakGlass(
  deps: IdentityDeps,
  ctx: Ctx,
  input: { userId: string; reason: string; minutes: number },
): Promise<BreakGlassView> {
  const reason = input.reason.trim();
  if (reason.length < 10 || reason.length > 1000) {
    throw new DomainError('validation_failed', 'Give a reason of 10 to 1000 characters.', 'reason');
  }
  if (!Number.isInteger(input.minutes) || input.minutes < 1 || input.minutes > BREAK_GLASS_MAX_MINUTES) {
    throw new DomainError(
      'validation_failed',
      `The duration must be 1 to ${BREAK_GLASS_MAX_MINUTES} minutes.`,
      'duration_minutes',
    );
  }
  const now = deps.clock.now();
  const row = await inPlatform(
    deps.db,
    async (tx) => {
      await authorize(tx, ctx, 'break_glass:grant');
      const m = await tx
        .selectFrom('memberships')
        .select(['role', 'disabled_at'])
        .where('org_id', '=', ctx.actor.orgId)
        .where('user_id', '=', input.userId)
        .executeTakeFirst();
      if (!m) throw new DomainError('not_found', 'No such user.', 'user');
      if (m.disabled_at) throw new DomainError('conflict', 'The user is disabled.', 'user');
      const id = newId('break_glass');
      const inserted = await tx
        .insertInto('break_glass_grants')
        .values({
          org_id: ctx.actor.orgId,
          id,
          user_id: input.userId,
          role: 'owner',
          reason,
          granted_by: ctx.actor.userId ?? null,
          created_at: now,
          expires_at: new Date(now.getTime() + input.minutes * 60_000),
          revoked_at: null,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      await revokeUserSessions(tx, input.userId, 'break_glass_granted', now, { orgId: ctx.actor.orgId });
      await enqueueNotice(
        tx,
        { kind: 'break_glass.granted', userId: input.userId, orgId: ctx.actor.orgId, payload: { grant: id } },
        now,
      );
      await recordAudit(tx, {
        orgId: ctx.actor.orgId,
        actor: ctx.actor,
        action: 'break_glass.granted',
        target: { type: 'user', id: input.userId },
        outcome: 'success',
        meta: ctx.meta,
        // The reason is free text that may name people: it stays on the grant (id here), not in the trail.
        details: { grant: id, role: 'owner', from_role: m.role, minutes: input.minutes },
      });
      return inserted;
    },
    ctx.actor.orgId,
  );
  deps.warn?.(
    {
      event: 'break_glass.granted',
      org: ctx.actor.orgId,
      grant: row.id,
      user: input.userId,
      minutes: input.minutes,
    },
    'BREAK-GLASS emergency access granted',
  );
  return view(row, now);
}

/** Every grant of the org (active and past): visible to all admins. */
export async function listBreakGlass(deps: IdentityDeps, ctx: Ctx): Promise<BreakGlassView[]> {
  const now = deps.clock.now();
  return inPlatform(
    deps.db,
    async (tx) => {
      await authorize(tx, ctx, 'users:read');
      const rows = await tx
        .selectFrom('break_glass_grants')
        .selectAll()
        .where('org_id', '=', ctx.actor.orgId)
        .orderBy('created_at', 'desc')
        .limit(200)
        .execute();
      return rows.map((r) => view(r, now));
    },
    ctx.actor.orgId,
  );
}

/** Ends a grant early; the member's elevated sessions end with it. */
export async function revokeBreakGlass(deps: IdentityDeps, ctx: Ctx, id: string): Promise<void> {
  const now = deps.clock.now();
  await inPlatform(
    deps.db,
    async (tx) => {
      await authorize(tx, ctx, 'break_glass:grant');
      const r = await tx
        .updateTable('break_glass_grants')
        .set({ revoked_at: now })
        .where('org_id', '=', ctx.actor.orgId)
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .returning('user_id')
        .executeTakeFirst();
      if (!r) throw new DomainError('not_found', 'No such grant.');
      await revokeUserSessions(tx, r.user_id, 'break_glass_revoked', now, { orgId: ctx.actor.orgId });
      await recordAudit(tx, {
        orgId: ctx.actor.orgId,
        actor: ctx.actor,
        action: 'break_glass.revoked',
        target: { type: 'break_glass', id },
        outcome: 'success',
        meta: ctx.meta,
      });
    },
    ctx.actor.orgId,
  );
}
