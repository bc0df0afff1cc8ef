import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { sql } from 'kysely';
import {
  APP_ROLE,
  type Db,
  inOrg,
  isRetryable,
  noteTxOrgScope,
  SCOPE,
  type Tx,
} from '../adapters/db/index.js';
import { DomainError } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import { type Actor, isRole, type Role } from '../domain/permissions.js';
import { effectiveTimeouts, type SessionTimeouts } from '../domain/session-policy.js';
import { recordAudit } from './audit.js';
import type { Ctx, RequestMeta } from './context.js';
import type { Clock, FieldCipher } from './ports.js';

/** Hashes and checks passwords (implemented by src/adapters/crypto/passwords.ts). */
export interface PasswordHasherPort {
  hash(password: string): Promise<string>;
  verify(storedHash: string, password: string): Promise<boolean>;
  needsRehash(storedHash: string): boolean;
  dummyHash(): Promise<string>;
  isCommon(lowercased: string): boolean;
}

/** RFC 6238 TOTP (implemented by src/adapters/crypto/totp.ts). */
export interface TotpPort {
  generateSecret(): string;
  /** The matched time step, or null; steps at or before lastUsedStep never match. */
  verify(secret: string, code: string, now: Date, lastUsedStep: bigint | null): bigint | null;
  uri(secret: string, account: string): string;
}

/** WebAuthn ceremonies (implemented by src/adapters/crypto/webauthn.ts). */
export interface WebAuthnPort {
  readonly rp: { id: string; name: string; origin: string };
  registrationOptions(input: {
    userHandle: Uint8Array;
    userName: string;
    exclude: { id: string; transports: string[] }[];
  }): Promise<{ challenge: string }>;
  verifyRegistration(
    /** The browser's credential JSON; the adapter checks its shape and signatures. */
    response: unknown,
    expectedChallenge: string,
  ): Promise<{
    id: string;
    publicKey: Uint8Array;
    counter: number;
    transports: string[];
    aaguid: string;
  } | null>;
  authenticationOptions(allow: { id: string; transports: string[] }[]): Promise<{ challenge: string }>;
  verifyAuthentication(
    /** The browser's credential JSON; the adapter checks its shape and signatures. */
    response: unknown,
    expectedChallenge: string,
    credential: { id: string; publicKey: Uint8Array; counter: number; transports: string[] },
  ): Promise<{ newCounter: number } | null>;
}

/** Everything the identity use cases need; the composition root builds it. */
export interface IdentityDeps {
  db: Db;
  clock: Clock;
  cipher: FieldCipher;
  passwords: PasswordHasherPort;
  totp: TotpPort;
  webauthn: WebAuthnPort;
  /** Deployment limits (config): org settings can only shorten them. */
  sessionLimits: { idleMinutes: number; absoluteHours: number };
  /** For loud events (break-glass); never given secrets. */
  warn?: (event: Record<string, unknown>, message: string) => void;
}

// ---------------------------------------------------------------------------------------------
// Secrets

/** A fresh 256-bit secret, base64url. */
export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** What is stored for a high-entropy secret (session token, API key, reset token): its SHA-256. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** The CSRF token bound to a session token (double submit, signed by derivation). */
export function csrfFor(sessionToken: string): string {
  return createHash('sha256').update(`bv-csrf\0${sessionToken}`, 'utf8').digest('base64url');
}

/** Constant-time string equality. */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

// ---------------------------------------------------------------------------------------------
// Transactions

/**
 * Runs fn as the application role in an authentication transaction: app.platform = 'on' makes
 * the platform-level identity tables visible (login by email has no org yet). orgId, when
 * given, also scopes org tables and audit events. Retries serialization failures.
 */
export async function inPlatform<T>(
  db: Db,
  fn: (tx: Tx) => Promise<T>,
  orgId: string | null = null,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction().execute(async (tx) => {
        await sql`${SCOPE} SELECT set_config('role', ${APP_ROLE}, true), set_config('app.org_id', ${orgId ?? ''}, true), set_config('app.platform', 'on', true)`.execute(
          tx,
        );
        noteTxOrgScope(tx, orgId);
        return fn(tx);
      });
    } catch (e) {
      if (!isRetryable(e) || attempt >= 8) throw e;
      await new Promise((r) => setTimeout(r, Math.min(200, 2 ** attempt) * (0.5 + Math.random())));
    }
  }
}

/** Switches an authentication transaction to one org (for its audit events and org rows). */
export async function enterOrg(tx: Tx, orgId: string): Promise<void> {
  await sql`SELECT set_config('app.org_id', ${orgId}, true)`.execute(tx);
  noteTxOrgScope(tx, orgId);
}

