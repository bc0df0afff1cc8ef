import { z } from 'zod';
import { grantBreakGlass, listBreakGlass, revokeBreakGlass } from '../../app/break-glass.js';
import { inviteUser, listInvitations, revokeInvitation } from '../../app/invitations.js';
import type { IdentityDeps } from '../../app/sessions.js';
import { getMember, listMembers, unlockMember, updateMember } from '../../app/users.js';
import { ROLES } from '../../domain/permissions.js';
import { requireCtx } from '../ctx.js';
import type { App } from '../route.js';

const UserId = z.object({ id: z.string().regex(/^usr_[0-9a-z]{32}$/, 'a user id') });
const GrantId = z.object({ id: z.string().regex(/^brk_[0-9a-z]{32}$/, 'a grant id') });
const Role = z.enum(ROLES);

/** Members of the caller's org, invitations, unlocks and break-glass grants. */
export function userRoutes(app: App, deps: IdentityDeps): void {
  app.get('/v1/users', { config: { auth: { permission: 'users:read' } } }, async (req) => ({
    object: 'list',
    data: await listMembers(deps, requireCtx(req)),
    has_more: false,
  }));

  app.post(
    '/v1/users',
    {
      config: { auth: { permission: 'users:manage' } },
      schema: { body: z.object({ email: z.string().min(3).max(254), role: Role }) },
    },
    async (req, reply) => reply.code(201).send(await inviteUser(deps, requireCtx(req), req.body)),
  );

  app.get('/v1/invitations', { config: { auth: { permission: 'users:read' } } }, async (req) => ({
    object: 'list',
    data: await listInvitations(deps, requireCtx(req)),
    has_more: false,
  }));

  app.delete(
    '/v1/invitations/:id',
    {
      config: { auth: { permission: 'users:manage' } },
      schema: { params: z.object({ id: z.string().regex(/^ivt_[0-9a-z]{32}$/, 'an invitation id') }) },
    },
    async (req) => {
      await revokeInvitation(deps, requireCtx(req), req.params.id);
      return { revoked: true };
    },
  );

  app.get(
    '/v1/users/:id',
    { config: { auth: { permission: 'users:read' } }, schema: { params: UserId } },
    async (req) => getMember(deps, requireCtx(req), req.params.id),
  );

  app.patch(
    '/v1/users/:id',
    {
      config: { auth: { permission: 'users:manage' } },
      schema: {
        params: UserId,
        body: z
          .object({ role: Role.optional(), disabled: z.boolean().optional() })
          .strict()
          .refine((b) => b.role !== undefined || b.disabled !== undefined, {
            message: 'give role or disabled',
          }),
      },
    },
    async (req) => updateMember(deps, requireCtx(req), req.params.id, req.body),
  );

  app.post(
    '/v1/users/:id/unlock',
    { config: { auth: { permission: 'users:manage' } }, schema: { params: UserId } },
    async (req) => {
      await unlockMember(deps, requireCtx(req), req.params.id);
      return { unlocked: true };
    },
  );

  app.get('/v1/break_glass', { config: { auth: { permission: 'users:read' } } }, async (req) => ({
    object: 'list',
    data: await listBreakGlass(deps, requireCtx(req)),
    has_more: false,
  }));

  app.post(
    '/v1/break_glass',
    {
      config: { auth: { permission: 'break_glass:grant', stepUp: true } },
      schema: {
        body: z.object({
          user: z.string().regex(/^usr_[0-9a-z]{32}$/),
          reason: z.string().min(10).max(1000),
          duration_minutes: z.number().int().min(1).max(240),
        }),
      },
    },
    async (req, reply) =>
      reply.code(201).send(
        await grantBreakGlass(deps, requireCtx(req), {
          userId: req.body.user,
          reason: req.body.reason,
          minutes: req.body.duration_minutes,
        }),
      ),
  );

  app.delete(
    '/v1/break_glass/:id',
    { config: { auth: { permission: 'break_glass:grant' } }, schema: { params: GrantId } },
    async (req) => {
      await revokeBreakGlass(deps, requireCtx(req), req.params.id);
      return { revoked: true };
    },
  );
}
