import { z } from 'zod';
import {
  createWebhookEndpoint,
  deleteWebhookEndpoint,
  getWebhookEndpoint,
  listWebhookDeliveries,
  listWebhookEndpoints,
  retryWebhookDelivery,
  rotateWebhookSecret,
  updateWebhookEndpoint,
  WEBHOOK_EVENT_TYPES,
  type WebhookDeps,
} from '../../app/webhooks.js';
import { requireCtx } from '../ctx.js';
import type { App } from '../route.js';
import { IdParam, ListQuery } from './common.js';

const EventType = z.enum(['*', ...WEBHOOK_EVENT_TYPES]);

const EndpointCreate = z
  .object({
    url: z.string().trim().min(1).max(2048),
    description: z.string().max(500).nullable().optional(),
    enabled_events: z.array(EventType).min(1).max(50),
    enabled: z.boolean().optional(),
  })
  .strict();

const EndpointPatch = z
  .object({
    url: z.string().trim().min(1).max(2048).optional(),
    description: z.string().max(500).nullable().optional(),
    enabled_events: z.array(EventType).min(1).max(50).optional(),
    enabled: z.boolean().optional(),
  })
  .strict();

/**
 * Outbound webhook endpoints and their delivery log (webhooks:manage). The signing secret is in
 * the replies of create and rotate_secret only; both need a fresh authentication (step-up).
 */
export function webhookRoutes(app: App, deps: WebhookDeps): void {
  const manage = { auth: { permission: 'webhooks:manage' as const } };
  const manageStepUp = { auth: { permission: 'webhooks:manage' as const, stepUp: true } };

  app.post('/v1/webhook_endpoints', { config: manageStepUp, schema: { body: EndpointCreate } }, async (req) =>
    createWebhookEndpoint(deps, requireCtx(req), req.body),
  );
  app.get('/v1/webhook_endpoints', { config: manage, schema: { querystring: ListQuery } }, async (req) =>
    listWebhookEndpoints(deps, requireCtx(req), req.query),
  );
  app.get('/v1/webhook_endpoints/:id', { config: manage, schema: { params: IdParam('we') } }, async (req) =>
    getWebhookEndpoint(deps, requireCtx(req), req.params.id),
  );
  app.patch(
    '/v1/webhook_endpoints/:id',
    { config: manage, schema: { params: IdParam('we'), body: EndpointPatch } },
    async (req) => updateWebhookEndpoint(deps, requireCtx(req), req.params.id, req.body),
  );
  app.delete(
    '/v1/webhook_endpoints/:id',
    { config: manage, schema: { params: IdParam('we') } },
    async (req) => deleteWebhookEndpoint(deps, requireCtx(req), req.params.id),
  );
  app.post(
    '/v1/webhook_endpoints/:id/rotate_secret',
    { config: manageStepUp, schema: { params: IdParam('we') } },
    async (req) => rotateWebhookSecret(deps, requireCtx(req), req.params.id),
  );
  app.get(
    '/v1/webhook_endpoints/:id/deliveries',
    {
      config: manage,
      schema: {
        params: IdParam('we'),
        querystring: ListQuery.extend({
          status: z.enum(['pending', 'failed', 'succeeded', 'dead']).optional(),
        }),
      },
    },
    async (req) => listWebhookDeliveries(deps, requireCtx(req), req.params.id, req.query),
  );
  app.post(
    '/v1/webhook_deliveries/:id/retry',
    { config: manage, schema: { params: IdParam('whd') } },
    async (req) => retryWebhookDelivery(deps, requireCtx(req), req.params.id),
  );
}