// ---------------------------------------------------------------------------------------------
// Sessions

export interface SessionView {
  id: string;
  object: 'session';
  org: string;
  created_at: string;
  last_seen_at: string;
  expires_at: string;
  ip: string | null;
  user_agent: string | null;
  mfa: boolean;
  current: boolean;
}

export interface IssuedSession {
  id: string;
  token: string;
  csrf: string;
  expiresAt: Date;
  idleSeconds: number;
  restricted: boolean;
}

async function orgTimeouts(tx: Tx, deps: IdentityDeps, orgId: string): Promise<SessionTimeouts> {
  const rows = await tx
    .selectFrom('org_settings')
    .select(['key', 'value'])
    .where('org_id', '=', orgId)
    .where('key', 'in', ['auth.session_idle_minutes', 'auth.session_absolute_hours'])
    .execute();
  const get = (k: string) => {
    const v = rows.find((r) => r.key === k)?.value;
    return typeof v === 'number' ? v : null;
  };
  return effectiveTimeouts(deps.sessionLimits, {
    idleMinutes: get('auth.session_idle_minutes'),
    absoluteHours: get('auth.session_absolute_hours'),
  });
}

/** True when the org requires every member to use a second factor. */
export async function orgRequiresMfa(tx: Tx, orgId: string): Promise<boolean> {
  const row = await tx
    .selectFrom('org_settings')
    .select('value')
    .where('org_id', '=', orgId)
    .where('key', '=', 'auth.mfa_required')
    .executeTakeFirst();
  return row?.value === true;
}

/**
 * Issues a new session (a fresh random token, only its hash stored). Called inside an
 * authentication transaction that has entered the org.
 */
export async function issueSession(
  tx: Tx,
  deps: IdentityDeps,
  input: { userId: string; orgId: string; mfa: boolean; restricted: boolean; meta: RequestMeta },
): Promise<IssuedSession> {
  const now = deps.clock.now();
  const t = await orgTimeouts(tx, deps, input.orgId);
  const token = randomToken();
  const id = newId('session');
  const expiresAt = new Date(now.getTime() + t.absoluteSeconds * 1000);
  await tx
    .insertInto('sessions')
    .values({
      org_id: input.orgId,
      id,
      user_id: input.userId,
      token_hash: hashSecret(token),
      created_at: now,
      last_seen_at: now,
      authenticated_at: now,
      expires_at: expiresAt,
      idle_seconds: t.idleSeconds,
      mfa: input.mfa,
      restricted: input.restricted,
      ip: input.meta.ip ?? null,
      user_agent: input.meta.userAgent?.slice(0, 300) ?? null,
    })
    .execute();
  return {
    id,
    token,
    csrf: csrfFor(token),
    expiresAt,
    idleSeconds: t.idleSeconds,
    restricted: input.restricted,
  };
}

/** Revokes sessions of a user (all orgs, or one), except possibly one; returns how many. */
export async function revokeUserSessions(
  tx: Tx,
  userId: string,
  reason: string,
  now: Date,
  opts: { orgId?: string; exceptSessionId?: string } = {},
): Promise<number> {
  let q = tx
    .updateTable('sessions')
    .set({ revoked_at: now, revoked_reason: reason })
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null);
  if (opts.orgId) q = q.where('org_id', '=', opts.orgId);
  if (opts.exceptSessionId) q = q.where('id', '!=', opts.exceptSessionId);
  const r = await q.executeTakeFirst();
  return Number(r.numUpdatedRows);
}

export interface AuthenticatedSession {
  actor: Actor;
  authenticatedAt: Date;
  restricted: boolean;
  breakGlass: string | null;
}

interface SessionLookupRow {
  org_id: string;
  id: string;
  user_id: string;
  authenticated_at: Date;
  restricted: boolean;
  role: string;
  glass_role: string | null;
  glass_id: string | null;
}

/**
 * Resolves a session token: valid, not revoked, within its idle and absolute timeouts, its
 * user and membership enabled. Touches last_seen_at (the idle clock). The role is read on
 * every request, so permission changes apply at once; an active break-glass grant raises it.
 */
