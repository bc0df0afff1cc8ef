import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import { createOrg } from '../../src/app/orgs.js';
import { DomainError } from '../../src/domain/errors.js';
import type { Actor, Role } from '../../src/domain/permissions.js';
import type { BuiltApp } from '../../src/http/app.js';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let t: TestDatabase;
let app: BuiltApp;
let orgA: string;
let orgB: string;

/** Test credentials: `x-test-actor: <org>:<role>`; the real authenticator arrives with identity. */
function headerActor(value: string | undefined): Actor | null {
  if (!value) return null;
  const [orgId, role] = value.split(':');
  if (!orgId || !role) return null;
  return { kind: 'user', id: 'usr_test', userId: 'usr_test', orgId, role: role as Role };
}

const as = (org: string, role: Role) => ({ 'x-test-actor': `${org}:${role}` });

before(async () => {
  t = await createTestDatabase();
  orgA = (await createOrg(t.db, { name: 'A', baseCurrency: 'EUR' })).id;
  orgB = (await createOrg(t.db, { name: 'B', baseCurrency: 'JPY' })).id;
  app = await buildTestApp(t, {
    authenticate: async (req) => headerActor(req.headers['x-test-actor'] as string | undefined),
    plugins: [
      (a) => {
        a.post(
          '/v1/_test/echo',
          {
            config: { auth: { permission: 'org:read' } },
            schema: { body: z.object({ name: z.string().min(1).max(10), count: z.number().int() }) },
          },
          async (req) => req.body,
        );
        a.get('/v1/_test/boom', { config: { auth: { permission: 'org:read' } } }, async () => {
          throw new Error('secret internals: password=hunter2');
        });
        a.get('/v1/_test/conflict', { config: { auth: { permission: 'org:read' } } }, async () => {
          throw new DomainError('conflict', 'Already done.');
        });
      },
    ],
  });
});
after(async () => {
  await app.close();
  await t.drop();
});

describe('system endpoints', () => {
  it('GET /healthz and /readyz answer without credentials', async () => {
    const h = await app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(h.statusCode, 200);
    assert.deepEqual(h.json(), { status: 'ok' });
    const r = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(r.statusCode, 200);
    assert.deepEqual(r.json().checks, { database: true, migrations: 'current' });
  });

  it('/readyz is 503 when the database does not answer', async () => {
    const broken = await buildTestApp(t, {
      readiness: async () => {
        throw new Error('connection refused');
      },
    });
    const r = await broken.inject({ method: 'GET', url: '/readyz' });
    assert.equal(r.statusCode, 503);
    assert.equal(r.json().status, 'not_ready');
    await broken.close();
  });

  it('serves an OpenAPI 3.1 document generated from the route schemas', async () => {
    const r = await app.inject({ method: 'GET', url: '/v1/openapi.json' });
    assert.equal(r.statusCode, 200);
    const doc = r.json();
    assert.equal(doc.openapi, '3.1.0');
    assert.ok(doc.paths['/v1/org']);
    const body = doc.paths['/v1/_test/echo'].post.requestBody.content['application/json'].schema;
    assert.deepEqual(body.required.sort(), ['count', 'name']);
    assert.equal(doc.paths['/healthz'], undefined); // operational endpoints stay out of the API doc
  });

  it('sends the security headers and a request id on every reply', async () => {
    for (const url of ['/healthz', '/v1/org', '/nope']) {
      const r = await app.inject({ method: 'GET', url });
      assert.equal(r.headers['cache-control'], 'no-store');
      assert.equal(r.headers['x-content-type-options'], 'nosniff');
      assert.equal(r.headers['referrer-policy'], 'no-referrer');
      assert.match(String(r.headers['content-security-policy']), /frame-ancestors 'none'/);
      assert.doesNotMatch(String(r.headers['content-security-policy']), /unsafe-inline/);
      assert.match(String(r.headers['x-request-id']), /^req_[0-9a-z]{32}$/);
      assert.equal(r.headers['strict-transport-security'], undefined); // only with TLS
    }
  });

  it('ignores a client-supplied request id', async () => {
    const r = await app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'evil\nline' } });
    assert.match(String(r.headers['x-request-id']), /^req_/);
  });
});

