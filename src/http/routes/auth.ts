import { z } from 'zod';
import {
  changePassword,
  type LoginResult,
  login,
  loginWithPasskey,
  passkeyLoginOptions,
  requestPasswordReset,
  resetPassword,
  stepUp,
  verifyMfa,
} from '../../app/auth.js';
import type { RequestMeta } from '../../app/context.js';
import { acceptInvitation } from '../../app/invitations.js';
import { type IdentityDeps, logout, replacePresentedSession } from '../../app/sessions.js';
import { clearedCookies, readCookie, SESSION_COOKIE, setSessionCookies } from '../auth.js';
import { requireCtx } from '../ctx.js';
import type { App, FastifyReply, FastifyRequest } from '../route.js';

const Email = z.string().min(1).max(254);
/** A password as typed: bounded so nobody can make argon2 hash megabytes; the policy checks the rest. */
const Password = z.string().min(1).max(1024);
const Token = z.string().min(16).max(200);
const OrgId = z.string().regex(/^org_[0-9a-z]{32}$/);
const Code = z.string().regex(/^\d{6}$/, 'a 6-digit code');
const RecoveryCode = z.string().min(8).max(40);
/** The browser's PublicKeyCredential JSON; @simplewebauthn/server checks it in depth. */
const Credential = z
  .object({
    id: z.string().min(1).max(1400),
    rawId: z.string().min(1).max(1400),
    type: z.literal('public-key'),
    response: z.record(z.string(), z.unknown()),
    clientExtensionResults: z.record(z.string(), z.unknown()).default({}),
    authenticatorAttachment: z.string().max(40).optional(),
  })
  .passthrough();

export function requestMeta(req: FastifyRequest): RequestMeta {
  return { requestId: req.id, ip: req.ip, userAgent: req.headers['user-agent'] ?? null };
}

async function sessionReply(
  deps: IdentityDeps,
  req: FastifyRequest,
  reply: FastifyReply,
  r: Extract<LoginResult, { kind: 'session' }>,
) {
  await replacePresentedSession(deps, readCookie(req.headers.cookie, SESSION_COOKIE), requestMeta(req));
  setSessionCookies(reply, r.session, deps.clock.now());
  return {
    mfa_required: false as const,
    mfa_enrolment_required: r.mfaEnrolmentRequired,
    user: r.user,
    org: r.orgId,
    expires_at: r.session.expiresAt.toISOString(),
  };
}

/** Sign-in, second factor, sign-out, step-up, passwords, invitations. */
export function authRoutes(app: App, deps: IdentityDeps): void {
  app.post(
    '/v1/auth/login',
    {
      config: { auth: { public: true } },
      schema: { body: z.object({ email: Email, password: Password, org: OrgId.optional() }) },
    },
    async (req, reply) => {
      const r = await login(deps, req.body, requestMeta(req));
      if (r.kind === 'mfa') return { mfa_required: true, mfa_token: r.mfaToken, methods: r.methods };
      return sessionReply(deps, req, reply, r);
    },
  );

  app.post(
    '/v1/auth/mfa',
    {
      config: { auth: { public: true } },
      schema: {
        body: z
          .object({ mfa_token: Token, code: Code.optional(), recovery_code: RecoveryCode.optional() })
          .refine((b) => (b.code === undefined) !== (b.recovery_code === undefined), {
            message: 'give exactly one of code or recovery_code',
          }),
      },
    },
    async (req, reply) => {
      const r = await verifyMfa(
        deps,
        { mfaToken: req.body.mfa_token, code: req.body.code, recoveryCode: req.body.recovery_code },
        requestMeta(req),
      );
      return sessionReply(deps, req, reply, r);
    },
  );

  app.post(
    '/v1/auth/webauthn/options',
    { config: { auth: { public: true } }, schema: { body: z.object({ mfa_token: Token.optional() }) } },
    async (req) => passkeyLoginOptions(deps, { mfaToken: req.body.mfa_token }),
  );

  app.post(
    '/v1/auth/webauthn/verify',
    {
      config: { auth: { public: true } },
      schema: {
        body: z.object({
          challenge_id: z.string().regex(/^chl_[0-9a-z]{32}$/),
          credential: Credential,
          mfa_token: Token.optional(),
          org: OrgId.optional(),
        }),
      },
    },
    async (req, reply) => {
      const r = await loginWithPasskey(
        deps,
        {
          challengeId: req.body.challenge_id,
          credential: req.body.credential,
          mfaToken: req.body.mfa_token,
          org: req.body.org,
        },
        requestMeta(req),
      );
      return sessionReply(deps, req, reply, r);
    },
  );

  app.post('/v1/auth/logout', { config: { auth: { permission: 'org:read' } } }, async (req, reply) => {
    await logout(deps, requireCtx(req));
    reply.header('set-cookie', clearedCookies());
    return { logged_out: true };
  });

  app.post(
    '/v1/auth/step_up',
    {
      config: { auth: { permission: 'org:read' } },
      schema: {
        body: z
          .object({ password: Password.optional(), code: Code.optional() })
          .refine((b) => (b.password === undefined) !== (b.code === undefined), {
            message: 'give exactly one of password or code',
          }),
      },
    },
    async (req, reply) => {
      const s = await stepUp(deps, requireCtx(req), req.body);
      setSessionCookies(reply, s, deps.clock.now());
      return { stepped_up: true, expires_at: s.expiresAt.toISOString() };
    },
  );

  app.post(
    '/v1/auth/password',
    {
      config: { auth: { permission: 'org:read' } },
      schema: { body: z.object({ current_password: Password, new_password: Password }) },
    },
    async (req) => {
      await changePassword(deps, requireCtx(req), {
        currentPassword: req.body.current_password,
        newPassword: req.body.new_password,
      });
      return { changed: true };
    },
  );

  app.post(
    '/v1/auth/password_reset',
    { config: { auth: { public: true } }, schema: { body: z.object({ email: Email }) } },
    async (req, reply) => {
      await requestPasswordReset(deps, req.body, requestMeta(req));
      return reply.code(202).send({ requested: true });
    },
  );

  app.post(
    '/v1/auth/password_reset/complete',
    {
      config: { auth: { public: true } },
      schema: { body: z.object({ token: Token, new_password: Password }) },
    },
    async (req) => {
      await resetPassword(
        deps,
        { token: req.body.token, newPassword: req.body.new_password },
        requestMeta(req),
      );
      return { reset: true, next: 'sign in again (your second factor is still required)' };
    },
  );

  app.post(
    '/v1/auth/invitations/accept',
    { config: { auth: { public: true } }, schema: { body: z.object({ token: Token, password: Password }) } },
    async (req) => acceptInvitation(deps, req.body, requestMeta(req)),
  );
}
