import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { commonPasswords } from '../../src/adapters/crypto/passwords.js';
import {
  afterFailure,
  afterSuccess,
  IP_FAILURE_LIMIT,
  ipAfterFailure,
  ipBlocked,
  isLocked,
  LOCKOUT_THRESHOLD,
  type LockState,
} from '../../src/domain/auth-lockout.js';
import { canAssignRole, invalidScopes, maskPii } from '../../src/domain/auth-policy.js';
import { checkPassword } from '../../src/domain/password-policy.js';
import type { Actor } from '../../src/domain/permissions.js';
import { effectiveTimeouts, isStepUpFresh, sessionState } from '../../src/domain/session-policy.js';

const list = commonPasswords();
const isCommon = (p: string) => list.has(p);
const MIN = 60_000;

describe('password policy', () => {
  it('bundles at least the 10,000 most common passwords', () => {
    assert.ok(list.size >= 10_000, `${list.size}`);
    for (const p of ['123456', 'password', 'qwerty', 'iloveyou', 'dragon']) assert.ok(list.has(p), p);
  });

  it('takes 12 to 128 characters, counted as code points, with no composition rules', () => {
    assert.equal(
      checkPassword({ password: `${'a'.repeat(3)}bcdefghij`, isCommon }),
      'too_short'.length ? null : null,
    );
    assert.equal(checkPassword({ password: 'short pass', isCommon }), 'too_short');
    assert.equal(checkPassword({ password: 'lowercase only words here', isCommon }), null);
    assert.equal(checkPassword({ password: '🔒🔑🗝️🔐🔓🛡️⚔️🏰🐉🧙', isCommon }), null);
    assert.equal(checkPassword({ password: '🔒🔑🗝🔐🔓', isCommon }), 'too_short');
    assert.equal(checkPassword({ password: `${'x1'.repeat(64)}y`, isCommon }), 'too_long');
    assert.equal(checkPassword({ password: `unusual phrase ${'z'.repeat(100)}`, isCommon }), null);
  });

  it('rejects common and breached passwords, also with decorations or repeated', () => {
    for (const p of [
      'qazwsxedcrfv',
      '1q2w3e4r5t6y',
      'Password123456',
      'password2024!!',
      'dragondragondragon',
      'aaaaaaaaaaaaaa',
      'abababababababab',
    ]) {
      assert.notEqual(checkPassword({ password: p, isCommon }), null, p);
    }
  });

  it('rejects passwords built from the user or service', () => {
    assert.equal(
      checkPassword({
        password: 'jonathan.smith@corp.test',
        isCommon,
        context: ['jonathan.smith@corp.test', 'jonathan.smith'],
      }),
      'contextual',
    );
    assert.equal(
      checkPassword({ password: 'billvault2026!', isCommon, context: ['billvault'] }),
      'contextual',
    );
  });
});

describe('lockout rules', () => {
  const t0 = new Date('2026-01-01T00:00:00Z');
  it('locks after 10 consecutive failures for 30 minutes, then starts afresh', () => {
    let s = afterSuccess();
    for (let i = 1; i < LOCKOUT_THRESHOLD; i++) {
      s = afterFailure(s, t0);
      assert.equal(isLocked(s, t0), false, `after ${i}`);
    }
    s = afterFailure(s, t0);
    assert.equal(isLocked(s, t0), true);
    assert.equal(isLocked(s, new Date(t0.getTime() + 29 * MIN)), true);
    const later = new Date(t0.getTime() + 30 * MIN);
    assert.equal(isLocked(s, later), false);
    s = afterFailure(s, later);
    assert.equal(s.failedAttempts, 1);
    assert.equal(isLocked(s, later), false);
  });

  it('attempts while locked neither count nor extend the lock', () => {
    let s: LockState = { failedAttempts: 10, lockedUntil: new Date(t0.getTime() + 30 * MIN) };
    s = afterFailure(s, new Date(t0.getTime() + 10 * MIN));
    assert.equal(s.lockedUntil?.getTime(), t0.getTime() + 30 * MIN);
  });

  it('blocks an IP after its failure budget within the window only', () => {
    let w = null as ReturnType<typeof ipAfterFailure> | null;
    for (let i = 0; i < IP_FAILURE_LIMIT; i++) w = ipAfterFailure(w, t0);
    assert.equal(ipBlocked(w, t0), true);
    assert.equal(ipBlocked(w, new Date(t0.getTime() + 15 * MIN)), false);
    assert.equal(ipAfterFailure(w, new Date(t0.getTime() + 16 * MIN)).failures, 1);
  });
});

