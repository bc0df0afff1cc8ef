import type { Tx } from '../adapters/db/index.js';
import { afterFailure, afterSuccess, ipAfterFailure, ipBlocked, isLocked } from '../domain/auth-lockout.js';
import { RECOVERY_CODE_COUNT } from '../domain/auth-policy.js';
import { DomainError } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import { checkPassword, PASSWORD_PROBLEM_MESSAGES } from '../domain/password-policy.js';
import { CHALLENGE_TTL_SECONDS } from '../domain/session-policy.js';
import { recordAudit } from './audit.js';
import type { Ctx, RequestMeta } from './context.js';
import { enqueueNotice } from './outbox.js';
import type { CipherScope, FieldRef } from './ports.js';
import {
  enterOrg,
  hashSecret,
  type IdentityDeps,
  type IssuedSession,
  inPlatform,
  issueSession,
  orgRequiresMfa,
  randomToken,
  revokeUserSessions,
} from './sessions.js';

const GENERIC = 'The email address or password is incorrect.';
const MAX_MFA_ATTEMPTS = 5;

/** Lower-cased, trimmed email; null when it cannot be an address at all. */
export function normalizeEmail(email: string): string | null {
  const e = email.trim().toLowerCase();
  if (e.length < 3 || e.length > 254 || !/^[^\s@]+@[^\s@]+$/.test(e)) return null;
  return e;
}

/** Throws 422 password_rejected when a new password breaks the policy. */
export function assertAcceptablePassword(deps: IdentityDeps, password: string, context: string[]): void {
  const problem = checkPassword({ password, isCommon: deps.passwords.isCommon, context });
  if (problem) throw new DomainError('password_rejected', PASSWORD_PROBLEM_MESSAGES[problem], 'password');
}

export function passwordContext(email: string): string[] {
  const local = email.split('@')[0] ?? '';
  return [email, local, 'billvault'];
}

function totpScope(userId: string): { scope: CipherScope; field: FieldRef } {
  return {
    scope: { orgId: null, subject: { type: 'user', id: userId } },
    field: { table: 'users', column: 'totp_secret_enc', rowId: userId },
  };
}

export interface UserSummary {
  id: string;
  object: 'user';
  email: string;
}

export type LoginResult =
  | {
      kind: 'session';
      session: IssuedSession;
      user: UserSummary;
      orgId: string;
      mfaEnrolmentRequired: boolean;
    }
  | { kind: 'mfa'; mfaToken: string; methods: ('totp' | 'webauthn' | 'recovery_code')[] };

type Failure = { failed: string };
const isFailure = (v: unknown): v is Failure => typeof v === 'object' && v !== null && 'failed' in v;

async function ipWindow(tx: Tx, ip: string | null | undefined) {
  if (!ip) return null;
  const row = await tx
    .selectFrom('auth_throttle')
    .select(['failures', 'window_started_at'])
    .where('key', '=', `ip:${ip}`)
    .executeTakeFirst();
  return row ? { failures: row.failures, windowStartedAt: row.window_started_at } : null;
}

/** Books a failed second-factor step; only a wrong code or assertion counts toward the lock. */
async function refuseSecondFactor(
  deps: IdentityDeps,
  result: Failure,
  how: { lockOn: string; action: string },
  meta: RequestMeta,
): Promise<void> {
  const f = result as { failed: string; userId: string | null; orgId: string | null };
  await recordFailure(
    deps,
    {
      userId: f.userId,
      orgId: f.orgId,
      reason: f.failed,
      countTowardLock: f.failed === how.lockOn,
      action: how.action,
    },
    meta,
  );
}

/**
 * Books one failed attempt: the per-IP window, the account's consecutive failures (and its
 * lock), and an audit event. Runs in its own transaction so it commits although the login fails.
 */
async function recordFailure(
  deps: IdentityDeps,
  input: {
    userId: string | null;
    orgId: string | null;
    reason: string;
    countTowardLock: boolean;
    action?: string;
  },
  meta: RequestMeta,
): Promise<void> {
  const now = deps.clock.now();
  await inPlatform(deps.db, async (tx) => {
    if (meta.ip) {
      const w = ipAfterFailure(await ipWindow(tx, meta.ip), now);
      await tx
        .insertInto('auth_throttle')
        .values({ key: `ip:${meta.ip}`, failures: w.failures, window_started_at: w.windowStartedAt })
        .onConflict((oc) =>
          oc.column('key').doUpdateSet({ failures: w.failures, window_started_at: w.windowStartedAt }),
        )
        .execute();
    }
    if (input.orgId) await enterOrg(tx, input.orgId);
    if (input.userId && input.countTowardLock) {
      const u = await tx
        .selectFrom('users')
        .select(['failed_logins', 'locked_until'])
        .where('id', '=', input.userId)
        .forUpdate()
        .executeTakeFirst();
      if (u) {
        const before = { failedAttempts: u.failed_logins, lockedUntil: u.locked_until };
        const after = afterFailure(before, now);
        await tx
          .updateTable('users')
          .set({ failed_logins: after.failedAttempts, locked_until: after.lockedUntil })
          .where('id', '=', input.userId)
          .execute();
        if (!isLocked(before, now) && isLocked(after, now)) {
          await recordAudit(tx, {
            orgId: input.orgId,
            actor: { kind: 'anonymous' },
            action: 'auth.account_locked',
            target: { type: 'user', id: input.userId },
            outcome: 'success',
            meta,
            details: { until: after.lockedUntil?.toISOString() },
          });
        }
      }
    }
    await recordAudit(tx, {
      orgId: input.orgId,
      actor: { kind: 'anonymous' },
      action: input.action ?? 'auth.login_failed',
      target: input.userId ? { type: 'user', id: input.userId } : null,
      outcome: 'failed',
      meta,
      details: { reason: input.reason },
    });
  });
}

