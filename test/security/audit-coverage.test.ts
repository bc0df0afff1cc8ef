/**
 * Audit coverage: a scripted session calls EVERY route of `app.routeTable` with realistic,
 * distinctive PII and real secrets, then checks the audit trail against the invariants of
 * DESIGN.md §5 (Audit trail):
 *   - every write that succeeds (POST/PUT/PATCH/DELETE, 2xx) wrote an audit event with the
 *     same request id, with the action and target the script names;
 *   - every response that carries decrypted PII (any seeded value in the body) wrote a read
 *     event with the same request id;
 *   - every 403 wrote a `denied` event with the same request id (each route is called once more
 *     by a role without its permission);
 *   - logins (success, failure, lockout), MFA changes, session revocation, role changes and API
 *     key create/use/revoke are audited with the right actor;
 *   - NO audit row, in any column, holds any seeded PII or secret, in clear, base64, base64url
 *     or hex.
 *
 * The routes come from `app.routeTable`: a route without an entry in SCRIPT fails the first
 * test. TO ADD A ROUTE, add one entry to SCRIPT, keyed "METHOD /url" exactly as registered:
 *
 *   'POST /v1/things/:id/frob': {
 *     status: 200,                      // what the scripted call (as the org owner) gets
 *     audit: 'thing.frobbed',           // action it must write (string or RegExp); null only
 *                                       // for reads that return no PII
 *     target: 'url',                    // optional: the event's target id is the URL's :id
 *                                       // ('response': the response body's id)
 *     build: async (s) => ({ method: 'POST', url: `/v1/things/${await thing(s)}/frob`,
 *                            payload: { note: PII.notes } }),
 *   },
 *
 * `build` runs as the org owner (a fresh session with a fresh step-up per call) unless `as`
 * says otherwise ('anonymous', or 'api_key'); put seeded PII (the PII object) into payloads
 * wherever the route takes free text, so the leak check below means something. Entries run in
 * the order written (the MFA entries depend on it).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { base32Decode, hotp, totpStep } from '../../src/adapters/crypto/totp.js';
import { signatureHeader } from '../../src/adapters/gateway/stripe.js';
import { createOrg } from '../../src/app/orgs.js';
import { type IdentityDeps, inPlatform, issueSession } from '../../src/app/sessions.js';
import { insertMembership, insertUser } from '../../src/app/users.js';
import { newId } from '../../src/domain/ids.js';
import { type Actor, can, ROLES, type Role } from '../../src/domain/permissions.js';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { cookiesFrom, goodPassword, MINUTE, TestClock, testIdentity } from '../helpers/identity.js';

interface Req {
  method: string;
  url: string;
  payload?: unknown;
  headers?: Record<string, string>;
}
interface Session {
  userId: string;
  cookie: string;
  csrf: string;
}
interface Step {
  status: number;
  audit: string | RegExp | null;
  target?: 'url' | 'response';
  as?: 'owner' | 'anonymous' | 'api_key';
  /** A successful POST that changes nothing worth an event must say why (reviewed exception). */
  noAuditBecause?: string;
  build(s: Scene): Promise<Req> | Req;
}
interface Scene {
  /** The org owner's current password (the password-change step moves it). */
  password: string;
  totpSecret?: string;
}
interface AuditRow {
  action: string;
  outcome: string;
  target_type: string | null;
  target_id: string | null;
  actor_type: string;
  actor_id: string | null;
}

/** Distinctive PII that must never reach the audit trail. */
const PII = {
  name: 'Zebulon Quartermaine-Fitzwilliam',
  legal_name: 'Quartermaine Fitzwilliam Holdings Ltd',
  email: 'zebulon.qfitz@pii-example.org',
  cc_email: 'accounts.qfitz@pii-example.org',
  phone: '+44 20 7946 0958',
  street: 'Flat 9, 221C Wistful Vista Lane',
  city: 'Lower Slaughterbridge',
  tax_id: 'GB987654321',
  notes: 'Allergic to walnuts; prefers calls after six',
  invoice_notes: 'Deliver through the blue gate behind the bakery',
  payment_reference: 'REMIT-ZQF-553117',
  card_token: 'tok_zqf_visa_8842',
  refund_reason: 'Zebulon asked for a goodwill gesture',
  credit_reason: 'Zebulon disputed the second line',
  invitee: 'ophelia.invitee@pii-example.org',
  break_glass_reason: 'Ophelia is on call for the outage',
  hold_reason: 'Litigation hold: Quillfeather v. Marchbanks, case 77-QX',
};

let t: TestDatabase;
let clock: TestClock;
let deps: IdentityDeps;
let app: Awaited<ReturnType<typeof buildTestApp>>;
let org = '';
let otherOrg = '';
let ownerId = '';
let apiKey = '';
let seq = 0;
const scene: Scene = { password: goodPassword('coverage-owner') };
/** Seeded secret values (passwords, tokens, TOTP secret, codes, API keys) → what they are. */
const secrets = new Map<string, string>();
const failures: string[] = [];
const results: { key: string; rid: string; status: number; body: string; method: string }[] = [];

const secret = (what: string, value: string | undefined) => {
  assert.ok(value && value.length >= 6, `${what} missing`);
  secrets.set(value, what);
};

async function member(o: string, role: Role, email = `m${++seq}.${o.slice(4, 10)}@staff.example`) {
  const hash = await deps.passwords.hash(scene.password);
  return inPlatform(
    deps.db,
    async (tx) => {
      const id = await insertUser(tx, { email, passwordHash: hash }, deps.clock.now());
      await insertMembership(tx, o, id, role, deps.clock.now());
      return id;
    },
    o,
  );
}

async function sessionFor(userId: string, o = org): Promise<Session> {
  const s = await inPlatform(
    deps.db,
    (tx) => issueSession(tx, deps, { userId, orgId: o, mfa: true, restricted: false, meta: {} }),
    o,
  );
  secret('session token', s.token);
  return { userId, cookie: `__Host-bv_session=${s.token}; bv_csrf=${s.csrf}`, csrf: s.csrf };
}

async function send(who: Session | 'anonymous' | { bearer: string }, req: Req) {
  const headers: Record<string, string> = { 'user-agent': 'audit-coverage', ...req.headers };
  if (who !== 'anonymous' && 'cookie' in who) {
    headers.cookie = who.cookie;
    headers['x-csrf-token'] = who.csrf;
  } else if (who !== 'anonymous') headers.authorization = `Bearer ${who.bearer}`;
  return app.inject({
    method: req.method as 'GET',
    url: req.url,
    headers,
    ...(req.payload !== undefined ? { payload: req.payload as object } : {}),
  });
}

