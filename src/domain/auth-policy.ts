import { type Actor, can, type Permission, ROLE_PERMISSIONS, type Role } from './permissions.js';

/**
 * Identity rules that sit beside the one policy function: who may hand out which role,
 * what an API key may be scoped to, how long break-glass may last, and PII masking.
 */
export const BREAK_GLASS_MAX_MINUTES = 4 * 60;
export const INVITATION_TTL_HOURS = 72;
export const PASSWORD_RESET_TTL_MINUTES = 30;
export const RECOVERY_CODE_COUNT = 10;

/** Only an owner may create, promote to, demote from, or disable an owner. */
export function canAssignRole(actor: Actor, from: Role | null, to: Role | null): boolean {
  if (!can(actor, 'users:manage')) return false;
  if ((from === 'owner' || to === 'owner') && actor.role !== 'owner') return false;
  return true;
}

/** The scopes an API key may carry: a subset of what its creator holds (never a widening). */
export function invalidScopes(creatorRole: Role, scopes: readonly Permission[]): Permission[] {
  return scopes.filter((s) => !ROLE_PERMISSIONS[creatorRole].has(s));
}

/** Whether an actor sees personal data in clear; without `customers:read_pii` it is masked. */
export function canSeePii(actor: Actor): boolean {
  return can(actor, 'customers:read_pii');
}

/** Masks a personal value for actors without `customers:read_pii` (keeps a hint of its shape). */
export function maskPii(actor: Actor, value: string | null): string | null {
  if (value === null || canSeePii(actor)) return value;
  const at = value.indexOf('@');
  if (at > 0) return `${value[0]}***@***`;
  return value.length <= 2 ? '***' : `${value[0]}***`;
}
