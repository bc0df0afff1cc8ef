/**
 * The permission matrix: EVERY registered route × EVERY role × own-org / other-org /
 * assigned / unassigned record, asserting the exact status.
 *
 * The routes come from `app.routeTable`, so a new route cannot escape: a route without an
 * entry in RULES below fails the test. To add a route, add one entry: how to build a valid
 * request for a cell (creating whatever record the cell needs), the status an allowed caller
 * gets, and which record scopes apply. The expected status of every cell then follows from
 * the one policy function:
 *   - no credentials                                    → 401
 *   - the role lacks the route's permission             → 403 (the same for any record id:
 *                                                         it reveals nothing about records)
 *   - allowed, record of another org                    → 404, never 403
 *   - allowed, sales rep, record not assigned to them   → 404
 *   - otherwise                                          → the rule's `ok` status
 * Every cell runs as a brand-new member of org A with a fresh session, so cells never
 * interfere with each other.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createApiKeyAsOperator } from '../../src/app/api-keys.js';
import { createOrg } from '../../src/app/orgs.js';
import { type IdentityDeps, inPlatform, issueSession } from '../../src/app/sessions.js';
import { insertMembership, insertUser } from '../../src/app/users.js';
import { newId } from '../../src/domain/ids.js';
import { type Actor, can, ROLES, type Role } from '../../src/domain/permissions.js';
import type { RouteAuth } from '../../src/http/route.js';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { goodPassword, TestClock, testIdentity } from '../helpers/identity.js';

type Scope = 'none' | 'own' | 'other' | 'assigned' | 'unassigned';
interface Req {
  method: string;
  url: string;
  payload?: unknown;
}
interface Session {
  userId: string;
  cookie: string;
  csrf: string;
}
interface Cell {
  role: Role;
  scope: Scope;
  me: Session;
  /** The org a record should live in for this cell: A for own/assigned/unassigned, B for other. */
  org: string;
  /**
   * The user a customer-linked record is assigned to: the caller for `assigned`, another
   * member for `own`, nobody for `unassigned` (and for other-org records).
   */
  assignee: string | null;
}
interface Rule {
  /** `none` for routes without a record; else the record scopes that apply. */
  scopes: Scope[];
  /** Records that belong to a customer: a sales rep reaches them only when assigned to them. */
  linked?: true;
  /** Routes for a signed-in person only (their own MFA, passkeys, sessions): an API key gets 403. */
  userOnly?: true;
  ok: number;
  build(c: Cell): Promise<Req> | Req;
}

let t: TestDatabase;
let deps: IdentityDeps;
let app: Awaited<ReturnType<typeof buildTestApp>>;
let orgA = '';
let orgB = '';
const owners: Record<string, Session> = {};
let seq = 0;
let passwordHash = '';
const PASSWORD = goodPassword('matrix');

// ---------------------------------------------------------------------------------------------
// Fixtures: members, sessions and records, created directly or through the API as an owner.

async function member(org: string, role: Role): Promise<string> {
  const now = deps.clock.now();
  return inPlatform(
    deps.db,
    async (tx) => {
      const id = await insertUser(
        tx,
        { email: `m${++seq}.${org.slice(4, 10)}@matrix.test`, passwordHash },
        now,
      );
      await insertMembership(tx, org, id, role, now);
      return id;
    },
    org,
  );
}

async function sessionFor(userId: string, org: string): Promise<Session> {
  const s = await inPlatform(
    deps.db,
    (tx) => issueSession(tx, deps, { userId, orgId: org, mfa: true, restricted: false, meta: {} }),
    org,
  );
  return { userId, cookie: `__Host-bv_session=${s.token}; bv_csrf=${s.csrf}`, csrf: s.csrf };
}

async function send(s: Session | null, req: Req) {
  return app.inject({
    method: req.method as 'GET',
    url: req.url,
    headers: s ? { cookie: s.cookie, 'x-csrf-token': s.csrf } : {},
    ...(req.payload !== undefined ? { payload: req.payload as object } : {}),
  });
}

/** Creates a record through the API as the org's owner; returns its id. */
async function create(org: string, url: string, payload: unknown): Promise<string> {
  const owner = owners[org];
  assert.ok(owner);
  const r = await send(owner, { method: 'POST', url, payload });
  assert.ok(r.statusCode < 300, `fixture ${url}: ${r.statusCode} ${r.body}`);
  return r.json().id;
}

const customer = (c: Cell) =>
  create(c.org, '/v1/customers', {
    name: `Customer ${++seq}`,
    ...(c.assignee ? { owner_user: c.assignee } : {}),
  });
const taxRate = (c: Cell) =>
  create(c.org, '/v1/tax_rates', {
    name: `VAT ${++seq}`,
    percentage: '20.0',
    inclusive: false,
    category: 'S',
  });
const product = (c: Cell) =>
  create(c.org, '/v1/products', { name: `Product ${++seq}`, unit_amount: 1000, currency: 'EUR' });