/** Creates a record through the API as the owner (a fixture, not the call under test). */
async function create(url: string, payload: unknown, o = org): Promise<string> {
  const owner = o === org ? await sessionFor(ownerId) : await sessionFor(await member(o, 'owner'), o);
  const r = await send(owner, { method: 'POST', url, payload });
  assert.ok(r.statusCode < 300, `fixture ${url}: ${r.statusCode} ${r.body}`);
  return r.json().id;
}
async function ownerCall(req: Req) {
  const r = await send(await sessionFor(ownerId), req);
  assert.ok(r.statusCode < 300, `fixture ${req.url}: ${r.statusCode} ${r.body}`);
  return r.json();
}

const customerPayload = () => ({
  name: PII.name,
  legal_name: PII.legal_name,
  email: PII.email,
  cc_emails: [PII.cc_email],
  phone: PII.phone,
  address: { line1: PII.street, city: PII.city, postal_code: 'SL1 9ZZ', country: 'GB' },
  tax_id: PII.tax_id,
  notes: PII.notes,
  currency: 'EUR',
});
const customer = () => create('/v1/customers', customerPayload());
const taxRate = () =>
  create('/v1/tax_rates', { name: `VAT ${++seq}`, percentage: '20.0', inclusive: false, category: 'S' });
const product = () =>
  create('/v1/products', { name: `Product ${++seq}`, unit_amount: 1000, currency: 'EUR' });
const invoice = async (customerId?: string) =>
  create('/v1/invoices', {
    customer: customerId ?? (await customer()),
    currency: 'EUR',
    notes: PII.invoice_notes,
    lines: [{ description: 'Consulting', quantity: '1', unit_amount: 1000 }],
  });
async function openInvoice(customerId?: string) {
  const id = await invoice(customerId);
  await ownerCall({ method: 'POST', url: `/v1/invoices/${id}/finalize` });
  return id;
}
const quote = async () =>
  create('/v1/quotes', {
    customer: await customer(),
    currency: 'EUR',
    lines: [{ description: 'Offer', quantity: '1', unit_amount: 900 }],
  });
async function sentQuote() {
  const id = await quote();
  await ownerCall({ method: 'POST', url: `/v1/quotes/${id}/send` });
  return id;
}
const payment = async (amount = 1000, customerId?: string, inv?: string) =>
  create('/v1/payments', {
    customer: customerId ?? (await customer()),
    amount,
    currency: 'EUR',
    method: 'card',
    reference: PII.payment_reference,
    card: { gateway_token: PII.card_token, brand: 'visa', last4: '4242', exp_month: 12, exp_year: 2031 },
    ...(inv ? { allocations: [{ invoice: inv, amount }] } : {}),
  });
const pendingRefund = async () =>
  create('/v1/refunds', { payment: await payment(2_000_000), amount: 1_500_000, reason: PII.refund_reason });
const staff = (role: Role = 'viewer') => member(org, role);

/**
 * A webhook URL on a public IP literal (no DNS) whose path carries a seeded token. The token's
 * hex digits are spelt as letters: a run of 13+ random digits passes the Luhn check often
 * enough (about one URL in 270) for the card guard to refuse the URL and fail the run.
 */
function hookUrl(): string {
  const token = `hooktok${randomBytes(12)
    .toString('hex')
    .replace(/\d/g, (d) => 'ghijklmnop'[Number(d)]!)}`;
  secret('webhook url token', token);
  return `https://93.184.215.14/billvault/${token}`;
}
/** An outbound webhook endpoint; its signing secret (shown once) is seeded. */
async function webhookEndpoint(events: string[] = ['refund.approved']): Promise<string> {
  const r = await ownerCall({
    method: 'POST',
    url: '/v1/webhook_endpoints',
    payload: { url: hookUrl(), enabled_events: events },
  });
  secret('webhook signing secret', r.secret);
  return r.id;
}
/** A delivery waiting in the outbox: an endpoint for invoice.finalized, then a finalised invoice. */
async function webhookDelivery(): Promise<string> {
  const endpoint = await webhookEndpoint(['invoice.finalized']);
  await openInvoice();
  const r = await ownerCall({ method: 'GET', url: `/v1/webhook_endpoints/${endpoint}/deliveries` });
  return r.data[0].id;
}
const GATEWAY_SECRET = `whsec_cov_${randomBytes(16).toString('hex')}`;
const GATEWAY_SECRET_PREVIOUS = `whsec_covprev_${randomBytes(16).toString('hex')}`;
const GATEWAY_CARD_TOKEN = `pm_cov_${randomBytes(10).toString('hex')}`;

const get = (url: string, audit: string | RegExp | null = null, status = 200): Step => ({
  status,
  audit,
  build: () => ({ method: 'GET', url }),
});
const fakeCredential = {
  id: 'AAAAAAAAAAAAAAAAAAAAAA',
  rawId: 'AAAAAAAAAAAAAAAAAAAAAA',
  type: 'public-key',
  response: {},
};

// ---------------------------------------------------------------------------------------------
// THE SCRIPT: one entry per route ("METHOD url" exactly as registered), run in this order.

