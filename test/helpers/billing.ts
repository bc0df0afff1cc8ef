import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { systemClock } from '../../src/app/ports.js';
import { newId } from '../../src/domain/ids.js';
import type { Actor, Role } from '../../src/domain/permissions.js';
import { buildTestApp } from './app.js';
import { testCipher } from './crypto.js';
import type { TestDatabase } from './db.js';

/**
 * Billing routes tested on their own: credentials are a plain `x-test-actor: org:role:user`
 * header (the identity module's own tests cover sessions and API keys end to end).
 */
export function headerActor(value: string | undefined): Actor | null {
  const [orgId, role, userId] = (value ?? '').split(':');
  if (!orgId || !role || !userId) return null;
  return { kind: 'user', id: userId, userId, orgId, role: role as Role };
}

export const actorHeader = (org: string, role: Role, user: string) => ({
  'x-test-actor': `${org}:${role}:${user}`,
});

/** A real user with a membership in the org, as the identity module would create them. */
export async function addMember(t: TestDatabase, org: string, role: Role, name: string): Promise<string> {
  const id = newId('user');
  const now = new Date();
  await sql`INSERT INTO users (id, email, webauthn_user_handle, created_at, updated_at)
            VALUES (${id}, ${`${name}-${randomBytes(4).toString('hex')}@staff.example`}, ${randomBytes(16)}, ${now}, ${now})`.execute(
    t.db,
  );
  await sql`INSERT INTO memberships (org_id, id, user_id, role, created_at, updated_at)
            VALUES (${org}, ${newId('membership')}, ${id}, ${role}, ${now}, ${now})`.execute(t.db);
  return id;
}

/** The real app with billing routes, a real field cipher and the header authenticator. */
export function buildBillingApp(t: TestDatabase, cipher = testCipher()) {
  return buildTestApp(t, {
    authenticate: async (req) => headerActor(req.headers['x-test-actor'] as string | undefined),
    billing: { db: t.db, cipher, clock: systemClock },
  });
}

/** The values of a standard-rated (S), exclusive, non-compound tax rate row. */
export function standardRateRow(org: string, id: string, name: string, percentage: string) {
  return {
    org_id: org,
    id,
    name,
    percentage,
    inclusive: false,
    compound: false,
    category: 'S' as const,
    exemption_reason: null,
    exemption_reason_code: null,
    jurisdiction: null,
  };
}