describe('request pipeline', () => {
  it('401 without credentials, in the error shape', async () => {
    const r = await app.inject({ method: 'GET', url: '/v1/org' });
    assert.equal(r.statusCode, 401);
    const e = r.json().error;
    assert.equal(e.code, 'unauthenticated');
    assert.equal(e.type, 'authentication_error');
    assert.equal(e.request_id, r.headers['x-request-id']);
  });

  it('authenticates before validating: no credentials + bad body is still 401', async () => {
    const r = await app.inject({ method: 'POST', url: '/v1/_test/echo', payload: { name: 5 } });
    assert.equal(r.statusCode, 401);
  });

  it('200 with a permitted role; reads only its own org', async () => {
    const r = await app.inject({ method: 'GET', url: '/v1/org', headers: as(orgA, 'viewer') });
    assert.equal(r.statusCode, 200);
    assert.equal(r.json().id, orgA);
    const rb = await app.inject({ method: 'GET', url: '/v1/org', headers: as(orgB, 'viewer') });
    assert.equal(rb.json().id, orgB);
    assert.equal(rb.json().base_currency, 'JPY');
  });

  it('403 for a role without the permission, and the refusal is audited', async () => {
    const r = await app.inject({
      method: 'PUT',
      url: '/v1/settings/invoice.footer',
      headers: as(orgA, 'viewer'),
      payload: { value: 'x' },
    });
    assert.equal(r.statusCode, 403);
    assert.equal(r.json().error.code, 'forbidden');
    const rows = await t.db
      .selectFrom('audit_events')
      .selectAll()
      .where('org_id', '=', orgA)
      .where('action', '=', 'authz.denied')
      .execute();
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.outcome, 'denied');
    assert.equal(rows[0]?.request_id, r.headers['x-request-id']);
  });

  it('writes are audited in the same transaction and stay inside the org', async () => {
    const put = await app.inject({
      method: 'PUT',
      url: '/v1/settings/invoice.footer',
      headers: as(orgA, 'admin'),
      payload: { value: { text: 'Thanks' } },
    });
    assert.equal(put.statusCode, 200);
    const mine = await app.inject({
      method: 'GET',
      url: '/v1/settings/invoice.footer',
      headers: as(orgA, 'admin'),
    });
    assert.deepEqual(mine.json().value, { text: 'Thanks' });
    const theirs = await app.inject({
      method: 'GET',
      url: '/v1/settings/invoice.footer',
      headers: as(orgB, 'admin'),
    });
    assert.equal(theirs.json().value, null);
    const ev = await t.db
      .selectFrom('audit_events')
      .selectAll()
      .where('action', '=', 'setting.updated')
      .executeTakeFirstOrThrow();
    assert.equal(ev.org_id, orgA);
    assert.equal(ev.target_id, 'invoice.footer');
    assert.equal(ev.request_id, put.headers['x-request-id']);
  });

  it('422 with the offending parameter for invalid input', async () => {
    const r = await app.inject({
      method: 'POST',
      url: '/v1/_test/echo',
      headers: as(orgA, 'viewer'),
      payload: { name: 'x'.repeat(11), count: 1 },
    });
    assert.equal(r.statusCode, 422);
    assert.equal(r.json().error.code, 'validation_failed');
    assert.equal(r.json().error.param, 'name');
    const p = await app.inject({
      method: 'PUT',
      url: "/v1/settings/x'%3B%20DROP%20TABLE%20orgs%3B--",
      headers: as(orgA, 'admin'),
      payload: { value: 1 },
    });
    assert.equal(p.statusCode, 422);
  });

  it('400 for malformed JSON, 413 for an oversized body', async () => {
    const bad = await app.inject({
      method: 'POST',
      url: '/v1/_test/echo',
      headers: { ...as(orgA, 'viewer'), 'content-type': 'application/json' },
      payload: '{"name": "a",',
    });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.code, 'invalid_json');
    const big = await app.inject({
      method: 'POST',
      url: '/v1/_test/echo',
      headers: { ...as(orgA, 'viewer'), 'content-type': 'application/json' },
      payload: JSON.stringify({ name: 'a', count: 1, pad: 'x'.repeat(2 * 1024 * 1024) }),
    });
    assert.equal(big.statusCode, 413);
    assert.equal(big.json().error.code, 'payload_too_large');
  });

  it('500 reveals nothing but a request id', async () => {
    const r = await app.inject({ method: 'GET', url: '/v1/_test/boom', headers: as(orgA, 'viewer') });
    assert.equal(r.statusCode, 500);
    assert.deepEqual(Object.keys(r.json().error).sort(), ['code', 'message', 'request_id', 'type']);
    assert.doesNotMatch(r.body, /hunter2|internals|stack|\.ts/);
  });

  it('domain errors map through the one status table', async () => {
    const r = await app.inject({ method: 'GET', url: '/v1/_test/conflict', headers: as(orgA, 'viewer') });
    assert.equal(r.statusCode, 409);
    assert.equal(r.json().error.code, 'conflict');
  });

  it('404 for unknown routes, in the error shape', async () => {
    const r = await app.inject({ method: 'GET', url: '/v1/nothing-here' });
    assert.equal(r.statusCode, 404);
    assert.equal(r.json().error.code, 'not_found');
  });
});

describe('deny by default', () => {
  it('a route without a declared permission fails to register', async () => {
    await assert.rejects(
      buildTestApp(t, {
        plugins: [(a) => a.get('/v1/forgotten', async () => ({ leaked: true }))],
      }),
      /declares no permission/,
    );
  });

  it('every registered route is in the route table with its declaration', () => {
    const urls = app.routeTable.map((r) => `${r.method} ${r.url}`);
    assert.ok(urls.includes('GET /v1/org'));
    for (const r of app.routeTable) assert.ok('public' in r.auth || 'permission' in r.auth);
    const publicRoutes = app.routeTable.filter((r) => 'public' in r.auth).map((r) => r.url);
    for (const url of ['/healthz', '/readyz', '/v1/openapi.json']) assert.ok(publicRoutes.includes(url));
    // Anything else public must be a credential ceremony or a signature-verified webhook.
    for (const url of publicRoutes) {
      assert.match(url, /^(\/healthz|\/readyz|\/v1\/openapi\.json|\/v1\/auth\/.+|\/v1\/webhooks\/.+)$/, url);
    }
  });
});