const SCRIPT: Record<string, Step> = {
  // system (public)
  'GET /healthz': get('/healthz'),
  'GET /readyz': get('/readyz'),
  'GET /v1/openapi.json': get('/v1/openapi.json'),
  // org and settings
  'GET /v1/org': get('/v1/org'),
  'GET /v1/settings/:key': get('/v1/settings/ui.theme'),
  'PUT /v1/settings/:key': {
    status: 200,
    audit: 'setting.updated',
    build: () => ({ method: 'PUT', url: '/v1/settings/ui.theme', payload: { value: 'dark' } }),
  },
  // authentication (public)
  'POST /v1/auth/login': {
    status: 401,
    audit: /^auth\.login/,
    as: 'anonymous',
    build: (s) => ({
      method: 'POST',
      url: '/v1/auth/login',
      payload: { email: PII.invitee, password: s.password },
    }),
  },
  'POST /v1/auth/mfa': {
    status: 401,
    audit: null,
    as: 'anonymous',
    build: () => ({
      method: 'POST',
      url: '/v1/auth/mfa',
      payload: { mfa_token: 'x'.repeat(43), code: '123456' },
    }),
  },
  'POST /v1/auth/webauthn/options': {
    status: 200,
    audit: null,
    noAuditBecause: 'issues a single-use challenge; the sign-in it starts is audited at verify',
    as: 'anonymous',
    build: () => ({ method: 'POST', url: '/v1/auth/webauthn/options', payload: {} }),
  },
  'POST /v1/auth/webauthn/verify': {
    status: 401,
    audit: null,
    as: 'anonymous',
    build: () => ({
      method: 'POST',
      url: '/v1/auth/webauthn/verify',
      payload: { challenge_id: newId('challenge'), credential: fakeCredential },
    }),
  },
  'POST /v1/auth/password_reset': {
    status: 202,
    audit: 'auth.password_reset_requested',
    as: 'anonymous',
    build: () => ({ method: 'POST', url: '/v1/auth/password_reset', payload: { email: PII.invitee } }),
  },
  'POST /v1/auth/password_reset/complete': {
    status: 422,
    audit: null,
    as: 'anonymous',
    build: () => ({
      method: 'POST',
      url: '/v1/auth/password_reset/complete',
      payload: { token: 'y'.repeat(43), new_password: goodPassword('never-used-reset') },
    }),
  },
  'POST /v1/auth/invitations/accept': {
    status: 422,
    audit: null,
    as: 'anonymous',
    build: () => ({
      method: 'POST',
      url: '/v1/auth/invitations/accept',
      payload: { token: 'z'.repeat(43), password: goodPassword('never-used-invite') },
    }),
  },
  'POST /v1/auth/step_up': {
    status: 200,
    audit: 'auth.step_up',
    build: (s) => ({ method: 'POST', url: '/v1/auth/step_up', payload: { password: s.password } }),
  },
  'POST /v1/auth/password': {
    status: 200,
    audit: 'credential.password_changed',
    build(s) {
      const next = goodPassword(`coverage-changed-${++seq}`);
      const req = {
        method: 'POST',
        url: '/v1/auth/password',
        payload: { current_password: s.password, new_password: next },
      };
      s.password = next;
      secret('changed password', next);
      return req;
    },
  },
  // the caller's own account and second factors (in this order: enrol, confirm, regenerate, remove)
  'GET /v1/me': get('/v1/me'),
  'POST /v1/me/mfa/totp': {
    status: 200,
    audit: 'mfa.totp_enrolment_started',
    build: () => ({ method: 'POST', url: '/v1/me/mfa/totp' }),
  },
  'POST /v1/me/mfa/totp/confirm': {
    status: 200,
    audit: /^mfa\.totp/,
    build: (s) => {
      assert.ok(s.totpSecret, 'the enrolment step ran first');
      const code = hotp(base32Decode(s.totpSecret), totpStep(clock.now()));
      return { method: 'POST', url: '/v1/me/mfa/totp/confirm', payload: { code } };
    },
  },
  'POST /v1/me/mfa/recovery_codes': {
    status: 200,
    audit: /^mfa\.recovery/,
    build: () => ({ method: 'POST', url: '/v1/me/mfa/recovery_codes' }),
  },
  'DELETE /v1/me/mfa/totp': {
    status: 200,
    audit: /^mfa\.totp/,
    build: () => ({ method: 'DELETE', url: '/v1/me/mfa/totp' }),
  },
  'GET /v1/me/passkeys': get('/v1/me/passkeys'),
  'POST /v1/me/passkeys/options': {
    status: 200,
    audit: null,
    noAuditBecause: 'issues a single-use challenge; the registration it starts is audited',
    build: () => ({ method: 'POST', url: '/v1/me/passkeys/options' }),
  },
  'POST /v1/me/passkeys': {
    status: 422, // a forged attestation: refused before anything changes
    audit: null,
    build: () => ({
      method: 'POST',
      url: '/v1/me/passkeys',
      payload: { challenge_id: newId('challenge'), name: 'Laptop', credential: fakeCredential },
    }),
  },
  'DELETE /v1/me/passkeys/:id': {
    status: 200,
    audit: /passkey/, // targets the user whose second factor changed
    async build() {
      const id = Buffer.from(newId('challenge')).toString('base64url');
      await inPlatform(deps.db, (tx) =>
        tx
          .insertInto('webauthn_credentials')
          .values({
            user_id: ownerId,
            id,
            name: 'Old phone',
            public_key: Buffer.from('00', 'hex'),
            counter: 0,
            transports: [],
            aaguid: null,
            created_at: deps.clock.now(),
            last_used_at: null,
          })
          .execute(),
      );
      return { method: 'DELETE', url: `/v1/me/passkeys/${id}` };
    },
  },
  // members, invitations, break-glass
  'GET /v1/users': get('/v1/users'),
  'POST /v1/users': {
    status: 201,
    audit: 'invitation.created',
    target: 'response',
    build: () => ({ method: 'POST', url: '/v1/users', payload: { email: PII.invitee, role: 'viewer' } }),
  },
  'GET /v1/invitations': get('/v1/invitations'),
  'DELETE /v1/invitations/:id': {
    status: 200,
    audit: 'invitation.revoked',
    target: 'url',
    build: async () => {
      const r = await ownerCall({
        method: 'POST',
        url: '/v1/users',
        payload: { email: `second.${PII.invitee}`, role: 'viewer' },
      });
      secret('invitation token', r.token);
      return { method: 'DELETE', url: `/v1/invitations/${r.id}` };
    },
  },
  'GET /v1/users/:id': {
    status: 200,
    audit: null,
    build: async () => ({ method: 'GET', url: `/v1/users/${await staff()}` }),
  },
  'PATCH /v1/users/:id': {
    status: 200,
    audit: 'user.updated',
    target: 'url',
    build: async () => ({
      method: 'PATCH',
      url: `/v1/users/${await staff()}`,
      payload: { role: 'accountant' },
    }),
  },
  'POST /v1/users/:id/unlock': {
    status: 200,
    audit: 'user.unlocked',
    target: 'url',
    build: async () => ({ method: 'POST', url: `/v1/users/${await staff()}/unlock` }),
  },
  'GET /v1/break_glass': get('/v1/break_glass'),
  'POST /v1/break_glass': {
    status: 201,
    audit: 'break_glass.granted',
    build: async () => ({
      method: 'POST',
      url: '/v1/break_glass',
      payload: { user: await staff(), reason: PII.break_glass_reason, duration_minutes: 30 },
    }),
  },
  'DELETE /v1/break_glass/:id': {
    status: 200,
    audit: 'break_glass.revoked',
    target: 'url',
    build: async () => {
      const g = await ownerCall({
        method: 'POST',
        url: '/v1/break_glass',
        payload: { user: await staff(), reason: PII.break_glass_reason, duration_minutes: 30 },
      });
      return { method: 'DELETE', url: `/v1/break_glass/${g.id}` };
    },
  },
  // API keys (the secret is seeded; its use is checked below)
  'GET /v1/api_keys': get('/v1/api_keys'),
  'POST /v1/api_keys': {
    status: 201,
    audit: 'api_key.created',
    target: 'response',
    build: () => ({ method: 'POST', url: '/v1/api_keys', payload: { name: 'coverage' } }),
  },
  'DELETE /v1/api_keys/:id': {
    status: 200,
    audit: 'api_key.revoked',
    target: 'url',
    build: async () => {
      const k = await ownerCall({ method: 'POST', url: '/v1/api_keys', payload: { name: 'to revoke' } });
      secret('api key', k.secret);
      return { method: 'DELETE', url: `/v1/api_keys/${k.id}` };
    },
  },
  // sessions
  'GET /v1/sessions': get('/v1/sessions'),
  'POST /v1/sessions/switch_org': {
    status: 200,
    audit: 'session.switched_org',
    async build() {
      await inPlatform(
        deps.db,
        (tx) => insertMembership(tx, otherOrg, ownerId, 'viewer', deps.clock.now()),
        otherOrg,
      );
      return { method: 'POST', url: '/v1/sessions/switch_org', payload: { org: otherOrg } };
    },
  },
  'POST /v1/sessions/revoke_others': {
    status: 200,
    audit: 'session.revoked_others',
    build: () => ({ method: 'POST', url: '/v1/sessions/revoke_others' }),
  },
  'DELETE /v1/sessions/:id': {
    status: 200,
    audit: 'session.revoked',
    target: 'url',
    async build() {
      const s = await inPlatform(
        deps.db,
        (tx) =>
          issueSession(tx, deps, { userId: ownerId, orgId: org, mfa: false, restricted: false, meta: {} }),
        org,
      );
      return { method: 'DELETE', url: `/v1/sessions/${s.id}` };
    },
  },
  'POST /v1/auth/logout': {
    status: 200,
    audit: 'auth.logout',
    build: () => ({ method: 'POST', url: '/v1/auth/logout' }),
  },
  // customers
  'POST /v1/customers': {
    status: 200,
    audit: 'customer.created',
    target: 'response',
    build: () => ({ method: 'POST', url: '/v1/customers', payload: customerPayload() }),
  },
  'GET /v1/customers': get('/v1/customers', 'customer.pii_listed'),
  'GET /v1/customers/:id': {
    status: 200,
    audit: 'customer.pii_read',
    target: 'url',
    build: async () => ({ method: 'GET', url: `/v1/customers/${await customer()}` }),
  },
  'PATCH /v1/customers/:id': {
    status: 200,
    audit: 'customer.updated',
    target: 'url',
    build: async () => ({
      method: 'PATCH',
      url: `/v1/customers/${await customer()}`,
      payload: { notes: `${PII.notes} (updated)`, phone: PII.phone },
    }),
  },
  'POST /v1/customers/:id/archive': {
    status: 200,
    audit: /^customer\.archived$/,
    target: 'url',
    build: async () => ({ method: 'POST', url: `/v1/customers/${await customer()}/archive` }),
  },
  'POST /v1/customers/:id/unarchive': {
    status: 200,
    audit: /^customer\.unarchived$/,
    target: 'url',
    build: async () => {
      const id = await customer();
      await ownerCall({ method: 'POST', url: `/v1/customers/${id}/archive` });
      return { method: 'POST', url: `/v1/customers/${id}/unarchive` };
    },
  },
  // catalog
  'POST /v1/tax_rates': {
    status: 200,
    audit: 'tax_rate.created',
    target: 'response',
    build: () => ({
      method: 'POST',
      url: '/v1/tax_rates',
      payload: { name: `Reduced ${++seq}`, percentage: '7.0', inclusive: false, category: 'S' },
    }),
  },
  'GET /v1/tax_rates': get('/v1/tax_rates'),
  'GET /v1/tax_rates/:id': {
    status: 200,
    audit: null,
    build: async () => ({ method: 'GET', url: `/v1/tax_rates/${await taxRate()}` }),
  },
  'PATCH /v1/tax_rates/:id': {
    status: 200,
    audit: 'tax_rate.updated',
    target: 'url',
    build: async () => ({
      method: 'PATCH',
      url: `/v1/tax_rates/${await taxRate()}`,
      payload: { name: 'Renamed' },
    }),
  },
  'POST /v1/products': {
    status: 200,
    audit: 'product.created',
    target: 'response',
    build: () => ({
      method: 'POST',
      url: '/v1/products',
      payload: { name: `P${++seq}`, unit_amount: 500, currency: 'EUR' },
    }),
  },
  'GET /v1/products': get('/v1/products'),
  'GET /v1/products/:id': {
    status: 200,
    audit: null,
    build: async () => ({ method: 'GET', url: `/v1/products/${await product()}` }),
  },
  'PATCH /v1/products/:id': {
    status: 200,
    audit: 'product.updated',
    target: 'url',
    build: async () => ({
      method: 'PATCH',
      url: `/v1/products/${await product()}`,
      payload: { name: 'Renamed' },
    }),
  },
  // invoices
  'POST /v1/invoices': {
    status: 200,
    audit: 'invoice.created',
    target: 'response',
    build: async () => ({
      method: 'POST',
      url: '/v1/invoices',
      payload: {
        customer: await customer(),
        currency: 'EUR',
        notes: PII.invoice_notes,
        lines: [{ description: 'Work', quantity: '2', unit_amount: 1500 }],
      },
    }),
  },
  'GET /v1/invoices': get('/v1/invoices'),
  'GET /v1/invoices/:id': {
    status: 200,
    audit: null,
    target: 'url',
    build: async () => ({ method: 'GET', url: `/v1/invoices/${await invoice()}` }),
  },
  'PATCH /v1/invoices/:id': {
    status: 200,
    audit: 'invoice.updated',
    target: 'url',
    build: async () => ({
      method: 'PATCH',
      url: `/v1/invoices/${await invoice()}`,
      payload: { po_number: 'PO-1', notes: PII.invoice_notes },
    }),
  },
  'DELETE /v1/invoices/:id': {
    status: 200,
    audit: 'invoice.deleted',
    target: 'url',
    build: async () => ({ method: 'DELETE', url: `/v1/invoices/${await invoice()}` }),
  },
  'POST /v1/invoices/:id/finalize': {
    status: 200,
    audit: 'invoice.finalized',
    target: 'url',
    build: async () => ({ method: 'POST', url: `/v1/invoices/${await invoice()}/finalize` }),
  },
  'POST /v1/invoices/:id/void': {
    status: 200,
    audit: 'invoice.voided',
    target: 'url',
    build: async () => ({ method: 'POST', url: `/v1/invoices/${await openInvoice()}/void` }),
  },
  'POST /v1/invoices/:id/mark_uncollectible': {
    status: 200,
    audit: 'invoice.marked_uncollectible',
    target: 'url',
    build: async () => ({ method: 'POST', url: `/v1/invoices/${await openInvoice()}/mark_uncollectible` }),
  },
  'GET /v1/ledger/verify': get('/v1/ledger/verify'),
  'GET /v1/audit_events': get('/v1/audit_events'),
  'GET /v1/audit/verify': get('/v1/audit/verify'),
  // quotes
  'POST /v1/quotes': {
    status: 200,
    audit: 'quote.created',
    target: 'response',
    build: async () => ({
      method: 'POST',
      url: '/v1/quotes',
      payload: {
        customer: await customer(),
        currency: 'EUR',
        lines: [{ description: 'Offer', quantity: '1', unit_amount: 900 }],
      },
    }),
  },
  'GET /v1/quotes': get('/v1/quotes'),
  'GET /v1/quotes/:id': {
    status: 200,
    audit: null,
    build: async () => ({ method: 'GET', url: `/v1/quotes/${await quote()}` }),
  },
  'PATCH /v1/quotes/:id': {
    status: 200,
    audit: 'quote.updated',
    target: 'url',
    build: async () => ({
      method: 'PATCH',
      url: `/v1/quotes/${await quote()}`,
      payload: { memo: 'revised' },
    }),
  },
  'POST /v1/quotes/:id/send': {
    status: 200,
    audit: 'quote.sent',
    target: 'url',
    build: async () => ({ method: 'POST', url: `/v1/quotes/${await quote()}/send` }),
  },
  'POST /v1/quotes/:id/accept': {
    status: 200,
    audit: 'quote.accepted',
    target: 'url',
    build: async () => ({ method: 'POST', url: `/v1/quotes/${await sentQuote()}/accept` }),
  },
  'POST /v1/quotes/:id/decline': {
    status: 200,
    audit: 'quote.declined',
    target: 'url',
    build: async () => ({ method: 'POST', url: `/v1/quotes/${await sentQuote()}/decline` }),
  },
  // credit notes
  'POST /v1/credit_notes': {
    status: 200,
    audit: 'credit_note.created',
    target: 'response',
    build: async () => ({
      method: 'POST',
      url: '/v1/credit_notes',
      payload: {
        invoice: await openInvoice(),
        amount: 100,
        reason: 'pricing_error',
        memo: PII.credit_reason,
      },
    }),
  },
  'GET /v1/credit_notes': get('/v1/credit_notes'),
  'GET /v1/credit_notes/:id': {
    status: 200,
    audit: null,
    build: async () => ({
      method: 'GET',
      url: `/v1/credit_notes/${await create('/v1/credit_notes', { invoice: await openInvoice(), amount: 100, reason: 'pricing_error', memo: PII.credit_reason })}`,
    }),
  },
  // payments and refunds
  'POST /v1/payments': {
    status: 200,
    audit: 'payment.recorded',
    target: 'response',
    build: async () => ({
      method: 'POST',
      url: '/v1/payments',
      payload: {
        customer: await customer(),
        amount: 500,
        currency: 'EUR',
        method: 'card',
        reference: PII.payment_reference,
        card: { gateway_token: PII.card_token, brand: 'visa', last4: '4242', exp_month: 12, exp_year: 2031 },
      },
    }),
  },
  'GET /v1/payments': get('/v1/payments'),
  'GET /v1/payments/:id': {
    status: 200,
    audit: null,
    build: async () => ({ method: 'GET', url: `/v1/payments/${await payment()}` }),
  },
  'POST /v1/payments/:id/unapply': {
    status: 200,
    audit: 'payment.unapplied',
    target: 'url',
    async build() {
      const cust = await customer();
      const inv = await openInvoice(cust);
      return {
        method: 'POST',
        url: `/v1/payments/${await payment(1000, cust, inv)}/unapply`,
        payload: { invoice: inv },
      };
    },
  },
  'POST /v1/customers/:id/apply_credit': {
    status: 200,
    audit: 'customer.credit_applied',
    target: 'url',
    async build() {
      const cust = await customer();
      await openInvoice(cust);
      await payment(1300, cust); // settles the invoice: 300 left as credit
      const inv2 = await openInvoice(cust);
      return {
        method: 'POST',
        url: `/v1/customers/${cust}/apply_credit`,
        payload: { invoice: inv2, amount: 100 },
      };
    },
  },
  'POST /v1/refunds': {
    status: 200,
    audit: /^refund\./,
    target: 'response',
    build: async () => ({
      method: 'POST',
      url: '/v1/refunds',
      payload: { payment: await payment(), amount: 100, reason: PII.refund_reason },
    }),
  },
  'GET /v1/refunds': get('/v1/refunds'),
  'GET /v1/refunds/:id': {
    status: 200,
    audit: null,
    build: async () => ({
      method: 'GET',
      url: `/v1/refunds/${await create('/v1/refunds', { payment: await payment(), amount: 100, reason: PII.refund_reason })}`,
    }),
  },
  'POST /v1/refunds/:id/approve': {
    status: 200,
    audit: 'refund.approved',
    target: 'url',
    as: 'api_key', // a second person: the owner requested it
    build: async () => ({ method: 'POST', url: `/v1/refunds/${await pendingRefund()}/approve` }),
  },
  'POST /v1/refunds/:id/reject': {
    status: 200,
    audit: 'refund.rejected',
    target: 'url',
    build: async () => ({ method: 'POST', url: `/v1/refunds/${await pendingRefund()}/reject` }),
  },
  // outbound webhooks: the URL's path carries a token (a secret; only the host may be audited)
  'POST /v1/webhook_endpoints': {
    status: 200,
    audit: 'webhook_endpoint.created',
    target: 'response',
    build: () => ({
      method: 'POST',
      url: '/v1/webhook_endpoints',
      payload: { url: hookUrl(), enabled_events: ['refund.approved'] },
    }),
  },
  'GET /v1/webhook_endpoints': get('/v1/webhook_endpoints'),
  'GET /v1/webhook_endpoints/:id': {
    status: 200,
    audit: null,
    build: async () => ({ method: 'GET', url: `/v1/webhook_endpoints/${await webhookEndpoint()}` }),
  },
  'PATCH /v1/webhook_endpoints/:id': {
    status: 200,
    audit: 'webhook_endpoint.updated',
    target: 'url',
    build: async () => ({
      method: 'PATCH',
      url: `/v1/webhook_endpoints/${await webhookEndpoint()}`,
      payload: { url: hookUrl(), enabled: false },
    }),
  },
  'DELETE /v1/webhook_endpoints/:id': {
    status: 200,
    audit: 'webhook_endpoint.deleted',
    target: 'url',
    build: async () => ({ method: 'DELETE', url: `/v1/webhook_endpoints/${await webhookEndpoint()}` }),
  },
  'POST /v1/webhook_endpoints/:id/rotate_secret': {
    status: 200,
    audit: 'webhook_endpoint.secret_rotated',
    target: 'url',
    build: async () => ({
      method: 'POST',
      url: `/v1/webhook_endpoints/${await webhookEndpoint()}/rotate_secret`,
    }),
  },
  'GET /v1/webhook_endpoints/:id/deliveries': {
    status: 200,
    audit: null,
    build: async () => ({
      method: 'GET',
      url: `/v1/webhook_endpoints/${await webhookEndpoint(['invoice.finalized'])}/deliveries`,
    }),
  },
  'POST /v1/webhook_deliveries/:id/retry': {
    status: 200,
    audit: 'webhook_delivery.retried',
    target: 'url',
    build: async () => ({ method: 'POST', url: `/v1/webhook_deliveries/${await webhookDelivery()}/retry` }),
  },
  // payment gateway: the webhook secret is seeded; the intake is public and signed with it
  'GET /v1/settings/gateways/:provider': get('/v1/settings/gateways/stripe'),
  'PUT /v1/settings/gateways/:provider': {
    status: 200,
    audit: 'gateway.secret_updated',
    build: () => ({
      method: 'PUT',
      url: '/v1/settings/gateways/stripe',
      payload: { webhook_secret: GATEWAY_SECRET, previous_webhook_secret: GATEWAY_SECRET_PREVIOUS },
    }),
  },
  'POST /v1/webhooks/gateway/:provider': {
    status: 200,
    audit: 'gateway.event_processed',
    as: 'anonymous',
    async build() {
      const inv = await openInvoice();
      const raw = JSON.stringify({
        id: `evt_cov${++seq}x${randomBytes(6).toString('hex')}`,
        object: 'event',
        type: 'payment_intent.succeeded',
        created: Math.floor(clock.now().getTime() / 1000),
        data: {
          object: {
            id: `pi_cov${++seq}x${randomBytes(6).toString('hex')}`,
            object: 'payment_intent',
            amount: 1000,
            amount_received: 1000,
            currency: 'eur',
            payment_method: GATEWAY_CARD_TOKEN,
            latest_charge: {
              id: `ch_cov${++seq}x${randomBytes(6).toString('hex')}`,
              payment_method_details: {
                type: 'card',
                card: { brand: 'visa', last4: '4242', exp_month: 12, exp_year: 2031 },
              },
            },
            metadata: { billvault_invoice: inv, billvault_org: org },
          },
        },
      });
      return {
        method: 'POST',
        url: '/v1/webhooks/gateway/stripe',
        payload: raw,
        headers: {
          'content-type': 'application/json',
          'stripe-signature': signatureHeader(
            [GATEWAY_SECRET],
            Math.floor(clock.now().getTime() / 1000),
            raw,
          ),
        },
      };
    },
  },
  // receivables and reports (customer names in them are PII)
  'GET /v1/reports/aging': get('/v1/reports/aging?as_of=2026-12-31', /^report\.viewed$|pii/),
  'GET /v1/reports/outstanding': get('/v1/reports/outstanding', /^report\.viewed$|pii/),
  'GET /v1/reports/dso': get('/v1/reports/dso?from=2026-01-01&to=2026-12-31', 'report.viewed'),
  'GET /v1/reports/revenue': get('/v1/reports/revenue?from=2026-01-01&to=2026-12-31', 'report.viewed'),
  'GET /v1/reports/tax': get('/v1/reports/tax?from=2026-01-01&to=2026-12-31', 'report.viewed'),
  'GET /v1/reports/top_customers': get(
    '/v1/reports/top_customers?from=2026-01-01&to=2026-12-31',
    /^report\.viewed$|pii/,
  ),
  'GET /v1/customers/:id/statement': {
    status: 200,
    audit: 'customer.pii_read',
    target: 'url',
    async build() {
      const cust = await customer();
      await openInvoice(cust);
      await payment(400, cust);
      return { method: 'GET', url: `/v1/customers/${cust}/statement?from=2026-01-01&to=2026-12-31` };
    },
  },
  'GET /v1/exports/invoices.csv': get('/v1/exports/invoices.csv', 'export.created'),
  // privacy (GDPR): export, legal hold, buyer details, then erasure of its own customer
  'GET /v1/privacy/processing-records': get('/v1/privacy/processing-records'),
  'GET /v1/customers/:id/export': {
    status: 200,
    audit: 'customer.exported',
    target: 'url',
    async build() {
      const cust = await customer();
      await openInvoice(cust);
      return { method: 'GET', url: `/v1/customers/${cust}/export?format=json` };
    },
  },
  'GET /v1/invoices/:id/buyer': {
    status: 200,
    audit: /pii_read|restricted_read/,
    build: async () => ({ method: 'GET', url: `/v1/invoices/${await openInvoice()}/buyer` }),
  },
  'POST /v1/customers/:id/legal_hold': {
    status: 200,
    audit: 'customer.legal_hold_placed',
    target: 'url',
    build: async () => ({
      method: 'POST',
      url: `/v1/customers/${await customer()}/legal_hold`,
      payload: { reason: PII.hold_reason },
    }),
  },
  'DELETE /v1/customers/:id/legal_hold': {
    status: 200,
    audit: 'customer.legal_hold_released',
    target: 'url',
    async build() {
      const cust = await customer();
      await ownerCall({
        method: 'POST',
        url: `/v1/customers/${cust}/legal_hold`,
        payload: { reason: PII.hold_reason },
      });
      return { method: 'DELETE', url: `/v1/customers/${cust}/legal_hold` };
    },
  },
  'POST /v1/customers/:id/erase': {
    status: 200,
    audit: 'customer.erased',
    target: 'url',
    async build() {
      const cust = await customer(); // its own customer, with a finalised invoice and a payment
      const inv = await openInvoice(cust);
      await payment(500, cust, inv);
      return {
        method: 'POST',
        url: `/v1/customers/${cust}/erase`,
        payload: { reason: 'data_subject_request' },
      };
    },
  },
};