const invoice = async (c: Cell) =>
  create(c.org, '/v1/invoices', {
    customer: await customer(c),
    currency: 'EUR',
    lines: [{ description: 'Work', quantity: '1', unit_amount: 1000 }],
  });
async function openInvoice(c: Cell) {
  const id = await invoice(c);
  const r = await send(owners[c.org] ?? null, { method: 'POST', url: `/v1/invoices/${id}/finalize` });
  assert.ok(r.statusCode < 300, r.body);
  return id;
}

const quote = async (c: Cell) =>
  create(c.org, '/v1/quotes', {
    customer: await customer(c),
    currency: 'EUR',
    lines: [{ description: 'Offer', quantity: '1', unit_amount: 900 }],
  });
async function sentQuote(c: Cell) {
  const id = await quote(c);
  const r = await send(owners[c.org] ?? null, { method: 'POST', url: `/v1/quotes/${id}/send` });
  assert.ok(r.statusCode < 300, r.body);
  return id;
}
const creditNote = async (c: Cell) =>
  create(c.org, '/v1/credit_notes', { invoice: await openInvoice(c), amount: 100, reason: 'duplicate' });
/** A payment of 1,000 EUR, unapplied (the customer has no open invoice), or allocated to `invoice`. */
const payment = async (c: Cell, amount = 1000, invoice?: string, customerId?: string) =>
  create(c.org, '/v1/payments', {
    customer: customerId ?? (await customer(c)),
    amount,
    currency: 'EUR',
    method: 'bank_transfer',
    ...(invoice ? { allocations: [{ invoice, amount }] } : {}),
  });
/** A refund above the default four-eyes threshold (1,000,000): it waits for approval by someone else. */
const pendingRefund = async (c: Cell) =>
  create(c.org, '/v1/refunds', { payment: await payment(c, 2_000_000), amount: 1_500_000, reason: 'matrix' });

/** An outbound webhook endpoint (a public IP literal: the SSRF guard needs no DNS for it). */
const webhookEndpoint = (c: Cell, events: string[] = ['refund.approved']) =>
  create(c.org, '/v1/webhook_endpoints', {
    url: 'https://93.184.215.14/billvault-hook',
    enabled_events: events,
  });
/** A delivery waiting in the outbox: an endpoint for invoice.finalized, then a finalised invoice. */
async function webhookDelivery(c: Cell): Promise<string> {
  const endpoint = await webhookEndpoint(c, ['invoice.finalized']);
  await openInvoice(c);
  const r = await send(owners[c.org] ?? null, {
    method: 'GET',
    url: `/v1/webhook_endpoints/${endpoint}/deliveries`,
  });
  assert.equal(r.statusCode, 200, r.body);
  return r.json().data[0].id;
}

/** A member of the cell's org (other org for `other`). */
const targetMember = (c: Cell, role: Role = 'viewer') => member(c.org, role);

// ---------------------------------------------------------------------------------------------
// THE TABLE: one entry per route ("METHOD url" exactly as registered).

const ID = ['own', 'other'] as Scope[];
const CUSTOMER_LINKED = ['own', 'other', 'assigned', 'unassigned'] as Scope[];
const NONE = ['none'] as Scope[];
const get = (url: string): Rule => ({ scopes: NONE, ok: 200, build: () => ({ method: 'GET', url }) });