describe('session rules', () => {
  const t0 = new Date('2026-01-01T00:00:00Z');
  it('org settings only shorten the deployment limits', () => {
    assert.deepEqual(effectiveTimeouts({ idleMinutes: 15, absoluteHours: 12 }), {
      idleSeconds: 900,
      absoluteSeconds: 43200,
    });
    assert.deepEqual(
      effectiveTimeouts({ idleMinutes: 15, absoluteHours: 12 }, { idleMinutes: 5, absoluteHours: 48 }),
      {
        idleSeconds: 300,
        absoluteSeconds: 43200,
      },
    );
    assert.deepEqual(
      effectiveTimeouts({ idleMinutes: 60, absoluteHours: 24 }, { idleMinutes: -1, absoluteHours: null }),
      {
        idleSeconds: 3600,
        absoluteSeconds: 86400,
      },
    );
  });

  it('classifies idle, absolute and revoked sessions', () => {
    const s = {
      createdAt: t0,
      lastSeenAt: t0,
      expiresAt: new Date(t0.getTime() + 12 * 60 * MIN),
      idleSeconds: 900,
      revokedAt: null,
    };
    assert.equal(sessionState(s, new Date(t0.getTime() + 14 * MIN)), 'active');
    assert.equal(sessionState(s, new Date(t0.getTime() + 15 * MIN)), 'idle_expired');
    assert.equal(
      sessionState(
        { ...s, lastSeenAt: new Date(t0.getTime() + 12 * 60 * MIN - MIN) },
        new Date(t0.getTime() + 12 * 60 * MIN),
      ),
      'absolute_expired',
    );
    assert.equal(sessionState({ ...s, revokedAt: t0 }, t0), 'revoked');
  });

  it('step-up is fresh for 5 minutes', () => {
    assert.equal(isStepUpFresh(t0, new Date(t0.getTime() + 5 * MIN)), true);
    assert.equal(isStepUpFresh(t0, new Date(t0.getTime() + 5 * MIN + 1)), false);
  });
});

describe('identity policy', () => {
  const actor = (role: Actor['role']): Actor => ({
    kind: 'user',
    id: 'usr_1',
    userId: 'usr_1',
    orgId: 'org_a',
    role,
  });
  it('only an owner hands out or takes away the owner role', () => {
    assert.equal(canAssignRole(actor('admin'), 'viewer', 'accountant'), true);
    assert.equal(canAssignRole(actor('admin'), 'viewer', 'owner'), false);
    assert.equal(canAssignRole(actor('admin'), 'owner', 'viewer'), false);
    assert.equal(canAssignRole(actor('owner'), 'owner', 'viewer'), true);
    assert.equal(canAssignRole(actor('finance_manager'), 'viewer', 'accountant'), false);
  });
  it('API key scopes never widen the creator role', () => {
    assert.deepEqual(invalidScopes('accountant', ['invoices:read', 'refunds:write']), ['refunds:write']);
    assert.deepEqual(invalidScopes('owner', ['keys:export']), []);
  });
  it('masks PII for roles without customers:read_pii', () => {
    assert.equal(maskPii(actor('viewer'), 'ann@example.test'), 'a***@***');
    assert.equal(maskPii(actor('auditor'), 'Ann Smith'), 'A***');
    assert.equal(maskPii(actor('accountant'), 'Ann Smith'), 'Ann Smith');
  });
});
