import type { Db } from '../adapters/db/index.js';
import { DomainError } from '../domain/errors.js';
import { type Actor, isRole } from '../domain/permissions.js';
import { normalizeEmail } from './auth.js';
import { inPlatform } from './sessions.js';

/**
 * The CLI acting as a named person (`--as EMAIL`): the member of the org with that email, with
 * their role in that org, so every policy check and audit event is theirs. Refused when the
 * account or the membership is disabled.
 */
export async function memberActorAsOperator(db: Db, orgId: string, emailInput: string): Promise<Actor> {
  const email = normalizeEmail(emailInput);
  if (!email) throw new DomainError('validation_failed', 'A valid email address is required.', 'email');
  return inPlatform(
    db,
    async (tx) => {
      const row = await tx
        .selectFrom('users')
        .innerJoin('memberships', 'memberships.user_id', 'users.id')
        .select([
          'users.id',
          'users.disabled_at as user_disabled',
          'memberships.role',
          'memberships.disabled_at',
        ])
        .where('users.email', '=', email)
        .where('memberships.org_id', '=', orgId)
        .executeTakeFirst();
      if (!row || row.user_disabled || row.disabled_at || !isRole(row.role)) {
        throw new DomainError('not_found', `No active member ${email} in this org.`, 'email');
      }
      return { kind: 'user', id: row.id, userId: row.id, orgId, role: row.role };
    },
    orgId,
  );
}
