import { ARGON2_FLOOR, createPasswordHasher } from '../../src/adapters/crypto/passwords.js';
import { createTotp } from '../../src/adapters/crypto/totp.js';
import { createWebAuthn, relyingPartyFromUrl } from '../../src/adapters/crypto/webauthn.js';
import { createOrg } from '../../src/app/orgs.js';
import type { Clock } from '../../src/app/ports.js';
import type { IdentityDeps } from '../../src/app/sessions.js';
import { createUserAsOperator } from '../../src/app/users.js';
import type { Role } from '../../src/domain/permissions.js';
import { testCipher } from './crypto.js';
import type { TestDatabase } from './db.js';

/** A clock the test moves by hand: expiry and lockout tests never sleep. */
export class TestClock implements Clock {
  private t: number;
  constructor(start = '2026-03-02T09:00:00.000Z') {
    this.t = Date.parse(start);
  }
  now(): Date {
    return new Date(this.t);
  }
  advance(ms: number): void {
    this.t += ms;
  }
  set(iso: string): void {
    this.t = Date.parse(iso);
  }
}

export const MINUTE = 60_000;

/** The public URL tests use (WebAuthn RP ID `localhost`, origin http://localhost:3000). */
export const TEST_PUBLIC_URL = 'http://localhost:3000';

/**
 * Real identity adapters on a test database. argon2id runs at the OWASP floor (m=19 MiB,
 * t=2) instead of the production m=64 MiB, t=3 to keep the suite quick: the same code path,
 * a smaller cost. One test checks the production parameters and the rehash.
 */
export function testIdentity(t: TestDatabase, clock: Clock = new TestClock()): IdentityDeps {
  return {
    db: t.db,
    clock,
    cipher: testCipher(),
    passwords: createPasswordHasher({
      memoryCost: ARGON2_FLOOR.memoryCost,
      timeCost: ARGON2_FLOOR.timeCost,
      parallelism: 1,
    }),
    totp: createTotp('Billvault'),
    webauthn: createWebAuthn(relyingPartyFromUrl(TEST_PUBLIC_URL)),
    sessionLimits: { idleMinutes: 15, absoluteHours: 12 },
  };
}

/** A password that passes the policy, distinct per seed. */
export function goodPassword(seed: string): string {
  return `correct horse battery ${seed} staple`;
}

export interface SeededOrg {
  orgId: string;
  users: Record<Role, { id: string; email: string; password: string }>;
}

const ROLE_LIST: Role[] = [
  'owner',
  'admin',
  'finance_manager',
  'accountant',
  'sales_rep',
  'viewer',
  'auditor',
];

/** An org with one user per role. */
export async function seedOrg(deps: IdentityDeps, name: string): Promise<SeededOrg> {
  const org = await createOrg(deps.db, { name, baseCurrency: 'EUR' });
  const users = {} as SeededOrg['users'];
  for (const role of ROLE_LIST) {
    const email = `${role}.${org.id.slice(4, 12)}@example.test`;
    const password = goodPassword(`${role}-${org.id.slice(4, 10)}`);
    const { id } = await createUserAsOperator(deps, { email, password, role, orgId: org.id });
    users[role] = { id, email, password };
  }
  return { orgId: org.id, users };
}

/** Parses Set-Cookie headers into the Cookie header a browser would send back, plus the CSRF value. */
export function cookiesFrom(setCookie: string | string[] | undefined): {
  cookie: string;
  csrf: string;
  token: string;
} {
  const list = Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : [];
  const jar: Record<string, string> = {};
  for (const c of list) {
    const first = c.split(';')[0] ?? '';
    const eq = first.indexOf('=');
    jar[first.slice(0, eq)] = first.slice(eq + 1);
  }
  const token = jar['__Host-bv_session'] ?? '';
  const csrf = jar.bv_csrf ?? '';
  return { cookie: `__Host-bv_session=${token}; bv_csrf=${csrf}`, csrf, token };
}
