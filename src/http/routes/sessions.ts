import { z } from 'zod';
import {
  type IdentityDeps,
  listOwnSessions,
  revokeOtherSessions,
  revokeOwnSession,
  switchOrg,
} from '../../app/sessions.js';
import { setSessionCookies } from '../auth.js';
import { requireCtx } from '../ctx.js';
import type { App } from '../route.js';
import { apiKeyRoutes } from './api-keys.js';
import { authRoutes } from './auth.js';
import { meRoutes } from './me.js';
import { userRoutes } from './users.js';

/** The caller's own sessions: list them, revoke any of them. */
export function sessionRoutes(app: App, deps: IdentityDeps): void {
  app.get('/v1/sessions', { config: { auth: { permission: 'org:read' } } }, async (req) => ({
    object: 'list',
    data: await listOwnSessions(deps, requireCtx(req)),
    has_more: false,
  }));

  app.post(
    '/v1/sessions/switch_org',
    {
      config: { auth: { permission: 'org:read' } },
      schema: { body: z.object({ org: z.string().regex(/^org_[0-9a-z]{32}$/, 'an org id') }) },
    },
    async (req, reply) => {
      const s = await switchOrg(deps, requireCtx(req), req.body.org);
      setSessionCookies(reply, s, deps.clock.now());
      return {
        org: req.body.org,
        expires_at: s.expiresAt.toISOString(),
        mfa_enrolment_required: s.restricted,
      };
    },
  );

  app.post('/v1/sessions/revoke_others', { config: { auth: { permission: 'org:read' } } }, async (req) => ({
    revoked: await revokeOtherSessions(deps, requireCtx(req)),
  }));

  app.delete(
    '/v1/sessions/:id',
    {
      config: { auth: { permission: 'org:read' } },
      schema: { params: z.object({ id: z.string().regex(/^ses_[0-9a-z]{32}$/, 'a session id') }) },
    },
    async (req) => {
      await revokeOwnSession(deps, requireCtx(req), req.params.id);
      return { revoked: true };
    },
  );
}

/** Every identity route: registered by buildApp when it is given the identity dependencies. */
export function identityRoutes(app: App, deps: IdentityDeps): void {
  authRoutes(app, deps);
  meRoutes(app, deps);
  userRoutes(app, deps);
  apiKeyRoutes(app, deps);
  sessionRoutes(app, deps);
}