export async function authenticateSession(
  deps: IdentityDeps,
  token: string,
  meta: RequestMeta & { unsafeMethod?: boolean },
): Promise<AuthenticatedSession | null> {
  if (token.length < 32 || token.length > 100) return null;
  const now = deps.clock.now();
  const hash = hashSecret(token);
  return inPlatform(deps.db, async (tx) => {
    const res = await sql<SessionLookupRow>`
      WITH s AS (
        UPDATE sessions SET last_seen_at = ${now}
        WHERE token_hash = ${hash} AND revoked_at IS NULL AND expires_at > ${now}
          AND last_seen_at + make_interval(secs => idle_seconds) > ${now}
        RETURNING org_id, id, user_id, authenticated_at, restricted
      )
      SELECT s.org_id, s.id, s.user_id, s.authenticated_at, s.restricted, m.role,
             g.role AS glass_role, g.id AS glass_id
      FROM s
      JOIN users u ON u.id = s.user_id AND u.disabled_at IS NULL
      JOIN memberships m ON m.org_id = s.org_id AND m.user_id = s.user_id AND m.disabled_at IS NULL
      LEFT JOIN LATERAL (
        SELECT b.role, b.id FROM break_glass_grants b
        WHERE b.org_id = s.org_id AND b.user_id = s.user_id AND b.revoked_at IS NULL
          AND b.created_at <= ${now} AND b.expires_at > ${now}
        ORDER BY b.created_at DESC LIMIT 1
      ) g ON true`.execute(tx);
    const row = res.rows[0];
    if (!row || !isRole(row.role)) return null;
    const role: Role = row.glass_role && isRole(row.glass_role) ? row.glass_role : row.role;
    const actor: Actor = {
      kind: 'user',
      id: row.user_id,
      userId: row.user_id,
      orgId: row.org_id,
      role,
      sessionId: row.id,
    };
    if (row.glass_id && meta.unsafeMethod) {
      // Every change made under an emergency grant is recorded against the grant.
      await enterOrg(tx, row.org_id);
      await recordAudit(tx, {
        orgId: row.org_id,
        actor,
        action: 'break_glass.used',
        target: { type: 'break_glass', id: row.glass_id },
        outcome: 'success',
        meta,
      });
    }
    return {
      actor,
      authenticatedAt: new Date(row.authenticated_at),
      restricted: row.restricted,
      breakGlass: row.glass_id,
    };
  });
}

/** Ends the caller's own session server-side. */
export async function logout(deps: IdentityDeps, ctx: Ctx): Promise<void> {
  const sessionId = ctx.actor.sessionId;
  if (!sessionId) return;
  await inPlatform(
    deps.db,
    async (tx) => {
      await tx
        .updateTable('sessions')
        .set({ revoked_at: deps.clock.now(), revoked_reason: 'logout' })
        .where('org_id', '=', ctx.actor.orgId)
        .where('id', '=', sessionId)
        .where('revoked_at', 'is', null)
        .execute();
      await recordAudit(tx, {
        orgId: ctx.actor.orgId,
        actor: ctx.actor,
        action: 'auth.logout',
        target: { type: 'session', id: sessionId },
        outcome: 'success',
        meta: ctx.meta,
      });
    },
    ctx.actor.orgId,
  );
}

function sessionView(
  r: {
    id: string;
    org_id: string;
    created_at: Date;
    last_seen_at: Date;
    expires_at: Date;
    ip: string | null;
    user_agent: string | null;
    mfa: boolean;
  },
  currentId: string | undefined,
): SessionView {
  return {
    id: r.id,
    object: 'session',
    org: r.org_id,
    created_at: r.created_at.toISOString(),
    last_seen_at: r.last_seen_at.toISOString(),
    expires_at: r.expires_at.toISOString(),
    ip: r.ip,
    user_agent: r.user_agent,
    mfa: r.mfa,
    current: r.id === currentId,
  };
}

function requireUser(ctx: Ctx): string {
  const userId = ctx.actor.kind === 'user' ? ctx.actor.userId : undefined;
  if (!userId) throw new DomainError('forbidden', 'Only a signed-in user has sessions.');
  return userId;
}

/** The caller's own live sessions in this org. */
export async function listOwnSessions(deps: IdentityDeps, ctx: Ctx): Promise<SessionView[]> {
  const userId = requireUser(ctx);
  const now = deps.clock.now();
  return inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    const rows = await tx
      .selectFrom('sessions')
      .select([
        'id',
        'org_id',
        'created_at',
        'last_seen_at',
        'expires_at',
        'ip',
        'user_agent',
        'mfa',
        'idle_seconds',
      ])
      .where('user_id', '=', userId)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now)
      .orderBy('created_at', 'desc')
      .limit(100)
      .execute();
    return rows
      .filter((r) => r.last_seen_at.getTime() + r.idle_seconds * 1000 > now.getTime())
      .map((r) => sessionView(r, ctx.actor.sessionId));
  });
}

