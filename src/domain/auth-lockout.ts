/**
 * Login throttling rules (DESIGN.md §5): 10 consecutive failures lock an account for 30
 * minutes; a per-IP budget bounds guessing across accounts. Pure: time is passed in.
 */
export const LOCKOUT_THRESHOLD = 10;
export const LOCKOUT_MINUTES = 30;
/** Failed attempts one IP address may make inside the window before it is refused (429). */
export const IP_FAILURE_LIMIT = 50;
export const IP_WINDOW_MINUTES = 15;

export interface LockState {
  failedAttempts: number;
  lockedUntil: Date | null;
}

/** True while the account is locked at `now`. */
export function isLocked(state: LockState, now: Date): boolean {
  return state.lockedUntil !== null && state.lockedUntil.getTime() > now.getTime();
}

/** The state after one more failure at `now`; an expired lock starts a fresh count. */
export function afterFailure(state: LockState, now: Date): LockState {
  if (isLocked(state, now)) return state; // attempts while locked neither extend nor count
  const expired = state.lockedUntil !== null;
  const failedAttempts = (expired ? 0 : state.failedAttempts) + 1;
  if (failedAttempts >= LOCKOUT_THRESHOLD) {
    return { failedAttempts, lockedUntil: new Date(now.getTime() + LOCKOUT_MINUTES * 60_000) };
  }
  return { failedAttempts, lockedUntil: null };
}

/** The state after a successful authentication. */
export function afterSuccess(): LockState {
  return { failedAttempts: 0, lockedUntil: null };
}

export interface IpWindow {
  failures: number;
  windowStartedAt: Date;
}

/** True when this IP has used up its failure budget in the current window. */
export function ipBlocked(window: IpWindow | null, now: Date): boolean {
  if (!window) return false;
  if (now.getTime() - window.windowStartedAt.getTime() >= IP_WINDOW_MINUTES * 60_000) return false;
  return window.failures >= IP_FAILURE_LIMIT;
}

/** The IP window after one more failure at `now`. */
export function ipAfterFailure(window: IpWindow | null, now: Date): IpWindow {
  if (!window || now.getTime() - window.windowStartedAt.getTime() >= IP_WINDOW_MINUTES * 60_000) {
    return { failures: 1, windowStartedAt: now };
  }
  return { failures: window.failures + 1, windowStartedAt: window.windowStartedAt };
}
