/**
 * Session lifetime rules (DESIGN.md §5): an idle timeout and an absolute timeout, with org
 * settings that may only shorten what the deployment allows; step-up freshness for
 * sensitive actions. Pure: time is passed in.
 */
export const DEFAULT_IDLE_MINUTES = 15;
export const DEFAULT_ABSOLUTE_HOURS = 12;
/** A sensitive action needs an authentication at most this old. */
export const STEP_UP_MAX_AGE_SECONDS = 5 * 60;
/** Lifetime of single-use login, MFA and WebAuthn challenges. */
export const CHALLENGE_TTL_SECONDS = 5 * 60;

export interface SessionTimeouts {
  idleSeconds: number;
  absoluteSeconds: number;
}

/**
 * The timeouts a new session gets: the deployment's limits (config), shortened by the org's
 * own settings when present. An org setting can never lengthen a session past the deployment
 * limit; only the operator's explicit configuration can.
 */
export function effectiveTimeouts(
  deployment: { idleMinutes: number; absoluteHours: number },
  org: { idleMinutes?: number | null; absoluteHours?: number | null } = {},
): SessionTimeouts {
  const idle = Math.min(deployment.idleMinutes, positive(org.idleMinutes) ?? deployment.idleMinutes);
  const abs = Math.min(deployment.absoluteHours, positive(org.absoluteHours) ?? deployment.absoluteHours);
  return { idleSeconds: Math.round(idle * 60), absoluteSeconds: Math.round(abs * 3600) };
}

function positive(v: number | null | undefined): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : undefined;
}

export interface SessionTimes {
  createdAt: Date;
  lastSeenAt: Date;
  expiresAt: Date;
  idleSeconds: number;
  revokedAt: Date | null;
}

export type SessionState = 'active' | 'revoked' | 'idle_expired' | 'absolute_expired';

/** Whether a session may still be used at `now`. */
export function sessionState(s: SessionTimes, now: Date): SessionState {
  if (s.revokedAt !== null) return 'revoked';
  if (now.getTime() >= s.expiresAt.getTime()) return 'absolute_expired';
  if (now.getTime() >= s.lastSeenAt.getTime() + s.idleSeconds * 1000) return 'idle_expired';
  return 'active';
}

/** True when the last authentication is recent enough for a sensitive action. */
export function isStepUpFresh(authenticatedAt: Date, now: Date): boolean {
  const age = now.getTime() - authenticatedAt.getTime();
  return age >= 0 && age <= STEP_UP_MAX_AGE_SECONDS * 1000;
}