async function assertIpAllowed(deps: IdentityDeps, meta: RequestMeta): Promise<void> {
  const w = await inPlatform(deps.db, (tx) => ipWindow(tx, meta.ip));
  if (ipBlocked(w, deps.clock.now())) {
    throw new DomainError(
      'rate_limited',
      'Too many failed sign-in attempts from this address. Try again later.',
    );
  }
}

async function mfaMethods(tx: Tx, userId: string, totpEnabled: boolean) {
  const passkeys = await tx
    .selectFrom('webauthn_credentials')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('user_id', '=', userId)
    .executeTakeFirstOrThrow();
  const methods: ('totp' | 'webauthn' | 'recovery_code')[] = [];
  if (totpEnabled) methods.push('totp');
  if (Number(passkeys.n) > 0) methods.push('webauthn');
  if (methods.length > 0) methods.push('recovery_code');
  return methods;
}

/**
 * Step one of signing in. Same answer (401 invalid_credentials) and the same argon2 work
 * whether the account is unknown, locked, disabled or the password wrong.
 */
export async function login(
  deps: IdentityDeps,
  input: { email: string; password: string; org?: string | undefined },
  meta: RequestMeta,
): Promise<LoginResult> {
  await assertIpAllowed(deps, meta);
  const email = normalizeEmail(input.email);
  const pre = await inPlatform(deps.db, async (tx) => {
    const user = email
      ? await tx.selectFrom('users').selectAll().where('email', '=', email).executeTakeFirst()
      : undefined;
    const memberships = user
      ? await tx
          .selectFrom('memberships')
          .select(['org_id', 'role'])
          .where('user_id', '=', user.id)
          .where('disabled_at', 'is', null)
          .orderBy('created_at')
          .execute()
      : [];
    return { user, memberships };
  });
  const { user } = pre;
  const stored = user?.password_hash ?? (await deps.passwords.dummyHash());
  const ok = await deps.passwords.verify(stored, input.password);
  const now = deps.clock.now();
  const membership = input.org ? pre.memberships.find((m) => m.org_id === input.org) : pre.memberships[0];
  const locked = user
    ? isLocked({ failedAttempts: user.failed_logins, lockedUntil: user.locked_until }, now)
    : false;
  const reason = !user
    ? 'unknown_account'
    : locked
      ? 'locked'
      : !ok || !user.password_hash
        ? 'bad_password'
        : user.disabled_at
          ? 'disabled'
          : !membership
            ? 'no_membership'
            : null;
  if (reason || !user || !membership) {
    await recordFailure(
      deps,
      {
        userId: user?.id ?? null,
        orgId: membership?.org_id ?? pre.memberships[0]?.org_id ?? null,
        reason: reason ?? 'no_membership',
        countTowardLock: reason === 'bad_password',
      },
      meta,
    );
    throw new DomainError('invalid_credentials', GENERIC);
  }
  const rehash = deps.passwords.needsRehash(stored) ? await deps.passwords.hash(input.password) : null;
  return inPlatform(
    deps.db,
    async (tx): Promise<LoginResult> => {
      const reset = afterSuccess();
      await tx
        .updateTable('users')
        .set({
          failed_logins: reset.failedAttempts,
          locked_until: reset.lockedUntil,
          ...(rehash ? { password_hash: rehash, updated_at: now } : {}),
        })
        .where('id', '=', user.id)
        .execute();
      const methods = await mfaMethods(tx, user.id, user.totp_enabled_at !== null);
      const actor = { kind: 'user' as const, id: user.id };
      if (methods.length > 0) {
        const mfaToken = randomToken();
        await tx
          .insertInto('auth_challenges')
          .values({
            id: newId('challenge'),
            kind: 'mfa',
            user_id: user.id,
            org_id: membership.org_id,
            secret_hash: hashSecret(mfaToken),
            challenge: null,
            created_at: now,
            expires_at: new Date(now.getTime() + CHALLENGE_TTL_SECONDS * 1000),
            used_at: null,
          })
          .execute();
        await recordAudit(tx, {
          orgId: membership.org_id,
          actor,
          action: 'auth.password_verified',
          target: { type: 'user', id: user.id },
          outcome: 'success',
          meta,
          details: { rehashed: rehash !== null, methods },
        });
        return { kind: 'mfa', mfaToken, methods };
      }
      const mustEnrol = await orgRequiresMfa(tx, membership.org_id);
      const session = await issueSession(tx, deps, {
        userId: user.id,
        orgId: membership.org_id,
        mfa: false,
        restricted: mustEnrol,
        meta,
      });
      await recordAudit(tx, {
        orgId: membership.org_id,
        actor: { ...actor, sessionId: session.id },
        action: 'auth.login',
        target: { type: 'user', id: user.id },
        outcome: 'success',
        meta,
        details: { mfa: false, mfa_enrolment_required: mustEnrol, rehashed: rehash !== null },
      });
      return {
        kind: 'session',
        session,
        user: { id: user.id, object: 'user', email: user.email },
        orgId: membership.org_id,
        mfaEnrolmentRequired: mustEnrol,
      };
    },
    membership.org_id,
  );
}

interface MfaChallenge {
  id: string;
  user_id: string;
  org_id: string;
}

