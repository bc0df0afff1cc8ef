import { z } from 'zod';
import { getOrg, getSetting, putSetting } from '../../app/orgs.js';
import type { AppDeps } from '../app.js';
import { requireCtx } from '../ctx.js';
import type { App } from '../route.js';

const Org = z.object({ id: z.string(), name: z.string(), base_currency: z.string(), created_at: z.string() });
const SettingKey = z.object({ key: z.string().regex(/^[a-z][a-z0-9_.]{0,63}$/, 'lowercase setting key') });

/** The caller's org and its settings. */
export function orgRoutes(app: App, deps: AppDeps): void {
  app.get(
    '/v1/org',
    { config: { auth: { permission: 'org:read' } }, schema: { response: { 200: Org } } },
    async (req) => getOrg(deps.db, requireCtx(req)),
  );

  app.get(
    '/v1/settings/:key',
    { config: { auth: { permission: 'settings:read' } }, schema: { params: SettingKey } },
    async (req) => ({
      key: req.params.key,
      value: (await getSetting(deps.db, requireCtx(req), req.params.key)) ?? null,
    }),
  );

  app.put(
    '/v1/settings/:key',
    {
      config: { auth: { permission: 'settings:write' } },
      schema: { params: SettingKey, body: z.object({ value: z.json() }) },
    },
    async (req) => {
      await putSetting(deps.db, requireCtx(req), req.params.key, req.body.value);
      return { key: req.params.key, value: req.body.value };
    },
  );
}
