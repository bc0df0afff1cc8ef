// API-key authentication reads through api_key_lookup() (migration 0014) in one round trip. The
// function must run as the application role under Row-Level Security, leave the connection as
// it found it, be callable by nobody else, and answer exactly as the transaction it replaced.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { authenticateApiKey, createApiKeyAsOperator } from '../../src/app/api-keys.js';
import { createOrg } from '../../src/app/orgs.js';
import { hashSecret } from '../../src/app/sessions.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { testIdentity } from '../helpers/identity.js';

let t: TestDatabase;

before(async () => {
  t = await createTestDatabase();
});
after(async () => {
  await t.drop();
});

describe('api_key_lookup()', () => {
  it('runs as billvault_app with the platform scope, only for the call', async () => {
    const r = await sql<{ proconfig: string[]; prosecdef: boolean; public_exec: boolean; app_exec: boolean }>`
      SELECT p.proconfig, p.prosecdef,
        has_function_privilege('public', p.oid, 'EXECUTE') AS public_exec,
        has_function_privilege('billvault_app', p.oid, 'EXECUTE') AS app_exec
      FROM pg_proc p WHERE p.proname = 'api_key_lookup'`.execute(t.db);
    const fn = r.rows[0];
    assert.ok(fn, 'the function exists');
    assert.equal(fn.prosecdef, false, 'SECURITY INVOKER: it never runs with its owner’s rights');
    assert.ok(fn.proconfig.includes('role=billvault_app'));
    assert.ok(fn.proconfig.includes('app.platform=on'));
    assert.equal(fn.public_exec, false, 'EXECUTE is not granted to PUBLIC');
    assert.equal(fn.app_exec, false, 'nor to the application role');

    const deps = testIdentity(t);
    const org = await createOrg(t.db, { name: 'Keys', baseCurrency: 'EUR' });
    const key = await createApiKeyAsOperator(deps, org.id, { name: 'k' });
    const found = await sql<{ org_id: string }>`
      SELECT org_id FROM api_key_lookup(${hashSecret(key.secret)}, now())`.execute(t.db);
    assert.deepEqual(
      found.rows.map((r) => r.org_id),
      [org.id],
    );
    // The caller's session is untouched afterwards.
    const afterCall = await sql<{ who: string; platform: string | null; org: string | null }>`
      SELECT current_user AS who, current_setting('app.platform', true) AS platform,
             current_setting('app.org_id', true) AS org`.execute(t.db);
    assert.notEqual(afterCall.rows[0]?.who, 'billvault_app');
    assert.ok(!afterCall.rows[0]?.platform);
  });

  it('answers like the transaction it replaced: active keys only', async () => {
    const deps = testIdentity(t);
    const org = await createOrg(t.db, { name: 'Keys 2', baseCurrency: 'EUR' });
    const key = await createApiKeyAsOperator(deps, org.id, { name: 'k2', scopes: ['invoices:read'] });
    const actor = await authenticateApiKey(deps, key.secret);
    assert.equal(actor?.orgId, org.id);
    assert.equal(actor?.kind, 'api_key');
    assert.deepEqual([...(actor?.scopes ?? [])], ['invoices:read']);
    assert.equal(await authenticateApiKey(deps, `${key.secret}x`), null);
    assert.equal(await authenticateApiKey(deps, "bv_live_' OR 1=1 --"), null);
    await sql`UPDATE api_keys SET revoked_at = now() WHERE id = ${key.id}`.execute(t.db);
    assert.equal(await authenticateApiKey(deps, key.secret), null, 'a revoked key is refused at once');
    const other = await createApiKeyAsOperator(deps, org.id, { name: 'k3' });
    const past = new Date(deps.clock.now().getTime() - 1000);
    await sql`UPDATE api_keys SET expires_at = ${past} WHERE id = ${other.id}`.execute(t.db);
    assert.equal(await authenticateApiKey(deps, other.secret), null, 'an expired key is refused');
  });
});
