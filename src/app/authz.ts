import type { Tx } from '../adapters/db/tx.js';
import { DomainError } from '../domain/errors.js';
import { can, type Permission, type ResourceRef } from '../domain/permissions.js';
import { recordAudit } from './audit.js';
import type { Ctx } from './context.js';

/**
 * Calls the one policy function; on denial records a `denied` audit event and throws 403.
 * Use cases call this before touching anything. A record outside the actor's scope is
 * reported as absent (404) so that existence never leaks across tenants or scopes.
 */
export async function authorize(tx: Tx, ctx: Ctx, action: Permission, resource?: ResourceRef): Promise<void> {
  if (can(ctx.actor, action, resource)) return;
  if (resource && resource.orgId !== ctx.actor.orgId) throw new DomainError('not_found', 'No such object.');
  await recordAudit(tx, {
    orgId: ctx.actor.orgId,
    actor: ctx.actor,
    action: 'authz.denied',
    outcome: 'denied',
    meta: ctx.meta,
    details: { permission: action },
  });
  // Allowed in general but not on this record (e.g. a customer not assigned to this sales rep).
  if (resource && can(ctx.actor, action)) throw new DomainError('not_found', 'No such object.');
  throw new DomainError('forbidden', `This action needs the ${action} permission.`);
}

/**
 * True when the policy limits this actor to records assigned to them (a sales rep): lists then
 * filter on the assignment, so they show exactly what `authorize` would let through one by one.
 */
export function assignedOnly(ctx: Ctx, action: Permission): boolean {
  return can(ctx.actor, action) && !can(ctx.actor, action, { orgId: ctx.actor.orgId, ownerUserId: null });
}
