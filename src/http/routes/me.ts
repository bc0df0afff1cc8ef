import { z } from 'zod';
import {
  confirmTotpEnrolment,
  deletePasskey,
  disableTotp,
  listPasskeys,
  passkeyRegistrationOptions,
  regenerateRecoveryCodes,
  registerPasskey,
  startTotpEnrolment,
} from '../../app/auth.js';
import type { IdentityDeps } from '../../app/sessions.js';
import { getMe } from '../../app/users.js';
import { requireCtx } from '../ctx.js';
import type { App } from '../route.js';

const PasskeyId = z.object({
  id: z
    .string()
    .min(16)
    .max(1400)
    .regex(/^[A-Za-z0-9_-]+$/),
});

/** The caller and their own second factors. MFA changes need a fresh authentication. */
export function meRoutes(app: App, deps: IdentityDeps): void {
  app.get('/v1/me', { config: { auth: { permission: 'org:read' } } }, async (req) =>
    getMe(deps, requireCtx(req)),
  );

  app.post('/v1/me/mfa/totp', { config: { auth: { permission: 'org:read', stepUp: true } } }, async (req) =>
    startTotpEnrolment(deps, requireCtx(req)),
  );

  app.post(
    '/v1/me/mfa/totp/confirm',
    {
      config: { auth: { permission: 'org:read', stepUp: true } },
      schema: { body: z.object({ code: z.string().regex(/^\d{6}$/, 'a 6-digit code') }) },
    },
    async (req) => confirmTotpEnrolment(deps, requireCtx(req), req.body.code),
  );

  app.delete(
    '/v1/me/mfa/totp',
    { config: { auth: { permission: 'org:read', stepUp: true } } },
    async (req) => {
      await disableTotp(deps, requireCtx(req));
      return { deleted: true };
    },
  );

  app.post(
    '/v1/me/mfa/recovery_codes',
    { config: { auth: { permission: 'org:read', stepUp: true } } },
    async (req) => regenerateRecoveryCodes(deps, requireCtx(req)),
  );

  app.get('/v1/me/passkeys', { config: { auth: { permission: 'org:read' } } }, async (req) => ({
    object: 'list',
    data: await listPasskeys(deps, requireCtx(req)),
    has_more: false,
  }));

  app.post(
    '/v1/me/passkeys/options',
    { config: { auth: { permission: 'org:read', stepUp: true } } },
    async (req) => passkeyRegistrationOptions(deps, requireCtx(req)),
  );

  app.post(
    '/v1/me/passkeys',
    {
      config: { auth: { permission: 'org:read', stepUp: true } },
      schema: {
        body: z.object({
          challenge_id: z.string().regex(/^chl_[0-9a-z]{32}$/),
          name: z.string().trim().min(1).max(100).default('Passkey'),
          credential: z
            .object({
              id: z.string().min(1).max(1400),
              rawId: z.string().min(1).max(1400),
              type: z.literal('public-key'),
              response: z.record(z.string(), z.unknown()),
              clientExtensionResults: z.record(z.string(), z.unknown()).default({}),
            })
            .passthrough(),
        }),
      },
    },
    async (req, reply) => {
      const view = await registerPasskey(deps, requireCtx(req), {
        challengeId: req.body.challenge_id,
        credential: req.body.credential,
        name: req.body.name,
      });
      return reply.code(201).send(view);
    },
  );

  app.delete(
    '/v1/me/passkeys/:id',
    { config: { auth: { permission: 'org:read', stepUp: true } }, schema: { params: PasskeyId } },
    async (req) => {
      await deletePasskey(deps, requireCtx(req), req.params.id);
      return { deleted: true };
    },
  );
}