// ---------------------------------------------------------------------------------------------

const WRITE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

async function eventsOf(rid: string): Promise<AuditRow[]> {
  const r = await sql<AuditRow>`SELECT action, outcome, target_type, target_id, actor_type, actor_id
    FROM audit_events WHERE request_id = ${rid} ORDER BY occurred_at, id`.execute(t.db);
  return r.rows;
}

const matches = (want: string | RegExp, action: string) =>
  typeof want === 'string' ? want === action : want.test(action);

/** Every form a seeded value could take in a row: clear, lower case, base64, base64url, hex. */
function forms(value: string): string[] {
  const b = Buffer.from(value);
  return [value, value.toLowerCase(), b.toString('base64'), b.toString('base64url'), b.toString('hex')];
}

/**
 * The PII of customers (stored encrypted): a response carrying any of it is a PII read. Staff
 * identities (the invitee's address, a break-glass reason) are not customer data; they are
 * still checked against the audit trail below.
 */
const {
  invitee: _staffEmail,
  break_glass_reason: _reason,
  hold_reason: _hold, // a legal hold reason is staff text stored in clear (not decrypted PII)
  credit_reason: _memo, // a credit note memo is stored in clear (not decrypted PII)
  ...CUSTOMER_PII
} = PII;

before(async () => {
  t = await createTestDatabase();
  clock = new TestClock();
  deps = testIdentity(t, clock);
  app = await buildTestApp(t, { identity: deps });
  org = (await createOrg(t.db, { name: 'Coverage Org', baseCurrency: 'EUR' })).id;
  otherOrg = (await createOrg(t.db, { name: 'Coverage Other', baseCurrency: 'EUR' })).id;
  ownerId = await member(org, 'owner', 'owner.coverage@staff.example');
  secret('owner password', scene.password);
  secret('gateway webhook secret', GATEWAY_SECRET);
  secret('previous gateway webhook secret', GATEWAY_SECRET_PREVIOUS);
  secret('gateway card token', GATEWAY_CARD_TOKEN);
  // An API key of a second owner (for the four-eyes approval and the API-key checks).
  const second = await member(org, 'owner');
  const k = await send(await sessionFor(second), {
    method: 'POST',
    url: '/v1/api_keys',
    payload: { name: 'second owner' },
  });
  assert.equal(k.statusCode, 201, k.body);
  apiKey = k.json().secret;
  secret('api key', apiKey);
});
after(async () => {
  await app.close();
  await t.drop();
});

