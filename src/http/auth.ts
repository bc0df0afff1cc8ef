import type { FastifyReply, FastifyRequest } from 'fastify';
import { API_KEY_PREFIX, authenticateApiKey } from '../app/api-keys.js';
import {
  authenticateSession,
  csrfFor,
  type IdentityDeps,
  type IssuedSession,
  safeEqual,
} from '../app/sessions.js';
import { DomainError } from '../domain/errors.js';
import type { Actor } from '../domain/permissions.js';
import { isStepUpFresh } from '../domain/session-policy.js';

/** The session cookie of DESIGN.md §5 (host-only, secure, not readable by scripts). */
export const SESSION_COOKIE = '__Host-bv_session';
/** The double-submit CSRF cookie of DESIGN.md §9 (readable by the SPA, sent back as x-csrf-token). */
export const CSRF_COOKIE = 'bv_csrf';
export const CSRF_HEADER = 'x-csrf-token';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Routes a session that must first enrol a second factor ("MFA required" org setting) may
 * still use: who am I, enrolment itself, and sign-out.
 */
const RESTRICTED_ALLOWED = [
  /^\/v1\/me$/,
  /^\/v1\/me\/mfa\//,
  /^\/v1\/me\/passkeys/,
  /^\/v1\/auth\/logout$/,
  /^\/v1\/auth\/step_up$/,
];

/** Reads one cookie from the Cookie header (first occurrence wins; no decoding tricks). */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Set-Cookie values that establish a session. */
export function sessionCookies(
  session: Pick<IssuedSession, 'token' | 'csrf' | 'expiresAt'>,
  now: Date,
): string[] {
  const maxAge = Math.max(0, Math.floor((session.expiresAt.getTime() - now.getTime()) / 1000));
  return [
    `${SESSION_COOKIE}=${session.token}; Path=/; Max-Age=${maxAge}; Secure; HttpOnly; SameSite=Strict`,
    `${CSRF_COOKIE}=${session.csrf}; Path=/; Max-Age=${maxAge}; Secure; SameSite=Strict`,
  ];
}

/** Set-Cookie values that clear the session in the browser. */
export function clearedCookies(): string[] {
  return [
    `${SESSION_COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict`,
    `${CSRF_COOKIE}=; Path=/; Max-Age=0; Secure; SameSite=Strict`,
  ];
}

export function setSessionCookies(reply: FastifyReply, session: IssuedSession, now: Date): void {
  reply.header('set-cookie', sessionCookies(session, now));
}

/**
 * The authenticator of buildApp: `Authorization: Bearer bv_live_…` (API key, no CSRF) or the
 * session cookie. For cookie-authenticated writes it enforces the double-submit CSRF check
 * (header = cookie = the value derived from the session token); for routes marked
 * `stepUp` it demands an authentication within the last 5 minutes; a session that still has
 * to enrol MFA may reach only the enrolment routes. Returns null for missing or bad
 * credentials (401); throws 403 for CSRF, step-up and enrolment failures.
 */
export function createAuthenticator(deps: IdentityDeps): (req: FastifyRequest) => Promise<Actor | null> {
  return async (req) => {
    const authz = req.headers.authorization;
    if (authz !== undefined) {
      const m = /^Bearer\s+(\S+)$/i.exec(authz);
      if (!m?.[1]?.startsWith(API_KEY_PREFIX)) return null;
      return authenticateApiKey(deps, m[1]);
    }
    const cookieHeader = req.headers.cookie;
    const token = readCookie(cookieHeader, SESSION_COOKIE);
    if (!token) return null;
    const unsafe = !SAFE_METHODS.has(req.method);
    const meta = {
      requestId: req.id,
      ip: req.ip,
      userAgent: req.headers['user-agent'] ?? null,
      unsafeMethod: unsafe,
    };
    const s = await authenticateSession(deps, token, meta);
    if (!s) return null;
    if (unsafe) {
      const header = req.headers[CSRF_HEADER];
      const cookie = readCookie(cookieHeader, CSRF_COOKIE);
      const expected = csrfFor(token);
      if (
        typeof header !== 'string' ||
        !cookie ||
        !safeEqual(header, cookie) ||
        !safeEqual(header, expected)
      ) {
        throw new DomainError(
          'csrf_failed',
          'Missing or wrong CSRF token: send the bv_csrf cookie value in x-csrf-token.',
        );
      }
    }
    const url = req.routeOptions.url ?? '';
    if (s.restricted && !RESTRICTED_ALLOWED.some((r) => r.test(url))) {
      throw new DomainError(
        'mfa_enrolment_required',
        'Your organisation requires a second factor: set up TOTP or a passkey first.',
      );
    }
    const auth = req.routeOptions.config?.auth;
    if (auth && 'permission' in auth && auth.stepUp && !isStepUpFresh(s.authenticatedAt, deps.clock.now())) {
      throw new DomainError(
        'step_up_required',
        'Confirm it is you: re-authenticate (POST /v1/auth/step_up) and retry.',
      );
    }
    return s.actor;
  };
}
