import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createOrg } from '../../src/app/orgs.js';
import { systemClock } from '../../src/app/ports.js';
import type { Actor, Role } from '../../src/domain/permissions.js';
import type { BuiltApp } from '../../src/http/app.js';
import { buildTestApp } from '../helpers/app.js';
import { testCipher } from '../helpers/crypto.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let t: TestDatabase;
let app: BuiltApp;
let org: string;

function headerActor(value: string | undefined): Actor | null {
  const [orgId, role, userId] = (value ?? '').split(':');
  if (!orgId || !role || !userId) return null;
  return { kind: 'api_key', id: userId, orgId, role: role as Role };
}
const as = (user: string, key?: string) => ({
  'x-test-actor': `${org}:owner:${user}`,
  ...(key ? { 'idempotency-key': key } : {}),
});

before(async () => {
  t = await createTestDatabase();
  org = (await createOrg(t.db, { name: 'A', baseCurrency: 'EUR' })).id;
  app = await buildTestApp(t, {
    authenticate: async (req) => headerActor(req.headers['x-test-actor'] as string | undefined),
    billing: { db: t.db, cipher: testCipher(), clock: systemClock },
  });
});
after(async () => {
  await app.close();
  await t.drop();
});

async function count(name: string): Promise<number> {
  const r = await sql<{
    n: number;
  }>`SELECT count(*)::int AS n FROM customers WHERE display_name = ${name}`.execute(t.db);
  return r.rows[0]?.n ?? -1;
}

describe('Idempotency-Key', () => {
  it('replays the first response for the same key and body, creating one object', async () => {
    const body = { name: 'Idem Person', display_name: 'idem-1' };
    const a = await app.inject({
      method: 'POST',
      url: '/v1/customers',
      headers: as('key_a', 'k-1'),
      payload: body,
    });
    const b = await app.inject({
      method: 'POST',
      url: '/v1/customers',
      headers: as('key_a', 'k-1'),
      payload: body,
    });
    assert.equal(a.statusCode, 200);
    assert.equal(b.statusCode, 200);
    assert.equal(b.json().id, a.json().id);
    assert.equal(b.headers['idempotent-replayed'], 'true');
    assert.equal(a.headers['idempotent-replayed'], undefined);
    assert.equal(await count('idem-1'), 1);
  });

  it('keeps the stored response encrypted', async () => {
    const row = await sql<{
      response_enc: string;
    }>`SELECT response_enc FROM idempotency_keys WHERE key = 'k-1'`.execute(t.db);
    assert.match(row.rows[0]?.response_enc ?? '', /^bv1:/);
    assert.doesNotMatch(row.rows[0]?.response_enc ?? '', /Idem Person/);
  });

  it('refuses the same key with a different body, or from another caller (409)', async () => {
    const other = await app.inject({
      method: 'POST',
      url: '/v1/customers',
      headers: as('key_a', 'k-1'),
      payload: { name: 'Someone Else', display_name: 'idem-1' },
    });
    assert.equal(other.statusCode, 409);
    assert.equal(other.json().error.code, 'idempotency_key_reused');
    const stranger = await app.inject({
      method: 'POST',
      url: '/v1/customers',
      headers: as('key_b', 'k-1'),
      payload: { name: 'Idem Person', display_name: 'idem-1' },
    });
    assert.equal(stranger.statusCode, 409);
    assert.doesNotMatch(stranger.body, /Idem Person/, 'never leaks the first response to another caller');
    assert.equal(await count('idem-1'), 1);
  });

  it('concurrent duplicates never create a second object', async () => {
    const body = { name: 'Racer', display_name: 'idem-race' };
    const replies = await Promise.all(
      Array.from({ length: 20 }, () =>
        app.inject({ method: 'POST', url: '/v1/customers', headers: as('key_a', 'race-1'), payload: body }),
      ),
    );
    const ids = new Set(replies.filter((r) => r.statusCode === 200).map((r) => r.json().id));
    for (const r of replies) assert.ok(r.statusCode === 200 || r.statusCode === 409, `${r.statusCode}`);
    assert.equal(ids.size, 1);
    assert.equal(await count('idem-race'), 1);
  });

  it('rejects a malformed key and leaves requests without a key alone', async () => {
    const bad = await app.inject({
      method: 'POST',
      url: '/v1/customers',
      headers: as('key_a', 'x'.repeat(256)),
      payload: { name: 'A' },
    });
    assert.equal(bad.statusCode, 400);
    const one = await app.inject({
      method: 'POST',
      url: '/v1/customers',
      headers: as('key_a'),
      payload: { name: 'N', display_name: 'idem-none' },
    });
    const two = await app.inject({
      method: 'POST',
      url: '/v1/customers',
      headers: as('key_a'),
      payload: { name: 'N', display_name: 'idem-none' },
    });
    assert.notEqual(one.json().id, two.json().id);
  });
});