describe('audit coverage of every route', () => {
  it('every registered route has a script entry', () => {
    const missing = app.routeTable.map((r) => `${r.method} ${r.url}`).filter((k) => !(k in SCRIPT));
    assert.deepEqual(
      missing,
      [],
      `routes without an entry in the audit coverage SCRIPT: ${missing.join(', ')}`,
    );
  });

  it('runs the script: each write is audited with its action and target, each PII read is audited', async () => {
    for (const [key, step] of Object.entries(SCRIPT)) {
      let req: Req;
      try {
        req = await step.build(scene);
      } catch (e) {
        failures.push(`${key}: building the request failed: ${(e as Error).message.slice(0, 300)}`);
        continue;
      }
      const who =
        step.as === 'anonymous'
          ? 'anonymous'
          : step.as === 'api_key'
            ? { bearer: apiKey }
            : await sessionFor(ownerId);
      const res = await send(who, req);
      const rid = String(res.headers['x-request-id']);
      results.push({ key, rid, status: res.statusCode, body: res.body, method: req.method });
      if (res.statusCode !== step.status) {
        failures.push(
          `${key}: status ${res.statusCode}, script says ${step.status}: ${res.body.slice(0, 200)}`,
        );
        continue;
      }
      // Remember secrets the responses hand out.
      const body = String(res.headers['content-type'] ?? '').includes('json') ? res.json() : {};
      if (key === 'POST /v1/me/mfa/totp') {
        scene.totpSecret = body.secret;
        secret('totp secret', body.secret);
      }
      for (const c of body.recovery_codes ?? []) secret('recovery code', c);
      if (typeof body.secret === 'string' && body.secret.startsWith('bv_live_'))
        secret('api key', body.secret);
      if (typeof body.secret === 'string' && body.secret.startsWith('whsec_'))
        secret('webhook signing secret', body.secret);
      if (typeof body.token === 'string') secret('token', body.token);
      const setCookie = res.headers['set-cookie'];
      if (setCookie) {
        const c = cookiesFrom(setCookie);
        if (c.token) secret('session token', c.token);
      }

      const events = await eventsOf(rid);
      const isWrite = WRITE.has(req.method) && res.statusCode < 300;
      if (isWrite && step.audit === null && !step.noAuditBecause)
        failures.push(`${key}: a successful write, but the script expects no audit event`);
      if (step.audit !== null) {
        const hit = events.filter((e) => matches(step.audit as string | RegExp, e.action));
        if (hit.length === 0) {
          failures.push(
            `${key}: no ${step.audit} event (got ${events.map((e) => e.action).join(', ') || 'none'})`,
          );
          continue;
        }
        if (step.target) {
          const want = step.target === 'url' ? urlId(req.url) : body.id;
          if (!hit.some((e) => e.target_id === want))
            failures.push(
              `${key}: ${step.audit} event targets ${hit.map((e) => e.target_id).join(', ')}, want ${want}`,
            );
        }
      }
      // A response that carries decrypted PII is a PII read: it must be audited as one.
      const carried = Object.entries(CUSTOMER_PII).filter(([, v]) => res.body.includes(v));
      if (res.statusCode < 300 && carried.length > 0 && !(isWrite && events.length > 0)) {
        if (!events.some((e) => /pii|read|export/.test(e.action)))
          failures.push(
            `${key}: returns decrypted PII (${carried.map(([k]) => k).join(', ')}) but wrote no read event (got ${events.map((e) => e.action).join(', ') || 'none'})`,
          );
      }
    }
    assert.deepEqual(failures, []);
  });

  it('every 403 is audited as a denied event with its request id', async () => {
    const denied: string[] = [];
    let checked = 0;
    for (const route of app.routeTable) {
      if ('public' in route.auth) continue;
      const key = `${route.method} ${route.url}`;
      const step = SCRIPT[key];
      if (!step) continue;
      const perm = route.auth.permission;
      const role = ROLES.find(
        (r) => !can({ kind: 'user', id: 'usr_x', userId: 'usr_x', orgId: org, role: r } as Actor, perm),
      );
      if (!role) continue; // every role holds it
      const req = await step.build(scene);
      const res = await send(await sessionFor(await member(org, role)), req);
      if (res.statusCode !== 403) {
        denied.push(`${key} as ${role}: ${res.statusCode}, want 403`);
        continue;
      }
      checked++;
      const events = await eventsOf(String(res.headers['x-request-id']));
      if (!events.some((e) => e.outcome === 'denied'))
        denied.push(
          `${key} as ${role}: 403 without a denied event (got ${events.map((e) => e.action).join(', ') || 'none'})`,
        );
    }
    assert.ok(checked > 30, `only ${checked} denied calls`);
    assert.deepEqual(denied, []);
  });
});

