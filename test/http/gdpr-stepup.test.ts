import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { IdentityDeps } from '../../src/app/sessions.js';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import {
  cookiesFrom,
  MINUTE,
  type SeededOrg,
  seedOrg,
  TestClock,
  testIdentity,
} from '../helpers/identity.js';

/**
 * Export and erasure are sensitive (DESIGN.md §5): a session must have authenticated within
 * the last 5 minutes, through the real session stack (cookies, CSRF, step-up).
 */

let t: TestDatabase;
let clock: TestClock;
let deps: IdentityDeps;
let app: Awaited<ReturnType<typeof buildTestApp>>;
let a: SeededOrg;

before(async () => {
  t = await createTestDatabase();
  clock = new TestClock();
  deps = testIdentity(t, clock);
  app = await buildTestApp(t, { identity: deps });
  a = await seedOrg(deps, 'Step-up Org');
});
after(async () => {
  await app.close();
  await t.drop();
});

async function session() {
  const r = await app.inject({
    method: 'POST',
    url: '/v1/auth/login',
    payload: { email: a.users.owner.email, password: a.users.owner.password },
  });
  assert.equal(r.statusCode, 200, r.body);
  return cookiesFrom(r.headers['set-cookie']);
}

const call = (c: { cookie: string; csrf: string }, method: 'GET' | 'POST', url: string, payload?: object) =>
  app.inject({
    method,
    url,
    headers: { cookie: c.cookie, 'x-csrf-token': c.csrf },
    ...(payload ? { payload } : {}),
  });

describe('step-up for export and erasure', () => {
  it('an authentication older than 5 minutes must be confirmed before export or erasure', async () => {
    let c = await session();
    const created = await call(c, 'POST', '/v1/customers', {
      name: 'Stepped Person',
      email: 'step@up.example',
    });
    assert.equal(created.statusCode, 200, created.body);
    const id = created.json().id as string;
    clock.advance(6 * MINUTE);
    // the session is alive (idle 15 min) but its authentication is stale
    assert.equal((await call(c, 'GET', `/v1/customers/${id}`)).statusCode, 200);
    const exp = await call(c, 'GET', `/v1/customers/${id}/export`);
    assert.equal(exp.statusCode, 403, exp.body);
    assert.equal(exp.json().error.code, 'step_up_required');
    const er = await call(c, 'POST', `/v1/customers/${id}/erase`, { reason: 'data_subject_request' });
    assert.equal(er.statusCode, 403, er.body);
    assert.equal(er.json().error.code, 'step_up_required');
    // nothing was erased
    assert.equal((await call(c, 'GET', `/v1/customers/${id}`)).json().name, 'Stepped Person');
    const up = await call(c, 'POST', '/v1/auth/step_up', { password: a.users.owner.password });
    assert.equal(up.statusCode, 200, up.body);
    c = cookiesFrom(up.headers['set-cookie']);
    const exp2 = await call(c, 'GET', `/v1/customers/${id}/export`);
    assert.equal(exp2.statusCode, 200, exp2.body);
    assert.equal(exp2.json().customer.email, 'step@up.example');
    const er2 = await call(c, 'POST', `/v1/customers/${id}/erase`, { reason: 'data_subject_request' });
    assert.equal(er2.statusCode, 200, er2.body);
    assert.equal((await call(c, 'GET', `/v1/customers/${id}`)).json().erased, true);
  });
});
