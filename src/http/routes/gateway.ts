import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  type GatewayDeps,
  getGatewaySettings,
  receiveGatewayEvent,
  setGatewaySecret,
} from '../../app/gateway.js';
import { requireCtx } from '../ctx.js';
import type { App } from '../route.js';

const Provider = z.object({ provider: z.enum(['stripe']) });

// Printable ASCII without spaces: what gateways issue (Stripe: whsec_…). Never echoed back.
const Secret = z
  .string()
  .min(16, 'at least 16 characters')
  .max(255)
  .regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces');

const SecretBody = z.object({ webhook_secret: Secret, previous_webhook_secret: Secret.nullish() }).strict();

/**
 * Gateway intake (DESIGN.md §9): public, authenticated by the signature over the raw body. The
 * route lives in its own scope whose JSON parser keeps the bytes as received (the signature is
 * over them; the use case parses them only after verification). No session, so no CSRF; no card
 * guard (the gateway is trusted once verified, and only whitelisted card fields are ever kept).
 */
export function gatewayRoutes(app: App, deps: GatewayDeps): void {
  app.register(async (scope) => {
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => {
      done(null, body);
    });
    scope.withTypeProvider<ZodTypeProvider>().post(
      '/v1/webhooks/gateway/:provider',
      {
        config: { auth: { public: true }, cardGuard: false },
        schema: { params: Provider },
      },
      async (req) =>
        receiveGatewayEvent(deps, req.params.provider, {
          rawBody: Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0),
          headers: req.headers,
          meta: { requestId: req.id, ip: req.ip, userAgent: req.headers['user-agent'] ?? null },
        }),
    );
  });

  app.get(
    '/v1/settings/gateways/:provider',
    { config: { auth: { permission: 'settings:read' } }, schema: { params: Provider } },
    async (req) => getGatewaySettings(deps, requireCtx(req), req.params.provider),
  );
  app.put(
    '/v1/settings/gateways/:provider',
    {
      config: { auth: { permission: 'settings:write', stepUp: true } },
      schema: { params: Provider, body: SecretBody },
    },
    async (req) => setGatewaySecret(deps, requireCtx(req), req.params.provider, req.body),
  );
}