function urlId(url: string): string {
  // The path parameter: the first segment after the collection that is not a plain word.
  const parts = url.split('?')[0]!.split('/').filter(Boolean);
  const id = parts.slice(2).find((p) => /[0-9]/.test(p) || p.length > 20);
  return id ?? '';
}

describe('authentication, MFA, sessions, roles and API keys are audited', () => {
  const loginEvents = async (rid: string) =>
    (await eventsOf(rid)).filter((e) => e.action.startsWith('auth.'));

  it('login success, failure and lockout', async () => {
    const email = `login.${++seq}@staff.example`;
    const user = await member(org, 'viewer', email);
    const ok = await send('anonymous', {
      method: 'POST',
      url: '/v1/auth/login',
      payload: { email, password: scene.password },
    });
    assert.equal(ok.statusCode, 200, ok.body);
    secret('session token', cookiesFrom(ok.headers['set-cookie']).token);
    const okEvents = await loginEvents(String(ok.headers['x-request-id']));
    assert.ok(
      okEvents.some((e) => e.action === 'auth.login' && e.outcome === 'success' && e.target_id === user),
      JSON.stringify(okEvents),
    );

    const wrong = goodPassword('a wrong guess');
    secret('wrong password', wrong);
    let lockedSeen = false;
    for (let i = 0; i < 10; i++) {
      const r = await send('anonymous', {
        method: 'POST',
        url: '/v1/auth/login',
        payload: { email, password: wrong },
      });
      assert.equal(r.statusCode, 401);
      const ev = await loginEvents(String(r.headers['x-request-id']));
      assert.ok(
        ev.some((e) => e.action === 'auth.login_failed' && e.outcome === 'failed'),
        JSON.stringify(ev),
      );
      if (ev.some((e) => e.action === 'auth.account_locked')) lockedSeen = true;
    }
    assert.ok(lockedSeen, 'the tenth failure locks the account, audited');
    const locked = await send('anonymous', {
      method: 'POST',
      url: '/v1/auth/login',
      payload: { email, password: scene.password },
    });
    assert.equal(locked.statusCode, 401);
    const lockedEv = await loginEvents(String(locked.headers['x-request-id']));
    assert.ok(
      lockedEv.some((e) => e.action.startsWith('auth.login') && e.outcome !== 'success'),
      JSON.stringify(lockedEv),
    );
    clock.advance(31 * MINUTE);
  });

  it('role changes and session revocation name the actor and the target', async () => {
    const target = await staff('viewer');
    const me = await sessionFor(ownerId);
    const r = await send(me, {
      method: 'PATCH',
      url: `/v1/users/${target}`,
      payload: { role: 'finance_manager' },
    });
    assert.equal(r.statusCode, 200, r.body);
    const ev = await eventsOf(String(r.headers['x-request-id']));
    const change = ev.find((e) => e.action === 'user.updated');
    assert.ok(change, JSON.stringify(ev));
    assert.equal(change.actor_id, ownerId);
    assert.equal(change.target_id, target);
    const details = await sql<{ d: string }>`SELECT details::text AS d FROM audit_events
      WHERE request_id = ${String(r.headers['x-request-id'])} AND action = 'user.updated'`.execute(t.db);
    assert.match(details.rows[0]?.d ?? '', /finance_manager/, 'the new role is recorded');
  });

  it('API key create, use and revoke: the key is the actor of what it does', async () => {
    const me = await sessionFor(ownerId);
    const k = await send(me, { method: 'POST', url: '/v1/api_keys', payload: { name: 'use me' } });
    assert.equal(k.statusCode, 201);
    const { id, secret: s } = k.json();
    secret('api key', s);
    const created = await eventsOf(String(k.headers['x-request-id']));
    assert.ok(
      created.some((e) => e.action === 'api_key.created' && e.target_id === id && e.actor_id === ownerId),
    );
    const used = await send(
      { bearer: s },
      { method: 'POST', url: '/v1/customers', payload: customerPayload() },
    );
    assert.equal(used.statusCode, 200, used.body);
    const usedEv = await eventsOf(String(used.headers['x-request-id']));
    assert.ok(
      usedEv.some((e) => e.action === 'customer.created' && e.actor_type === 'api_key' && e.actor_id === id),
      JSON.stringify(usedEv),
    );
    const revoked = await send(me, { method: 'DELETE', url: `/v1/api_keys/${id}` });
    assert.equal(revoked.statusCode, 200);
    const revEv = await eventsOf(String(revoked.headers['x-request-id']));
    assert.ok(revEv.some((e) => e.action === 'api_key.revoked' && e.target_id === id));
    const after = await send({ bearer: s }, { method: 'GET', url: '/v1/org' });
    assert.equal(after.statusCode, 401);
  });
});