/** Revokes one of the caller's own sessions; anyone else's is reported absent. */
export async function revokeOwnSession(deps: IdentityDeps, ctx: Ctx, sessionId: string): Promise<void> {
  const userId = requireUser(ctx);
  await inOrg(deps.db, ctx.actor.orgId, async (tx) => {
    const r = await tx
      .updateTable('sessions')
      .set({ revoked_at: deps.clock.now(), revoked_reason: 'revoked_by_user' })
      .where('id', '=', sessionId)
      .where('user_id', '=', userId)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) throw new DomainError('not_found', 'No such session.');
    await recordAudit(tx, {
      orgId: ctx.actor.orgId,
      actor: ctx.actor,
      action: 'session.revoked',
      target: { type: 'session', id: sessionId },
      outcome: 'success',
      meta: ctx.meta,
    });
  });
}

/** Signs the caller out everywhere else: every other session of theirs, in every org. */
export async function revokeOtherSessions(deps: IdentityDeps, ctx: Ctx): Promise<number> {
  const userId = requireUser(ctx);
  return inPlatform(
    deps.db,
    async (tx) => {
      const n = await revokeUserSessions(tx, userId, 'revoked_by_user', deps.clock.now(), {
        exceptSessionId: ctx.actor.sessionId,
      });
      await recordAudit(tx, {
        orgId: ctx.actor.orgId,
        actor: ctx.actor,
        action: 'session.revoked_others',
        target: { type: 'user', id: userId },
        outcome: 'success',
        meta: ctx.meta,
        details: { sessions_revoked: n },
      });
      return n;
    },
    ctx.actor.orgId,
  );
}

/**
 * Ends the session a browser presented when it signed in again (defence in depth against
 * session fixation: a new sign-in never keeps an old token alive).
 */
export async function replacePresentedSession(
  deps: IdentityDeps,
  token: string | undefined,
  meta: RequestMeta,
) {
  if (!token || token.length < 32 || token.length > 100) return;
  await inPlatform(deps.db, async (tx) => {
    const s = await tx
      .updateTable('sessions')
      .set({ revoked_at: deps.clock.now(), revoked_reason: 'replaced_by_login' })
      .where('token_hash', '=', hashSecret(token))
      .where('revoked_at', 'is', null)
      .returning(['org_id', 'id', 'user_id'])
      .executeTakeFirst();
    if (!s) return;
    await enterOrg(tx, s.org_id);
    await recordAudit(tx, {
      orgId: s.org_id,
      actor: { kind: 'user', id: s.user_id, sessionId: s.id },
      action: 'session.replaced',
      target: { type: 'session', id: s.id },
      outcome: 'success',
      meta,
    });
  });
}

/**
 * Moves the caller to another org they belong to: a new session there (a privilege change,
 * so a new token), this one ends. The second-factor state carries over; freshness does not.
 */
export async function switchOrg(deps: IdentityDeps, ctx: Ctx, orgId: string): Promise<IssuedSession> {
  const userId = requireUser(ctx);
  const sessionId = ctx.actor.sessionId;
  if (!sessionId) throw new DomainError('forbidden', 'Only a signed-in user can switch orgs.');
  const now = deps.clock.now();
  return inPlatform(deps.db, async (tx) => {
    const member = await tx
      .selectFrom('memberships')
      .select('org_id')
      .where('org_id', '=', orgId)
      .where('user_id', '=', userId)
      .where('disabled_at', 'is', null)
      .executeTakeFirst();
    if (!member) throw new DomainError('not_found', 'No such org.', 'org');
    const old = await tx
      .selectFrom('sessions')
      .select(['mfa', 'restricted'])
      .where('org_id', '=', ctx.actor.orgId)
      .where('id', '=', sessionId)
      .executeTakeFirstOrThrow();
    await tx
      .updateTable('sessions')
      .set({ revoked_at: now, revoked_reason: 'switched_org' })
      .where('org_id', '=', ctx.actor.orgId)
      .where('id', '=', sessionId)
      .execute();
    await enterOrg(tx, orgId);
    const restricted = old.restricted || (!old.mfa && (await orgRequiresMfa(tx, orgId)));
    const session = await issueSession(tx, deps, { userId, orgId, mfa: old.mfa, restricted, meta: ctx.meta });
    // step-up freshness is not carried into the other org
    await tx
      .updateTable('sessions')
      .set({ authenticated_at: new Date(now.getTime() - 3600_000) })
      .where('org_id', '=', orgId)
      .where('id', '=', session.id)
      .execute();
    await recordAudit(tx, {
      orgId,
      actor: { kind: 'user', id: userId, sessionId: session.id },
      action: 'session.switched_org',
      target: { type: 'session', id: session.id },
      outcome: 'success',
      meta: ctx.meta,
      details: { from_org: ctx.actor.orgId, from_session: sessionId },
    });
    return session;
  });
}