async function takeMfaChallenge(tx: Tx, mfaToken: string, now: Date): Promise<MfaChallenge | null> {
  const ch = await tx
    .selectFrom('auth_challenges')
    .select(['id', 'user_id', 'org_id', 'expires_at', 'used_at', 'attempts'])
    .where('secret_hash', '=', hashSecret(mfaToken))
    .where('kind', '=', 'mfa')
    .forUpdate()
    .executeTakeFirst();
  if (!ch?.user_id || !ch.org_id || ch.used_at || ch.expires_at <= now || ch.attempts >= MAX_MFA_ATTEMPTS) {
    return null;
  }
  return { id: ch.id, user_id: ch.user_id, org_id: ch.org_id };
}

/** Normalises a recovery code as typed (case, dashes and spaces do not matter). */
export function normalizeRecoveryCode(code: string): string {
  return code.toLowerCase().replace(/[\s-]/g, '');
}

async function checkTotp(deps: IdentityDeps, tx: Tx, userId: string, code: string): Promise<boolean> {
  const u = await tx
    .selectFrom('users')
    .select(['totp_secret_enc', 'totp_enabled_at', 'totp_last_step'])
    .where('id', '=', userId)
    .forUpdate()
    .executeTakeFirst();
  if (!u?.totp_secret_enc || !u.totp_enabled_at) return false;
  const { scope, field } = totpScope(userId);
  const secret = await deps.cipher.decrypt(tx, scope, field, u.totp_secret_enc);
  const step = deps.totp.verify(
    secret,
    code,
    deps.clock.now(),
    u.totp_last_step === null ? null : BigInt(u.totp_last_step),
  );
  if (step === null) return false;
  // Single use, also across concurrent requests: the step only ever moves forward.
  const r = await tx
    .updateTable('users')
    .set({ totp_last_step: step })
    .where('id', '=', userId)
    .where((eb) => eb.or([eb('totp_last_step', 'is', null), eb('totp_last_step', '<', step)]))
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

async function useRecoveryCode(tx: Tx, userId: string, code: string, now: Date): Promise<boolean> {
  const r = await tx
    .updateTable('recovery_codes')
    .set({ used_at: now })
    .where('user_id', '=', userId)
    .where('code_hash', '=', hashSecret(normalizeRecoveryCode(code)))
    .where('used_at', 'is', null)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

async function activeUser(tx: Tx, userId: string, orgId: string, now: Date) {
  const row = await tx
    .selectFrom('users')
    .innerJoin('memberships', 'memberships.user_id', 'users.id')
    .select(['users.id', 'users.email', 'users.disabled_at', 'users.failed_logins', 'users.locked_until'])
    .where('users.id', '=', userId)
    .where('memberships.org_id', '=', orgId)
    .where('memberships.disabled_at', 'is', null)
    .executeTakeFirst();
  if (!row || row.disabled_at) return null;
  if (isLocked({ failedAttempts: row.failed_logins, lockedUntil: row.locked_until }, now)) return null;
  return row;
}

/** Step two: a TOTP code or a recovery code for the mfa_token of step one. */
export async function verifyMfa(
  deps: IdentityDeps,
  input: { mfaToken: string; code?: string | undefined; recoveryCode?: string | undefined },
  meta: RequestMeta,
): Promise<Extract<LoginResult, { kind: 'session' }>> {
  await assertIpAllowed(deps, meta);
  const now = deps.clock.now();
  const result = await inPlatform(deps.db, async (tx) => {
    const ch = await takeMfaChallenge(tx, input.mfaToken, now);
    if (!ch) return { failed: 'challenge_invalid', userId: null, orgId: null };
    await enterOrg(tx, ch.org_id);
    const user = await activeUser(tx, ch.user_id, ch.org_id, now);
    if (!user) return { failed: 'account_unavailable', userId: ch.user_id, orgId: ch.org_id };
    let method: 'totp' | 'recovery_code' | null = null;
    if (input.code && (await checkTotp(deps, tx, user.id, input.code))) method = 'totp';
    else if (input.recoveryCode && (await useRecoveryCode(tx, user.id, input.recoveryCode, now)))
      method = 'recovery_code';
    if (!method) {
      await tx
        .updateTable('auth_challenges')
        .set((eb) => ({ attempts: eb('attempts', '+', 1) }))
        .where('id', '=', ch.id)
        .execute();
      return { failed: 'bad_code', userId: user.id, orgId: ch.org_id };
    }
    await tx.updateTable('auth_challenges').set({ used_at: now }).where('id', '=', ch.id).execute();
    await tx
      .updateTable('users')
      .set({ failed_logins: 0, locked_until: null })
      .where('id', '=', user.id)
      .execute();
    const session = await issueSession(tx, deps, {
      userId: user.id,
      orgId: ch.org_id,
      mfa: true,
      restricted: false,
      meta,
    });
    await recordAudit(tx, {
      orgId: ch.org_id,
      actor: { kind: 'user', id: user.id, sessionId: session.id },
      action: 'auth.login',
      target: { type: 'user', id: user.id },
      outcome: 'success',
      meta,
      details: { mfa: true, method },
    });
    if (method === 'recovery_code') {
      await enqueueNotice(
        tx,
        {
          kind: 'credential.mfa_changed',
          userId: user.id,
          orgId: null,
          payload: { change: 'recovery_code_used' },
        },
        now,
      );
    }
    return {
      kind: 'session' as const,
      session,
      user: { id: user.id, object: 'user' as const, email: user.email },
      orgId: ch.org_id,
      mfaEnrolmentRequired: false,
    };
  });
  if (isFailure(result)) {
    await refuseSecondFactor(deps, result, { lockOn: 'bad_code', action: 'auth.mfa_failed' }, meta);
    throw new DomainError('invalid_credentials', 'The code is incorrect or has expired.');
  }
  return result;
}

function requireUserId(ctx: Ctx): string {
  if (ctx.actor.kind !== 'user' || !ctx.actor.userId) {
    throw new DomainError('forbidden', 'Only a signed-in user can do this.');
  }
  return ctx.actor.userId;
}

/** Fresh authentication for sensitive actions: password or TOTP again; rotates the session token. */
export async function stepUp(
  deps: IdentityDeps,
  ctx: Ctx,
  input: { password?: string | undefined; code?: string | undefined },
): Promise<IssuedSession> {
  const userId = requireUserId(ctx);
  const sessionId = ctx.actor.sessionId;
  if (!sessionId) throw new DomainError('forbidden', 'Only a signed-in user can do this.');
  await assertIpAllowed(deps, ctx.meta);
  const user = await inPlatform(deps.db, (tx) =>
    tx.selectFrom('users').select(['id', 'password_hash']).where('id', '=', userId).executeTakeFirstOrThrow(),
  );
  let ok = false;
  if (input.password !== undefined) {
    ok = await deps.passwords.verify(
      user.password_hash ?? (await deps.passwords.dummyHash()),
      input.password,
    );
  }
  const result = await inPlatform(
    deps.db,
    async (tx) => {
      if (!ok && input.code !== undefined) ok = await checkTotp(deps, tx, userId, input.code);
      if (!ok) return null;
      const old = await tx
        .selectFrom('sessions')
        .select(['mfa', 'restricted', 'revoked_at'])
        .where('org_id', '=', ctx.actor.orgId)
        .where('id', '=', sessionId)
        .forUpdate()
        .executeTakeFirst();
      if (!old || old.revoked_at) return null;
      const now = deps.clock.now();
      await tx
        .updateTable('sessions')
        .set({ revoked_at: now, revoked_reason: 'rotated' })
        .where('org_id', '=', ctx.actor.orgId)
        .where('id', '=', sessionId)
        .execute();
      const session = await issueSession(tx, deps, {
        userId,
        orgId: ctx.actor.orgId,
        mfa: old.mfa,
        restricted: old.restricted, // a session that must enrol MFA stays restricted
        meta: ctx.meta,
      });
      await recordAudit(tx, {
        orgId: ctx.actor.orgId,
        actor: ctx.actor,
        action: 'auth.step_up',
        target: { type: 'session', id: session.id },
        outcome: 'success',
        meta: ctx.meta,
        details: { method: input.password !== undefined ? 'password' : 'totp', rotated_from: sessionId },
      });
      return session;
    },
    ctx.actor.orgId,
  );
  if (!result) {
    await recordFailure(
      deps,
      {
        userId,
        orgId: ctx.actor.orgId,
        reason: 'bad_credentials',
        countTowardLock: true,
        action: 'auth.step_up_failed',
      },
      ctx.meta,
    );
    throw new DomainError('invalid_credentials', 'Re-authentication failed.');
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Passwords

/** Changes the caller's password (needs the current one); other sessions are revoked. */
export async function changePassword(
  deps: IdentityDeps,
  ctx: Ctx,
  input: { currentPassword: string; newPassword: string },
): Promise<void> {
  const userId = requireUserId(ctx);
  await assertIpAllowed(deps, ctx.meta);
  const user = await inPlatform(deps.db, (tx) =>
    tx
      .selectFrom('users')
      .select(['email', 'password_hash'])
      .where('id', '=', userId)
      .executeTakeFirstOrThrow(),
  );
  const ok = await deps.passwords.verify(
    user.password_hash ?? (await deps.passwords.dummyHash()),
    input.currentPassword,
  );
  if (!ok) {
    await recordFailure(
      deps,
      {
        userId,
        orgId: ctx.actor.orgId,
        reason: 'bad_password',
        countTowardLock: true,
        action: 'auth.password_change_failed',
      },
      ctx.meta,
    );
    throw new DomainError('invalid_credentials', 'The current password is incorrect.', 'current_password');
  }
  assertAcceptablePassword(deps, input.newPassword, passwordContext(user.email));
  const hash = await deps.passwords.hash(input.newPassword);
  const now = deps.clock.now();
  await inPlatform(
    deps.db,
    async (tx) => {
      await tx
        .updateTable('users')
        .set({ password_hash: hash, password_changed_at: now, updated_at: now })
        .where('id', '=', userId)
        .execute();
      const revoked = await revokeUserSessions(tx, userId, 'password_changed', now, {
        exceptSessionId: ctx.actor.sessionId,
      });
      await enqueueNotice(tx, { kind: 'credential.password_changed', userId, orgId: null }, now);
      await recordAudit(tx, {
        orgId: ctx.actor.orgId,
        actor: ctx.actor,
        action: 'credential.password_changed',
        target: { type: 'user', id: userId },
        outcome: 'success',
        meta: ctx.meta,
        details: { sessions_revoked: revoked },
      });
    },
    ctx.actor.orgId,
  );
}

/** Starts a reset: the same answer whether or not the account exists; the link goes to the outbox. */
export async function requestPasswordReset(deps: IdentityDeps, input: { email: string }, meta: RequestMeta) {
  const email = normalizeEmail(input.email);
  const now = deps.clock.now();
  await inPlatform(deps.db, async (tx) => {
    const user = email
      ? await tx
          .selectFrom('users')
          .select(['id', 'disabled_at'])
          .where('email', '=', email)
          .executeTakeFirst()
      : undefined;
    if (!user || user.disabled_at) {
      await recordAudit(tx, {
        orgId: null,
        actor: { kind: 'anonymous' },
        action: 'auth.password_reset_requested',
        outcome: 'failed',
        meta,
        details: { reason: 'unknown_account' },
      });
      return;
    }
    // No mail bombing: at most 3 reset links per account and hour (the answer stays the same).
    const recent = await tx
      .selectFrom('auth_challenges')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('user_id', '=', user.id)
      .where('kind', '=', 'password_reset')
      .where('created_at', '>', new Date(now.getTime() - 3600_000))
      .executeTakeFirstOrThrow();
    if (Number(recent.n) >= 3) {
      await recordAudit(tx, {
        orgId: null,
        actor: { kind: 'anonymous' },
        action: 'auth.password_reset_requested',
        target: { type: 'user', id: user.id },
        outcome: 'denied',
        meta,
        details: { reason: 'too_many_requests' },
      });
      return;
    }
    const token = randomToken();
    const expiresAt = new Date(now.getTime() + 30 * 60_000);
    await tx
      .insertInto('auth_challenges')
      .values({
        id: newId('challenge'),
        kind: 'password_reset',
        user_id: user.id,
        org_id: null,
        secret_hash: hashSecret(token),
        challenge: null,
        created_at: now,
        expires_at: expiresAt,
        used_at: null,
      })
      .execute();
    await enqueueNotice(
      tx,
      {
        kind: 'password_reset.requested',
        userId: user.id,
        orgId: null,
        payload: { token, expires_at: expiresAt.toISOString() },
      },
      now,
    );
    await recordAudit(tx, {
      orgId: null,
      actor: { kind: 'anonymous' },
      action: 'auth.password_reset_requested',
      target: { type: 'user', id: user.id },
      outcome: 'success',
      meta,
    });
  });
}

/**
 * Completes a reset with the emailed token. It sets the password and revokes every session,
 * but signs nobody in: the next login still asks for the second factor (a reset never
 * bypasses MFA).
 */
export async function resetPassword(
  deps: IdentityDeps,
  input: { token: string; newPassword: string },
  meta: RequestMeta,
) {
  const now = deps.clock.now();
  const ch = await inPlatform(deps.db, async (tx) => {
    const row = await tx
      .selectFrom('auth_challenges')
      .innerJoin('users', 'users.id', 'auth_challenges.user_id')
      .select([
        'auth_challenges.id',
        'auth_challenges.user_id',
        'users.email',
        'auth_challenges.expires_at',
        'auth_challenges.used_at',
      ])
      .where('auth_challenges.secret_hash', '=', hashSecret(input.token))
      .where('auth_challenges.kind', '=', 'password_reset')
      .executeTakeFirst();
    return row && !row.used_at && row.expires_at > now ? row : null;
  });
  if (!ch?.user_id)
    throw new DomainError('token_invalid', 'The reset link is invalid or has expired.', 'token');
  const userId = ch.user_id;
  assertAcceptablePassword(deps, input.newPassword, passwordContext(ch.email));
  const hash = await deps.passwords.hash(input.newPassword);
  await inPlatform(deps.db, async (tx) => {
    const used = await tx
      .updateTable('auth_challenges')
      .set({ used_at: now })
      .where('id', '=', ch.id)
      .where('used_at', 'is', null)
      .executeTakeFirst();
    if (Number(used.numUpdatedRows) !== 1) {
      throw new DomainError('token_invalid', 'The reset link is invalid or has expired.', 'token');
    }
    await tx
      .updateTable('users')
      .set({
        password_hash: hash,
        password_changed_at: now,
        updated_at: now,
        failed_logins: 0,
        locked_until: null,
      })
      .where('id', '=', userId)
      .execute();
    const revoked = await revokeUserSessions(tx, userId, 'password_reset', now);
    await enqueueNotice(tx, { kind: 'credential.password_reset', userId, orgId: null }, now);
    await recordAudit(tx, {
      orgId: null,
      actor: { kind: 'anonymous' },
      action: 'credential.password_reset',
      target: { type: 'user', id: userId },
      outcome: 'success',
      meta,
      details: { sessions_revoked: revoked },
    });
  });
}

// ---------------------------------------------------------------------------------------------
// TOTP and recovery codes

const RC_ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

function newRecoveryCode(): string {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  let s = '';
  for (const b of bytes) s += RC_ALPHABET[b & 31];
  return `${s.slice(0, 4)}-${s.slice(4, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}`;
}

async function replaceRecoveryCodes(tx: Tx, userId: string, now: Date): Promise<string[]> {
  await tx.deleteFrom('recovery_codes').where('user_id', '=', userId).execute();
  const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);
  await tx
    .insertInto('recovery_codes')
    .values(
      codes.map((c) => ({
        user_id: userId,
        id: newId('recovery_code'),
        code_hash: hashSecret(normalizeRecoveryCode(c)),
        used_at: null,
        created_at: now,
      })),
    )
    .execute();
  return codes;
}

async function credentialChanged(
  tx: Tx,
  deps: IdentityDeps,
  ctx: Ctx,
  userId: string,
  action: string,
  kind: Parameters<typeof enqueueNotice>[1]['kind'],
  details: Record<string, unknown> = {},
) {
  const now = deps.clock.now();
  const revoked = await revokeUserSessions(tx, userId, action, now, { exceptSessionId: ctx.actor.sessionId });
  await enqueueNotice(tx, { kind, userId, orgId: null, payload: details }, now);
  await recordAudit(tx, {
    orgId: ctx.actor.orgId,
    actor: ctx.actor,
    action,
    target: { type: 'user', id: userId },
    outcome: 'success',
    meta: ctx.meta,
    details: { ...details, sessions_revoked: revoked },
  });
}

/** Begins TOTP enrolment: a new secret, stored encrypted, shown once. */
export async function startTotpEnrolment(
  deps: IdentityDeps,
  ctx: Ctx,
): Promise<{ secret: string; otpauth_url: string }> {
  const userId = requireUserId(ctx);
  return inPlatform(
    deps.db,
    async (tx) => {
      const u = await tx
        .selectFrom('users')
        .select(['email', 'totp_enabled_at'])
        .where('id', '=', userId)
        .forUpdate()
        .executeTakeFirstOrThrow();
      if (u.totp_enabled_at) throw new DomainError('conflict', 'TOTP is already enabled; remove it first.');
      const secret = deps.totp.generateSecret();
      const { scope, field } = totpScope(userId);
      const enc = await deps.cipher.encrypt(tx, scope, field, secret);
      await tx
        .updateTable('users')
        .set({
          totp_secret_enc: enc,
          totp_enabled_at: null,
          totp_last_step: null,
          updated_at: deps.clock.now(),
        })
        .where('id', '=', userId)
        .execute();
      await recordAudit(tx, {
        orgId: ctx.actor.orgId,
        actor: ctx.actor,
        action: 'mfa.totp_enrolment_started',
        target: { type: 'user', id: userId },
        outcome: 'success',
        meta: ctx.meta,
      });
      return { secret, otpauth_url: deps.totp.uri(secret, u.email) };
    },
    ctx.actor.orgId,
  );
}

/** Confirms TOTP enrolment with a first code; returns the ten recovery codes (shown once). */
export async function confirmTotpEnrolment(
  deps: IdentityDeps,
  ctx: Ctx,
  code: string,
): Promise<{ recovery_codes: string[] }> {
  const userId = requireUserId(ctx);
  const result = await inPlatform(
    deps.db,
    async (tx) => {
      const u = await tx
        .selectFrom('users')
        .select(['totp_secret_enc', 'totp_enabled_at'])
        .where('id', '=', userId)
        .forUpdate()
        .executeTakeFirstOrThrow();
      if (u.totp_enabled_at) throw new DomainError('conflict', 'TOTP is already enabled.');
      if (!u.totp_secret_enc) throw new DomainError('conflict', 'Start TOTP enrolment first.');
      const { scope, field } = totpScope(userId);
      const secret = await deps.cipher.decrypt(tx, scope, field, u.totp_secret_enc);
      const now = deps.clock.now();
      const step = deps.totp.verify(secret, code, now, null);
      if (step === null) return null;
      await tx
        .updateTable('users')
        .set({ totp_enabled_at: now, totp_last_step: step, updated_at: now })
        .where('id', '=', userId)
        .execute();
      const codes = await replaceRecoveryCodes(tx, userId, now);
      // Enrolment lifts the restriction of an "MFA required" login, and counts as MFA.
      await tx
        .updateTable('sessions')
        .set({ restricted: false, mfa: true })
        .where('org_id', '=', ctx.actor.orgId)
        .where('id', '=', ctx.actor.sessionId ?? '')
        .execute();
      await credentialChanged(tx, deps, ctx, userId, 'mfa.totp_enabled', 'credential.mfa_changed', {
        change: 'totp_enabled',
      });
      return { recovery_codes: codes };
    },
    ctx.actor.orgId,
  );
  if (!result) throw new DomainError('validation_failed', 'The code is incorrect.', 'code');
  return result;
}

/** Removes TOTP (a step-up route); recovery codes go too when no second factor remains. */
export async function disableTotp(deps: IdentityDeps, ctx: Ctx): Promise<void> {
  const userId = requireUserId(ctx);
  await inPlatform(
    deps.db,
    async (tx) => {
      const r = await tx
        .updateTable('users')
        .set({
          totp_secret_enc: null,
          totp_enabled_at: null,
          totp_last_step: null,
          updated_at: deps.clock.now(),
        })
        .where('id', '=', userId)
        .where('totp_secret_enc', 'is not', null)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) throw new DomainError('not_found', 'TOTP is not set up.');
      if ((await mfaMethods(tx, userId, false)).length === 0) {
        await tx.deleteFrom('recovery_codes').where('user_id', '=', userId).execute();
      }
      await credentialChanged(tx, deps, ctx, userId, 'mfa.totp_disabled', 'credential.mfa_changed', {
        change: 'totp_disabled',
      });
    },
    ctx.actor.orgId,
  );
}

/** New recovery codes (old ones stop working); needs a second factor to exist. */
export async function regenerateRecoveryCodes(
  deps: IdentityDeps,
  ctx: Ctx,
): Promise<{ recovery_codes: string[] }> {
  const userId = requireUserId(ctx);
  return inPlatform(
    deps.db,
    async (tx) => {
      const u = await tx
        .selectFrom('users')
        .select('totp_enabled_at')
        .where('id', '=', userId)
        .executeTakeFirstOrThrow();
      if ((await mfaMethods(tx, userId, u.totp_enabled_at !== null)).length === 0) {
        throw new DomainError('conflict', 'Set up a second factor first.');
      }
      const codes = await replaceRecoveryCodes(tx, userId, deps.clock.now());
      await credentialChanged(
        tx,
        deps,
        ctx,
        userId,
        'mfa.recovery_codes_regenerated',
        'credential.recovery_codes_regenerated',
      );
      return { recovery_codes: codes };
    },
    ctx.actor.orgId,
  );
}

// ---------------------------------------------------------------------------------------------
// Passkeys (WebAuthn)

export interface PasskeyView {
  id: string;
  object: 'passkey';
  name: string;
  created_at: string;
  last_used_at: string | null;
}

async function newWebauthnChallenge(
  tx: Tx,
  deps: IdentityDeps,
  kind: 'webauthn_register' | 'webauthn_login',
  challenge: string,
  userId: string | null,
  orgId: string | null,
): Promise<string> {
  const id = newId('challenge');
  const now = deps.clock.now();
  await tx
    .insertInto('auth_challenges')
    .values({
      id,
      kind,
      user_id: userId,
      org_id: orgId,
      secret_hash: hashSecret(`${kind}:${challenge}`),
      challenge,
      created_at: now,
      expires_at: new Date(now.getTime() + CHALLENGE_TTL_SECONDS * 1000),
      used_at: null,
    })
    .execute();
  return id;
}

/** Takes a WebAuthn challenge for good: it is spent whether or not the ceremony then succeeds. */
async function spendWebauthnChallenge(
  tx: Tx,
  id: string,
  kind: 'webauthn_register' | 'webauthn_login',
  now: Date,
) {
  const ch = await tx
    .updateTable('auth_challenges')
    .set({ used_at: now })
    .where('id', '=', id)
    .where('kind', '=', kind)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .returning(['user_id', 'org_id', 'challenge'])
    .executeTakeFirst();
  return ch?.challenge ? { userId: ch.user_id, orgId: ch.org_id, challenge: ch.challenge } : null;
}

/** Options for navigator.credentials.create(), with a single-use challenge (5 minutes). */
export async function passkeyRegistrationOptions(deps: IdentityDeps, ctx: Ctx) {
  const userId = requireUserId(ctx);
  return inPlatform(
    deps.db,
    async (tx) => {
      const u = await tx
        .selectFrom('users')
        .select(['email', 'webauthn_user_handle'])
        .where('id', '=', userId)
        .executeTakeFirstOrThrow();
      const existing = await tx
        .selectFrom('webauthn_credentials')
        .select(['id', 'transports'])
        .where('user_id', '=', userId)
        .execute();
      const options = await deps.webauthn.registrationOptions({
        userHandle: u.webauthn_user_handle,
        userName: u.email,
        exclude: existing.map((c) => ({ id: c.id, transports: c.transports })),
      });
      const challengeId = await newWebauthnChallenge(
        tx,
        deps,
        'webauthn_register',
        options.challenge,
        userId,
        ctx.actor.orgId,
      );
      return { challenge_id: challengeId, options };
    },
    ctx.actor.orgId,
  );
}

/** Verifies the authenticator's attestation and stores the passkey. */
export async function registerPasskey(
  deps: IdentityDeps,
  ctx: Ctx,
  input: { challengeId: string; credential: unknown; name: string },
): Promise<PasskeyView> {
  const userId = requireUserId(ctx);
  const now = deps.clock.now();
  const result = await inPlatform(
    deps.db,
    async (tx) => {
      const ch = await spendWebauthnChallenge(tx, input.challengeId, 'webauthn_register', now);
      if (!ch || ch.userId !== userId) return null;
      const verified = await deps.webauthn.verifyRegistration(input.credential, ch.challenge);
      if (!verified) return null;
      const clash = await tx
        .selectFrom('webauthn_credentials')
        .select('id')
        .where('id', '=', verified.id)
        .executeTakeFirst();
      if (clash) throw new DomainError('conflict', 'This passkey is already registered.');
      await tx
        .insertInto('webauthn_credentials')
        .values({
          user_id: userId,
          id: verified.id,
          name: input.name,
          public_key: Buffer.from(verified.publicKey),
          counter: verified.counter,
          transports: verified.transports,
          aaguid: verified.aaguid,
          created_at: now,
          last_used_at: null,
        })
        .execute();
      const u = await tx
        .selectFrom('users')
        .select('totp_enabled_at')
        .where('id', '=', userId)
        .executeTakeFirstOrThrow();
      const codes = await tx
        .selectFrom('recovery_codes')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .where('user_id', '=', userId)
        .executeTakeFirstOrThrow();
      const recovery =
        !u.totp_enabled_at && Number(codes.n) === 0 ? await replaceRecoveryCodes(tx, userId, now) : null;
      await tx
        .updateTable('sessions')
        .set({ restricted: false, mfa: true })
        .where('org_id', '=', ctx.actor.orgId)
        .where('id', '=', ctx.actor.sessionId ?? '')
        .execute();
      await credentialChanged(tx, deps, ctx, userId, 'mfa.passkey_added', 'credential.passkey_added', {
        credential: verified.id.slice(0, 16),
      });
      return {
        view: {
          id: verified.id,
          object: 'passkey' as const,
          name: input.name,
          created_at: now.toISOString(),
          last_used_at: null,
        },
        recovery,
      };
    },
    ctx.actor.orgId,
  );
  if (!result) throw new DomainError('validation_failed', 'The passkey could not be verified.', 'credential');
  return { ...result.view, ...(result.recovery ? { recovery_codes: result.recovery } : {}) };
}

export async function listPasskeys(deps: IdentityDeps, ctx: Ctx): Promise<PasskeyView[]> {
  const userId = requireUserId(ctx);
  const rows = await inPlatform(deps.db, (tx) =>
    tx
      .selectFrom('webauthn_credentials')
      .select(['id', 'name', 'created_at', 'last_used_at'])
      .where('user_id', '=', userId)
      .orderBy('created_at')
      .execute(),
  );
  return rows.map((r) => ({
    id: r.id,
    object: 'passkey',
    name: r.name,
    created_at: r.created_at.toISOString(),
    last_used_at: r.last_used_at?.toISOString() ?? null,
  }));
}

export async function deletePasskey(deps: IdentityDeps, ctx: Ctx, id: string): Promise<void> {
  const userId = requireUserId(ctx);
  await inPlatform(
    deps.db,
    async (tx) => {
      const r = await tx
        .deleteFrom('webauthn_credentials')
        .where('user_id', '=', userId)
        .where('id', '=', id)
        .executeTakeFirst();
      if (Number(r.numDeletedRows) === 0) throw new DomainError('not_found', 'No such passkey.');
      await credentialChanged(tx, deps, ctx, userId, 'mfa.passkey_removed', 'credential.passkey_removed', {
        credential: id.slice(0, 16),
      });
    },
    ctx.actor.orgId,
  );
}

/** Options for navigator.credentials.get(): the user's passkeys after a password, or any (discoverable). */
export async function passkeyLoginOptions(deps: IdentityDeps, input: { mfaToken?: string | undefined }) {
  const now = deps.clock.now();
  return inPlatform(deps.db, async (tx) => {
    let userId: string | null = null;
    let orgId: string | null = null;
    let allow: { id: string; transports: string[] }[] = [];
    if (input.mfaToken) {
      const ch = await takeMfaChallenge(tx, input.mfaToken, now);
      if (!ch) throw new DomainError('invalid_credentials', 'The sign-in has expired; start again.');
      userId = ch.user_id;
      orgId = ch.org_id;
      const creds = await tx
        .selectFrom('webauthn_credentials')
        .select(['id', 'transports'])
        .where('user_id', '=', userId)
        .execute();
      allow = creds.map((c) => ({ id: c.id, transports: c.transports }));
    }
    const options = await deps.webauthn.authenticationOptions(allow);
    const challengeId = await newWebauthnChallenge(
      tx,
      deps,
      'webauthn_login',
      options.challenge,
      userId,
      orgId,
    );
    return { challenge_id: challengeId, options };
  });
}

/**
 * Signs in with a passkey: as the second step after a password (mfa_token), or on its own
 * (a user-verified passkey is two factors in one). Counts as MFA.
 */
export async function loginWithPasskey(
  deps: IdentityDeps,
  input: {
    challengeId: string;
    credential: unknown;
    mfaToken?: string | undefined;
    org?: string | undefined;
  },
  meta: RequestMeta,
): Promise<Extract<LoginResult, { kind: 'session' }>> {
  await assertIpAllowed(deps, meta);
  const now = deps.clock.now();
  const credentialId =
    typeof input.credential === 'object' && input.credential !== null && 'id' in input.credential
      ? String((input.credential as { id: unknown }).id)
      : '';
  const result = await inPlatform(deps.db, async (tx) => {
    const fail = (failed: string, userId: string | null = null, orgId: string | null = null) => ({
      failed,
      userId,
      orgId,
    });
    const ch = await spendWebauthnChallenge(tx, input.challengeId, 'webauthn_login', now);
    if (!ch) return fail('challenge_invalid');
    const cred = await tx
      .selectFrom('webauthn_credentials')
      .selectAll()
      .where('id', '=', credentialId)
      .executeTakeFirst();
    if (!cred || (ch.userId && ch.userId !== cred.user_id))
      return fail('unknown_credential', ch.userId, ch.orgId);
    let mfaChallenge: MfaChallenge | null = null;
    if (input.mfaToken) {
      mfaChallenge = await takeMfaChallenge(tx, input.mfaToken, now);
      if (!mfaChallenge || mfaChallenge.user_id !== cred.user_id)
        return fail('challenge_invalid', cred.user_id);
    }
    const memberships = await tx
      .selectFrom('memberships')
      .select('org_id')
      .where('user_id', '=', cred.user_id)
      .where('disabled_at', 'is', null)
      .orderBy('created_at')
      .execute();
    const orgId =
      mfaChallenge?.org_id ??
      (input.org ? memberships.find((m) => m.org_id === input.org)?.org_id : memberships[0]?.org_id);
    if (!orgId) return fail('no_membership', cred.user_id);
    await enterOrg(tx, orgId);
    const user = await activeUser(tx, cred.user_id, orgId, now);
    if (!user) return fail('account_unavailable', cred.user_id, orgId);
    const verified = await deps.webauthn.verifyAuthentication(input.credential, ch.challenge, {
      id: cred.id,
      publicKey: new Uint8Array(cred.public_key),
      counter: Number(cred.counter),
      transports: cred.transports,
    });
    if (!verified) return fail('bad_assertion', cred.user_id, orgId);
    await tx
      .updateTable('webauthn_credentials')
      .set({ counter: verified.newCounter, last_used_at: now })
      .where('user_id', '=', cred.user_id)
      .where('id', '=', cred.id)
      .execute();
    if (mfaChallenge)
      await tx
        .updateTable('auth_challenges')
        .set({ used_at: now })
        .where('id', '=', mfaChallenge.id)
        .execute();
    await tx
      .updateTable('users')
      .set({ failed_logins: 0, locked_until: null })
      .where('id', '=', user.id)
      .execute();
    const session = await issueSession(tx, deps, {
      userId: user.id,
      orgId,
      mfa: true,
      restricted: false,
      meta,
    });
    await recordAudit(tx, {
      orgId,
      actor: { kind: 'user', id: user.id, sessionId: session.id },
      action: 'auth.login',
      target: { type: 'user', id: user.id },
      outcome: 'success',
      meta,
      details: { mfa: true, method: 'webauthn', with_password: mfaChallenge !== null },
    });
    return {
      kind: 'session' as const,
      session,
      user: { id: user.id, object: 'user' as const, email: user.email },
      orgId,
      mfaEnrolmentRequired: false,
    };
  });
  if (isFailure(result)) {
    await refuseSecondFactor(deps, result, { lockOn: 'bad_assertion', action: 'auth.passkey_failed' }, meta);
    throw new DomainError('invalid_credentials', 'The passkey could not be verified.');
  }
  return result;
}