describe('no PII or secret in the audit trail', () => {
  it('no audit row, in any column, holds a seeded PII value or secret (clear, base64, base64url, hex)', async () => {
    assert.ok(results.length >= app.routeTable.length, 'the script ran');
    assert.ok(secrets.size > 8, `only ${secrets.size} secrets seeded`);
    const dump: string[] = [];
    for (const table of ['audit_events', 'audit_chain', 'audit_checkpoints']) {
      const r = await sql<{ r: string }>`SELECT x::text AS r FROM ${sql.table(table)} AS x`.execute(t.db);
      dump.push(...r.rows.map((x) => x.r));
    }
    assert.ok(dump.length > 200, `only ${dump.length} audit rows`);
    const text = dump.join('\n');
    const lower = text.toLowerCase();
    const leaks: string[] = [];
    const check = (what: string, value: string) => {
      for (const f of forms(value))
        if (text.includes(f) || lower.includes(f.toLowerCase())) leaks.push(`${what} (${f.slice(0, 24)}…)`);
    };
    for (const [k, v] of Object.entries(PII)) check(`PII ${k}`, v);
    for (const [v, what] of secrets) check(what, v);
    assert.deepEqual([...new Set(leaks)], []);
  });
});

describe('the benchmark-only audit switch', () => {
  it('is called by nothing under src/ but its own definition', async () => {
    const { readdirSync, readFileSync } = await import('node:fs');
    const path = await import('node:path');
    const hits: string[] = [];
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const f = path.join(dir, e.name);
        if (e.isDirectory()) walk(f);
        else if (/\.(ts|js|mjs)$/.test(e.name) && readFileSync(f, 'utf8').includes('benchmarkOnlySkipAudit'))
          hits.push(path.relative(process.cwd(), f));
      }
    };
    walk(path.join(process.cwd(), 'src'));
    assert.deepEqual(hits, [path.join('src', 'app', 'audit.ts')]);
  });
});
