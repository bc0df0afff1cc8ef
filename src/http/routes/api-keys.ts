import { z } from 'zod';
import { createApiKey, listApiKeys, revokeApiKey } from '../../app/api-keys.js';
import type { IdentityDeps } from '../../app/sessions.js';
import { PERMISSIONS } from '../../domain/permissions.js';
import { requireCtx } from '../ctx.js';
import type { App } from '../route.js';

/** API keys of the caller's org: the secret is in the creation reply only. Creation needs step-up. */
export function apiKeyRoutes(app: App, deps: IdentityDeps): void {
  app.get('/v1/api_keys', { config: { auth: { permission: 'api_keys:manage' } } }, async (req) => ({
    object: 'list',
    data: await listApiKeys(deps, requireCtx(req)),
    has_more: false,
  }));

  app.post(
    '/v1/api_keys',
    {
      config: { auth: { permission: 'api_keys:manage', stepUp: true } },
      schema: {
        body: z.object({
          name: z.string().trim().min(1).max(100),
          scopes: z.array(z.enum(PERMISSIONS)).min(1).max(PERMISSIONS.length).optional(),
          expires_at: z.iso.datetime({ offset: true }).optional(),
        }),
      },
    },
    async (req, reply) => {
      const key = await createApiKey(deps, requireCtx(req), {
        name: req.body.name,
        scopes: req.body.scopes,
        expiresAt: req.body.expires_at ? new Date(req.body.expires_at) : null,
      });
      return reply.code(201).send(key);
    },
  );

  app.delete(
    '/v1/api_keys/:id',
    {
      config: { auth: { permission: 'api_keys:manage' } },
      schema: { params: z.object({ id: z.string().regex(/^key_[0-9a-z]{32}$/, 'an API key id') }) },
    },
    async (req) => {
      await revokeApiKey(deps, requireCtx(req), req.params.id);
      return { revoked: true };
    },
  );
}
