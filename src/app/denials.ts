import { type Db, inOrg } from '../adapters/db/index.js';
import type { Permission } from '../domain/permissions.js';
import { recordAudit } from './audit.js';
import type { Ctx } from './context.js';

/** Records a refused request (403) in its own transaction: the refusal itself is an event. */
export async function recordDenied(db: Db, ctx: Ctx, permission: Permission, route: string): Promise<void> {
  await inOrg(db, ctx.actor.orgId, (tx) =>
    recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: 'authz.denied',
      outcome: 'denied',
      meta: ctx.meta,
      details: { permission, route },
    }),
  );
}
