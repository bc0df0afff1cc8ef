import { z } from 'zod';
import type { AppDeps } from '../app.js';
import type { App } from '../route.js';

/** Liveness, readiness and the OpenAPI document. */
export function systemRoutes(app: App, deps: AppDeps): void {
  app.get(
    '/healthz',
    {
      config: { auth: { public: true } },
      schema: { hide: true, response: { 200: z.object({ status: z.literal('ok') }) } },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get('/readyz', { config: { auth: { public: true } }, schema: { hide: true } }, async (_req, reply) => {
    const r = await deps.readiness().catch(() => ({ database: false, migrations: 'unknown' as const }));
    const ready = r.database && r.migrations === 'current';
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks: r });
  });

  app.get('/v1/openapi.json', { config: { auth: { public: true } }, schema: { hide: true } }, async () =>
    app.swagger(),
  );
}