const RULES: Record<string, Rule> = {
  // system (public)
  'GET /healthz': get('/healthz'),
  'GET /readyz': get('/readyz'),
  'GET /v1/openapi.json': get('/v1/openapi.json'),
  // org and settings
  'GET /v1/org': get('/v1/org'),
  'GET /v1/settings/:key': get('/v1/settings/ui.theme'),
  'PUT /v1/settings/:key': {
    scopes: NONE,
    ok: 200,
    build: () => ({ method: 'PUT', url: '/v1/settings/ui.theme', payload: { value: 'dark' } }),
  },
  // authentication (public): a failed attempt is the exact, generic 401
  'POST /v1/auth/login': {
    scopes: NONE,
    ok: 401,
    build: () => ({
      method: 'POST',
      url: '/v1/auth/login',
      payload: { email: 'nobody@matrix.test', password: 'wrong password here' },
    }),
  },
  'POST /v1/auth/mfa': {
    scopes: NONE,
    ok: 401,
    build: () => ({
      method: 'POST',
      url: '/v1/auth/mfa',
      payload: { mfa_token: 'x'.repeat(43), code: '123456' },
    }),
  },
  'POST /v1/auth/webauthn/options': {
    scopes: NONE,
    ok: 200,
    build: () => ({ method: 'POST', url: '/v1/auth/webauthn/options', payload: {} }),
  },
  'POST /v1/auth/webauthn/verify': {
    scopes: NONE,
    ok: 401,
    build: () => ({
      method: 'POST',
      url: '/v1/auth/webauthn/verify',
      payload: {
        challenge_id: newId('challenge'),
        credential: {
          id: 'AAAAAAAAAAAAAAAAAAAAAA',
          rawId: 'AAAAAAAAAAAAAAAAAAAAAA',
          type: 'public-key',
          response: {},
        },
      },
    }),
  },
  'POST /v1/auth/password_reset': {
    scopes: NONE,
    ok: 202,
    build: () => ({
      method: 'POST',
      url: '/v1/auth/password_reset',
      payload: { email: 'nobody@matrix.test' },
    }),
  },
  'POST /v1/auth/password_reset/complete': {
    scopes: NONE,
    ok: 422,
    build: () => ({
      method: 'POST',
      url: '/v1/auth/password_reset/complete',
      payload: { token: 'y'.repeat(43), new_password: 'some new passphrase' },
    }),
  },
  'POST /v1/auth/invitations/accept': {
    scopes: NONE,
    ok: 422,
    build: () => ({
      method: 'POST',
      url: '/v1/auth/invitations/accept',
      payload: { token: 'z'.repeat(43), password: 'a passphrase here' },
    }),
  },
  'POST /v1/auth/logout': {
    scopes: NONE,
    ok: 200,
    build: () => ({ method: 'POST', url: '/v1/auth/logout' }),
  },
  'POST /v1/auth/step_up': {
    scopes: NONE,
    ok: 200,
    build: () => ({ method: 'POST', url: '/v1/auth/step_up', payload: { password: PASSWORD } }),
  },
  'POST /v1/auth/password': {
    scopes: NONE,
    ok: 200,
    build: () => ({
      method: 'POST',
      url: '/v1/auth/password',
      payload: { current_password: PASSWORD, new_password: goodPassword(`new-${++seq}`) },
    }),
  },
  // the caller's own account
  'GET /v1/me': get('/v1/me'),
  'POST /v1/me/mfa/totp': {
    scopes: NONE,
    ok: 200,
    build: () => ({ method: 'POST', url: '/v1/me/mfa/totp' }),
  },
  'POST /v1/me/mfa/totp/confirm': {
    scopes: NONE,
    ok: 409, // nothing to confirm: no enrolment was started for this fresh member
    build: () => ({ method: 'POST', url: '/v1/me/mfa/totp/confirm', payload: { code: '123456' } }),
  },
  'DELETE /v1/me/mfa/totp': {
    scopes: NONE,
    ok: 404,
    build: () => ({ method: 'DELETE', url: '/v1/me/mfa/totp' }),
  },
  'POST /v1/me/mfa/recovery_codes': {
    scopes: NONE,
    ok: 409,
    build: () => ({ method: 'POST', url: '/v1/me/mfa/recovery_codes' }),
  },
  'GET /v1/me/passkeys': { ...get('/v1/me/passkeys'), userOnly: true },
  'POST /v1/me/passkeys/options': {
    scopes: NONE,
    ok: 200,
    build: () => ({ method: 'POST', url: '/v1/me/passkeys/options' }),
  },
  'POST /v1/me/passkeys': {
    scopes: NONE,
    ok: 422,
    build: () => ({
      method: 'POST',
      url: '/v1/me/passkeys',
      payload: {
        challenge_id: newId('challenge'),
        name: 'x',
        credential: {
          id: 'AAAAAAAAAAAAAAAAAAAAAA',
          rawId: 'AAAAAAAAAAAAAAAAAAAAAA',
          type: 'public-key',
          response: {},
        },
      },
    }),
  },
  'DELETE /v1/me/passkeys/:id': {
    scopes: ID,
    ok: 200,
    async build(c) {
      // own: a passkey of the caller; other: a passkey of someone in the other org
      const owner = c.scope === 'own' ? c.me.userId : await targetMember(c);
      const id = Buffer.from(newId('challenge')).toString('base64url');
      await inPlatform(deps.db, (tx) =>
        tx
          .insertInto('webauthn_credentials')
          .values({
            user_id: owner,
            id,
            name: 'k',
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
    scopes: NONE,
    ok: 201,
    build: () => ({
      method: 'POST',
      url: '/v1/users',
      payload: { email: `invitee${++seq}@matrix.test`, role: 'viewer' },
    }),
  },
  'GET /v1/invitations': get('/v1/invitations'),
  'DELETE /v1/invitations/:id': {
    scopes: ID,
    ok: 200,
    async build(c) {
      const id = newId('invitation');
      const now = deps.clock.now();
      await inPlatform(
        deps.db,
        (tx) =>
          tx
            .insertInto('invitations')
            .values({
              org_id: c.org,
              id,
              email: `invited${++seq}@matrix.test`,
              role: 'viewer',
              token_hash: `matrix-${id}`,
              invited_by: null,
              created_at: now,
              expires_at: new Date(now.getTime() + 3600_000),
              accepted_at: null,
              revoked_at: null,
            })
            .execute(),
        c.org,
      );
      return { method: 'DELETE', url: `/v1/invitations/${id}` };
    },
  },
  'GET /v1/users/:id': {
    scopes: ID,
    ok: 200,
    build: async (c) => ({ method: 'GET', url: `/v1/users/${await targetMember(c)}` }),
  },
  'PATCH /v1/users/:id': {
    scopes: ID,
    ok: 200,
    build: async (c) => ({
      method: 'PATCH',
      url: `/v1/users/${await targetMember(c)}`,
      payload: { role: 'accountant' },
    }),
  },
  'POST /v1/users/:id/unlock': {
    scopes: ID,
    ok: 200,
    build: async (c) => ({ method: 'POST', url: `/v1/users/${await targetMember(c)}/unlock` }),
  },
  'GET /v1/break_glass': get('/v1/break_glass'),
  'POST /v1/break_glass': {
    scopes: ID,
    ok: 201,
    build: async (c) => ({
      method: 'POST',
      url: '/v1/break_glass',
      payload: { user: await targetMember(c), reason: 'matrix: emergency access test', duration_minutes: 30 },
    }),
  },
  'DELETE /v1/break_glass/:id': {
    scopes: ID,
    ok: 200,
    async build(c) {
      const user = await targetMember(c);
      const id = newId('break_glass');
      const now = deps.clock.now();
      await inPlatform(
        deps.db,
        (tx) =>
          tx
            .insertInto('break_glass_grants')
            .values({
              org_id: c.org,
              id,
              user_id: user,
              role: 'owner',
              reason: 'matrix fixture grant',
              granted_by: null,
              created_at: now,
              expires_at: new Date(now.getTime() + 3600_000),
              revoked_at: null,
            })
            .execute(),
        c.org,
      );
      return { method: 'DELETE', url: `/v1/break_glass/${id}` };
    },
  },
  // API keys
  'GET /v1/api_keys': get('/v1/api_keys'),
  'POST /v1/api_keys': {
    scopes: NONE,
    ok: 201,
    build: () => ({ method: 'POST', url: '/v1/api_keys', payload: { name: 'matrix' } }),
  },
  'DELETE /v1/api_keys/:id': {
    scopes: ID,
    ok: 200,
    build: async (c) => ({
      method: 'DELETE',
      url: `/v1/api_keys/${(await createApiKeyAsOperator(deps, c.org, { name: 'm' })).id}`,
    }),
  },
  // sessions: own = another session of the caller; other = a session in the other org
  'GET /v1/sessions': { ...get('/v1/sessions'), userOnly: true },
  'POST /v1/sessions/switch_org': {
    scopes: ID,
    ok: 200,
    userOnly: true,
    async build(c) {
      // own: an org the caller also belongs to; other: an org they do not belong to
      if (c.scope === 'own') {
        await inPlatform(
          deps.db,
          (tx) => insertMembership(tx, orgB, c.me.userId, 'viewer', deps.clock.now()),
          orgB,
        );
      }
      return { method: 'POST', url: '/v1/sessions/switch_org', payload: { org: orgB } };
    },
  },
  'POST /v1/sessions/revoke_others': {
    scopes: NONE,
    ok: 200,
    userOnly: true,
    build: () => ({ method: 'POST', url: '/v1/sessions/revoke_others' }),
  },
  'DELETE /v1/sessions/:id': {
    scopes: ID,
    ok: 200,
    async build(c) {
      const user = c.scope === 'own' ? c.me.userId : await targetMember(c);
      const s = await inPlatform(
        deps.db,
        (tx) =>
          issueSession(tx, deps, { userId: user, orgId: c.org, mfa: false, restricted: false, meta: {} }),
        c.org,
      );
      return { method: 'DELETE', url: `/v1/sessions/${s.id}` };
    },
  },
  // customers (record-level: sales reps see only customers assigned to them)
  'POST /v1/customers': {
    scopes: NONE,
    ok: 200,
    build: () => ({ method: 'POST', url: '/v1/customers', payload: { name: 'New customer' } }),
  },
  'GET /v1/customers': get('/v1/customers'),
  'GET /v1/customers/:id': {
    scopes: CUSTOMER_LINKED,
    linked: true,
    ok: 200,
    build: async (c) => ({ method: 'GET', url: `/v1/customers/${await customer(c)}` }),
  },
  'PATCH /v1/customers/:id': {
    scopes: CUSTOMER_LINKED,
    linked: true,
    ok: 200,
    build: async (c) => ({
      method: 'PATCH',
      url: `/v1/customers/${await customer(c)}`,
      payload: { payment_terms_days: 14 },
    }),
  },
  'POST /v1/customers/:id/archive': {
    scopes: CUSTOMER_LINKED,
    linked: true,
    ok: 200,
    build: async (c) => ({ method: 'POST', url: `/v1/customers/${await customer(c)}/archive` }),
  },
  'POST /v1/customers/:id/unarchive': {
    scopes: CUSTOMER_LINKED,
    linked: true,
    ok: 200,
    build: async (c) => ({ method: 'POST', url: `/v1/customers/${await customer(c)}/unarchive` }),
  },
  // privacy (GDPR): export and erasure need step-up (the cells' sessions are fresh)
  'GET /v1/customers/:id/export': {
    scopes: CUSTOMER_LINKED,
    linked: true,
    ok: 200,
    build: async (c) => ({ method: 'GET', url: `/v1/customers/${await customer(c)}/export?format=csv` }),
  },
  'POST /v1/customers/:id/erase': {
    scopes: CUSTOMER_LINKED,
    linked: true,
    ok: 200,
    build: async (c) => ({
      method: 'POST',
      url: `/v1/customers/${await customer(c)}/erase`,
      payload: { reason: 'data_subject_request' },
    }),
  },
  'POST /v1/customers/:id/legal_hold': {
    scopes: CUSTOMER_LINKED,
    linked: true,
    ok: 200,
    build: async (c) => ({
      method: 'POST',
      url: `/v1/customers/${await customer(c)}/legal_hold`,
      payload: { reason: 'matrix' },
    }),
  },
  'DELETE /v1/customers/:id/legal_hold': {
    scopes: CUSTOMER_LINKED,
    linked: true,
    ok: 200,
    build: async (c) => ({ method: 'DELETE', url: `/v1/customers/${await customer(c)}/legal_hold` }),
  },
  'GET /v1/invoices/:id/buyer': {
    scopes: CUSTOMER_LINKED,
    linked: true,
    ok: 200,
    build: async (c) => ({ method: 'GET', url: `/v1/invoices/${await openInvoice(c)}/buyer` }),
  },
  'GET /v1/privacy/processing-records': get('/v1/privacy/processing-records'),
  'GET /v1/customers/:id/statement': {
    scopes: CUSTOMER_LINKED,
    linked: true,
    ok: 200,
    build: async (c) => ({
      method: 'GET',
      url: `/v1/customers/${await customer(c)}/statement?from=2026-01-01&to=2026-12-31`,
    }),
  },
  // receivables and reports
  'GET /v1/reports/aging': get('/v1/reports/aging?as_of=2026-06-30'),
  'GET /v1/reports/outstanding': get('/v1/reports/outstanding'),
  'GET /v1/reports/dso': get('/v1/reports/dso?from=2026-01-01&to=2026-01-31'),
  'GET /v1/reports/revenue': get('/v1/reports/revenue?from=2026-01-01&to=2026-12-31'),
  'GET /v1/reports/tax': get('/v1/reports/tax?from=2026-01-01&to=2026-12-31'),
  'GET /v1/reports/top_customers': get('/v1/reports/top_customers?from=2026-01-01&to=2026-12-31'),
  'GET /v1/exports/invoices.csv': get('/v1/exports/invoices.csv'),
  // catalog
  'POST /v1/tax_rates': {
    scopes: NONE,
    ok: 200,
    build: () => ({
      method: 'POST',
      url: '/v1/tax_rates',
      payload: { name: `T${++seq}`, percentage: '7.0', inclusive: false, category: 'S' },
    }),
  },
  'GET /v1/tax_rates': get('/v1/tax_rates'),
  'GET /v1/tax_rates/:id': {
    scopes: ID,
    ok: 200,
    build: async (c) => ({ method: 'GET', url: `/v1/tax_rates/${await taxRate(c)}` }),
  },
  'PATCH /v1/tax_rates/:id': {
    scopes: ID,
    ok: 200,
    build: async (c) => ({
      method: 'PATCH',
      url: `/v1/tax_rates/${await taxRate(c)}`,
      payload: { name: 'Renamed' },
    }),
  },
  'POST /v1/products': {
    scopes: NONE,
    ok: 200,
    build: () => ({
      method: 'POST',
      url: '/v1/products',
      payload: { name: `P${++seq}`, unit_amount: 500, currency: 'EUR' },
    }),
  },
  'GET /v1/products': get('/v1/products'),
  'GET /v1/products/:id': {
    scopes: ID,
    ok: 200,
    build: async (c) => ({ method: 'GET', url: `/v1/products/${await product(c)}` }),
  },
  'PATCH /v1/products/:id': {
    scopes: ID,
    ok: 200,
    build: async (c) => ({
      method: 'PATCH',
      url: `/v1/products/${await product(c)}`,
      payload: { name: 'Renamed' },
    }),
  },
  // invoices (record-level through their customer)
  'POST /v1/invoices': {
    scopes: CUSTOMER_LINKED.filter((s) => s !== 'other'),
    linked: true,
    ok: 200,
    build: async (c) => ({
      method: 'POST',
      url: '/v1/invoices',
      payload: {
        customer: await customer(c),
        currency: 'EUR',
        lines: [{ description: 'Work', quantity: '2', unit_amount: 1500 }],
      },
    }),
  },
  'GET /v1/invoices': get('/v1/invoices'),
  'GET /v1/invoices/:id': {
    scopes: CUSTOMER_LINKED,
    linked: true,
    ok: 200,
    build: async (c) => ({ method: 'GET', url: `/v1/invoices/${await invoice(c)}` }),
  },
  'PATCH /v1/invoices/:id': {
    scopes: CUSTOMER_LINKED,
    linked: true,
    ok: 200,
    build: async (c) => ({
      method: 'PATCH',
      url: `/v1/invoices/${await invoice(c)}`,
      payload: { po_number: 'PO-1' },
    }),
  },
  'DELETE /v1/invoices/:id': {
    scopes: CUSTOMER_LINKED,
    linked: true,
    ok: 200,
    build: async (c) => ({ method: 'DELETE', url: `/v1/invoices/${await invoice(c)}` }),
  },
  'POST /v1/invoices/:id/finalize': {
    scopes: CUSTOMER_LINKED,
    linked: true,
    ok: 200,
    build: async (c) => ({ method: 'POST', url: `/v1/invoices/${await invoice(c)}/finalize` }),
  },
  'POST /v1/invoices/:id/void': {
    scopes: CUSTOMER_LINKED,
    linked: true,
    ok: 200,
    build: async (c) => ({ method: 'POST', url: `/v1/invoices/${await openInvoice(c)}/void` }),
  },
  'POST /v1/invoices/:id/mark_uncollectible': {
    scopes: CUSTOMER_LINKED,
    linked: true,
    ok: 200,
    build: async (c) => ({ method: 'POST', url: `/v1/invoices/${await openInvoice(c)}/mark_uncollectible` }),
  },
  'GET /v1/ledger/verify': get('/v1/ledger/verify'),
  // the audit log: auditors and owners (audit:read), always the caller's own org
  'GET /v1/audit_events': get('/v1/audit_events'),
  'GET /v1/audit/verify': get('/v1/audit/verify'),
  // quotes (record-level through their customer)
  'POST /v1/quotes': {
    scopes: CUSTOMER_LINKED.filter((s) => s !== 'other'),
    linked: true,
    ok: 200,
    build: async (c) => ({
      method: 'POST',
      url: '/v1/quotes',
      payload: {
        customer: await customer(c),
        currency: 'EUR',
        lines: [{ description: 'Offer', quantity: '1', unit_amount: 900 }],
      },
    }),
  },
  'GET /v1/quotes': get('/v1/quotes'),
  'GET /v1/quotes/:id': {
    scopes: CUSTOMER_LINKED,
    linked: true,
    ok: 200,
    build: async (c) => ({ method: 'GET', url: `/v1/quotes/${await quote(c)}` }),
  },
  'PATCH /v1/quotes/:id': {
    scopes: CUSTOMER_LINKED,
    linked: true,
    ok: 200,
    build: async (c) => ({
      method: 'PATCH',
      url: `/v1/quotes/${await quote(c)}`,
      payload: { memo: 'revised' },
    }),
  },
  'POST /v1/quotes/:id/send': {
    scopes: CUSTOMER_LINKED,
    linked: true,
    ok: 200,
    build: async (c) => ({ method: 'POST', url: `/v1/quotes/${await quote(c)}/send` }),
  },
  'POST /v1/quotes/:id/accept': {
    scopes: CUSTOMER_LINKED,
    linked: true,
    ok: 200,
    build: async (c) => ({ method: 'POST', url: `/v1/quotes/${await sentQuote(c)}/accept` }),
  },
  'POST /v1/quotes/:id/decline': {
    scopes: CUSTOMER_LINKED,
    linked: true,
    ok: 200,
    build: async (c) => ({ method: 'POST', url: `/v1/quotes/${await sentQuote(c)}/decline` }),
  },
  // credit notes (record-level through their invoice's customer)
  'POST /v1/credit_notes': {
    scopes: CUSTOMER_LINKED.filter((s) => s !== 'other'),
    linked: true,
    ok: 200,
    build: async (c) => ({
      method: 'POST',
      url: '/v1/credit_notes',
      payload: { invoice: await openInvoice(c), amount: 100, reason: 'duplicate' },
    }),
  },
  'GET /v1/credit_notes': get('/v1/credit_notes'),
  'GET /v1/credit_notes/:id': {
    scopes: CUSTOMER_LINKED,
    linked: true,
    ok: 200,
    build: async (c) => ({ method: 'GET', url: `/v1/credit_notes/${await creditNote(c)}` }),
  },
  // payments and refunds (sales reps hold no payment permission at all)
  'POST /v1/payments': {
    scopes: ID,
    ok: 200,
    build: async (c) => ({
      method: 'POST',
      url: '/v1/payments',
      payload: { customer: await customer(c), amount: 500, currency: 'EUR', method: 'cash' },
    }),
  },
  'GET /v1/payments': get('/v1/payments'),
  'GET /v1/payments/:id': {
    scopes: ID,
    ok: 200,
    build: async (c) => ({ method: 'GET', url: `/v1/payments/${await payment(c)}` }),
  },
  'POST /v1/payments/:id/unapply': {
    scopes: ID,
    ok: 200,
    async build(c) {
      const inv = await openInvoice(c); // total 1,000
      const cust = (await send(owners[c.org] ?? null, { method: 'GET', url: `/v1/invoices/${inv}` })).json()
        .customer;
      return {
        method: 'POST',
        url: `/v1/payments/${await payment(c, 1000, inv, cust)}/unapply`,
        payload: { invoice: inv },
      };
    },
  },
  'POST /v1/customers/:id/apply_credit': {
    scopes: ID,
    ok: 200,
    async build(c) {
      const inv = await openInvoice(c);
      const owner = owners[c.org];
      assert.ok(owner);
      const cust = (await send(owner, { method: 'GET', url: `/v1/invoices/${inv}` })).json().customer;
      await payment(c, 1300, undefined, cust); // settles the invoice automatically: 300 left as credit
      const inv2 = await create(c.org, '/v1/invoices', {
        customer: cust,
        currency: 'EUR',
        lines: [{ description: 'More', quantity: '1', unit_amount: 500 }],
      });
      await send(owner, { method: 'POST', url: `/v1/invoices/${inv2}/finalize` });
      return {
        method: 'POST',
        url: `/v1/customers/${cust}/apply_credit`,
        payload: { invoice: inv2, amount: 100 },
      };
    },
  },
  'POST /v1/refunds': {
    scopes: ID,
    ok: 200,
    build: async (c) => ({
      method: 'POST',
      url: '/v1/refunds',
      payload: { payment: await payment(c), amount: 100, reason: 'matrix' },
    }),
  },
  'GET /v1/refunds': get('/v1/refunds'),
  'GET /v1/refunds/:id': {
    scopes: ID,
    ok: 200,
    build: async (c) => ({
      method: 'GET',
      url: `/v1/refunds/${await create(c.org, '/v1/refunds', { payment: await payment(c), amount: 100, reason: 'm' })}`,
    }),
  },
  // the owner requested these refunds; the cell's caller is a second person
  'POST /v1/refunds/:id/approve': {
    scopes: ID,
    ok: 200,
    build: async (c) => ({ method: 'POST', url: `/v1/refunds/${await pendingRefund(c)}/approve` }),
  },
  'POST /v1/refunds/:id/reject': {
    scopes: ID,
    ok: 200,
    build: async (c) => ({ method: 'POST', url: `/v1/refunds/${await pendingRefund(c)}/reject` }),
  },
  // outbound webhooks (webhooks:manage: owners and admins)
  'POST /v1/webhook_endpoints': {
    scopes: NONE,
    ok: 200,
    build: () => ({
      method: 'POST',
      url: '/v1/webhook_endpoints',
      payload: { url: 'https://93.184.215.14/hook', enabled_events: ['refund.approved'] },
    }),
  },
  'GET /v1/webhook_endpoints': get('/v1/webhook_endpoints'),
  'GET /v1/webhook_endpoints/:id': {
    scopes: ID,
    ok: 200,
    build: async (c) => ({ method: 'GET', url: `/v1/webhook_endpoints/${await webhookEndpoint(c)}` }),
  },
  'PATCH /v1/webhook_endpoints/:id': {
    scopes: ID,
    ok: 200,
    build: async (c) => ({
      method: 'PATCH',
      url: `/v1/webhook_endpoints/${await webhookEndpoint(c)}`,
      payload: { enabled: false },
    }),
  },
  'DELETE /v1/webhook_endpoints/:id': {
    scopes: ID,
    ok: 200,
    build: async (c) => ({ method: 'DELETE', url: `/v1/webhook_endpoints/${await webhookEndpoint(c)}` }),
  },
  'POST /v1/webhook_endpoints/:id/rotate_secret': {
    scopes: ID,
    ok: 200,
    build: async (c) => ({
      method: 'POST',
      url: `/v1/webhook_endpoints/${await webhookEndpoint(c)}/rotate_secret`,
    }),
  },
  'GET /v1/webhook_endpoints/:id/deliveries': {
    scopes: ID,
    ok: 200,
    build: async (c) => ({
      method: 'GET',
      url: `/v1/webhook_endpoints/${await webhookEndpoint(c)}/deliveries`,
    }),
  },
  'POST /v1/webhook_deliveries/:id/retry': {
    scopes: ID,
    ok: 200,
    build: async (c) => ({ method: 'POST', url: `/v1/webhook_deliveries/${await webhookDelivery(c)}/retry` }),
  },
  // gateway intake: public, authenticated by its signature (none here: the generic 400)
  'POST /v1/webhooks/gateway/:provider': {
    scopes: NONE,
    ok: 400,
    build: () => ({
      method: 'POST',
      url: '/v1/webhooks/gateway/stripe',
      payload: { id: `evt_matrix${++seq}`, type: 'payment_intent.succeeded', data: { object: {} } },
    }),
  },
  'GET /v1/settings/gateways/:provider': get('/v1/settings/gateways/stripe'),
  'PUT /v1/settings/gateways/:provider': {
    scopes: NONE,
    ok: 200,
    build: () => ({
      method: 'PUT',
      url: '/v1/settings/gateways/stripe',
      payload: { webhook_secret: `whsec_matrix_${++seq}_0123456789abcdef` },
    }),
  },
};

// ---------------------------------------------------------------------------------------------

function expected(auth: RouteAuth, rule: Rule, role: Role, scope: Scope): number {
  if ('public' in auth) return rule.ok;
  const actor: Actor = { kind: 'user', id: 'usr_x', userId: 'usr_x', orgId: orgA, role };
  if (!can(actor, auth.permission)) return 403;
  if (scope === 'other') return 404;
  if (rule.linked && role === 'sales_rep' && scope !== 'assigned') return 404;
  return rule.ok;
}

before(async () => {
  t = await createTestDatabase();
  deps = testIdentity(t, new TestClock());
  app = await buildTestApp(t, { identity: deps });
  passwordHash = await deps.passwords.hash(PASSWORD);
  orgA = (await createOrg(t.db, { name: 'Matrix A', baseCurrency: 'EUR' })).id;
  orgB = (await createOrg(t.db, { name: 'Matrix B', baseCurrency: 'EUR' })).id;
  for (const org of [orgA, orgB]) owners[org] = await sessionFor(await member(org, 'owner'), org);
});
after(async () => {
  await app.close();
  await t.drop();
});

describe('permission matrix', () => {
  it('every registered route has a rule', () => {
    const missing = app.routeTable.map((r) => `${r.method} ${r.url}`).filter((k) => !(k in RULES));
    assert.deepEqual(missing, [], `routes without a rule in the permission matrix: ${missing.join(', ')}`);
  });

  it('anonymous callers get 401 on every non-public route, and the public routes answer as specified', async () => {
    const failures: string[] = [];
    for (const route of app.routeTable) {
      const key = `${route.method} ${route.url}`;
      const rule = RULES[key];
      if (!rule) continue;
      const req = await rule.build({
        role: 'owner',
        scope: rule.scopes[0] ?? 'none',
        me: owners[orgA] as Session,
        org: orgA,
        assignee: null,
      });
      const res = await send(null, req);
      const want = 'public' in route.auth ? rule.ok : 401;
      if (res.statusCode !== want)
        failures.push(`${key} anonymous: ${res.statusCode} (want ${want}) ${res.body.slice(0, 200)}`);
    }
    assert.deepEqual(failures, []);
  });

  it('every route × every role × every record scope gives the exact status', async () => {
    const failures: string[] = [];
    const otherRep = await member(orgA, 'sales_rep');
    let cells = 0;
    for (const route of app.routeTable) {
      if ('public' in route.auth) continue;
      const key = `${route.method} ${route.url}`;
      const rule = RULES[key];
      if (!rule) continue;
      // The cells of one route are independent (each has its own member and records): run
      // them side by side to keep the matrix quick.
      const pairs = ROLES.flatMap((role) => rule.scopes.map((scope) => [role, scope] as const));
      await Promise.all(
        pairs.map(async ([role, scope]) => {
          const userId = await member(orgA, role);
          const me = await sessionFor(userId, orgA);
          const cell: Cell = {
            role,
            scope,
            me,
            org: scope === 'other' ? orgB : orgA,
            assignee: scope === 'assigned' ? userId : scope === 'own' && rule.linked ? otherRep : null,
          };
          const req = await rule.build(cell);
          const res = await send(me, req);
          const want = expected(route.auth, rule, role, scope);
          cells++;
          if (res.statusCode !== want) {
            failures.push(
              `${key} as ${role} (${scope}): ${res.statusCode}, want ${want}: ${res.body.slice(0, 160)}`,
            );
          }
        }),
      );
    }
    assert.ok(cells > 300, `only ${cells} cells`);
    assert.deepEqual(failures, []);
  });

  it("API keys act with their creator's role: the same permission outcome, no CSRF needed", async () => {
    const failures: string[] = [];
    const reads = app.routeTable.filter(
      (r) =>
        r.method === 'GET' && !('public' in r.auth) && !r.url.includes(':') && r.url !== '/v1/openapi.json',
    );
    for (const role of ROLES) {
      const userId = await member(orgA, role);
      const { id, secret } = await createApiKeyAsOperator(deps, orgA, { name: `key of a ${role}` });
      // attribute the key to the member (the owner connection may; the application role may not)
      await t.db.updateTable('api_keys').set({ created_by: userId }).where('id', '=', id).execute();
      for (const route of reads) {
        if ('public' in route.auth) continue;
        const req = await RULES[`GET ${route.url}`]?.build({
          role,
          scope: 'none',
          me: owners[orgA] as Session,
          org: orgA,
          assignee: null,
        });
        if (!req) continue;
        const res = await app.inject({
          method: 'GET',
          url: req.url,
          headers: { authorization: `Bearer ${secret}` },
        });
        const allowed = can({ kind: 'api_key', id, orgId: orgA, role }, route.auth.permission);
        const want = allowed && !RULES[`GET ${route.url}`]?.userOnly ? 200 : 403;
        if (res.statusCode !== want)
          failures.push(`GET ${route.url} with a ${role}'s key: ${res.statusCode}, want ${want}`);
      }
      const write = await app.inject({
        method: 'PUT',
        url: '/v1/settings/ui.theme',
        headers: { authorization: `Bearer ${secret}` },
        payload: { value: 'x' },
      });
      const want = can({ kind: 'api_key', id, orgId: orgA, role }, 'settings:write') ? 200 : 403;
      if (write.statusCode !== want)
        failures.push(`PUT /v1/settings/:key with a ${role}'s key: ${write.statusCode}, want ${want}`);
    }
    assert.deepEqual(failures, []);
  });
});
