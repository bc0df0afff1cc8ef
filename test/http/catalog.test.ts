import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { inOrg } from '../../src/adapters/db/index.js';
import { createOrg } from '../../src/app/orgs.js';
import { systemClock } from '../../src/app/ports.js';
import type { Actor, Role } from '../../src/domain/permissions.js';
import type { BuiltApp } from '../../src/http/app.js';
import { buildTestApp } from '../helpers/app.js';
import { testCipher } from '../helpers/crypto.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let t: TestDatabase;
let app: BuiltApp;
let orgA: string;
let orgB: string;

/** Test credentials `x-test-actor: org:role:user`; the identity module has its own tests. */
function headerActor(value: string | undefined): Actor | null {
  const [orgId, role, userId] = (value ?? '').split(':');
  if (!orgId || !role || !userId) return null;
  return { kind: 'user', id: userId, userId, orgId, role: role as Role };
}
const as = (org: string, role: Role) => ({ 'x-test-actor': `${org}:${role}:usr_${role}` });

type Json = Record<string, unknown>;

function post(url: string, payload: unknown, org = orgA, role: Role = 'owner', extra: Json = {}) {
  return app.inject({
    method: 'POST',
    url,
    headers: { ...as(org, role), ...extra } as Record<string, string>,
    payload: payload as Json,
  });
}
function patch(url: string, payload: unknown, org = orgA, role: Role = 'owner') {
  return app.inject({ method: 'PATCH', url, headers: as(org, role), payload: payload as Json });
}
function get(url: string, org = orgA, role: Role = 'owner') {
  return app.inject({ method: 'GET', url, headers: as(org, role) });
}

/** Asserts an error reply: status, code and (when given) the offending param. */
function assertError(
  r: { statusCode: number; json(): { error: Json }; body: string },
  status: number,
  code: string,
  param?: string,
) {
  assert.equal(r.statusCode, status, r.body);
  const e = r.json().error;
  assert.equal(e.code, code, r.body);
  if (param !== undefined) assert.equal(e.param, param, r.body);
  assert.match(String(e.request_id), /^req_/);
}

async function auditCount(action: string, targetId: string): Promise<number> {
  const r = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM audit_events WHERE action = ${action} AND target_id = ${targetId}`.execute(
    t.db,
  );
  return r.rows[0]?.n ?? -1;
}

const VAT20 = { name: 'VAT 20%', percentage: '20.0', inclusive: false, category: 'S' };

before(async () => {
  t = await createTestDatabase();
  orgA = (await createOrg(t.db, { name: 'A', baseCurrency: 'EUR' })).id;
  orgB = (await createOrg(t.db, { name: 'B', baseCurrency: 'EUR' })).id;
  app = await buildTestApp(t, {
    authenticate: async (req) => headerActor(req.headers['x-test-actor'] as string | undefined),
    billing: { db: t.db, cipher: testCipher(), clock: systemClock },
  });
});
after(async () => {
  await app.close();
  await t.drop();
});

describe('tax rates', () => {
  let vat20: string;

  it('creates a rate with the percentage normalised, audited in its transaction', async () => {
    const r = await post('/v1/tax_rates', { ...VAT20, jurisdiction: 'DE' });
    assert.equal(r.statusCode, 200, r.body);
    const rate = r.json();
    vat20 = rate.id;
    assert.match(rate.id, /^txr_[0-9a-z]{32}$/);
    assert.deepEqual(
      { ...rate, id: undefined, created_at: undefined },
      {
        id: undefined,
        object: 'tax_rate',
        name: 'VAT 20%',
        percentage: '20',
        inclusive: false,
        compound: false,
        category: 'S',
        exemption_reason: null,
        exemption_reason_code: null,
        jurisdiction: 'DE',
        active: true,
        created_at: undefined,
      },
    );
    assert.equal(await auditCount('tax_rate.created', vat20), 1);
    const ev = await sql<{ actor_id: string; org_id: string }>`
      SELECT actor_id, org_id FROM audit_events WHERE target_id = ${vat20}`.execute(t.db);
    assert.deepEqual(ev.rows[0], { actor_id: 'usr_owner', org_id: orgA });
  });

  it('keeps up to six decimals exactly and accepts the EN 16931 exempt categories with a reason', async () => {
    const r = await post('/v1/tax_rates', { ...VAT20, name: 'odd', percentage: '7.125000' });
    assert.equal(r.json().percentage, '7.125');
    const tiny = await post('/v1/tax_rates', { ...VAT20, name: 'tiny', percentage: '0.000001' });
    assert.equal(tiny.json().percentage, '0.000001');
    const exempt = await post(
      '/v1/tax_rates',
      {
        name: 'Exempt',
        percentage: '0',
        inclusive: false,
        category: 'E',
        exemption_reason: '  Article 132 Directive 2006/112/EC ',
        exemption_reason_code: 'VATEX-EU-132',
      },
      orgA,
      'finance_manager',
    );
    assert.equal(exempt.statusCode, 200, exempt.body);
    assert.equal(exempt.json().exemption_reason, 'Article 132 Directive 2006/112/EC');
    const rc = await post('/v1/tax_rates', {
      name: 'Reverse charge',
      percentage: '0',
      inclusive: false,
      category: 'AE',
      exemption_reason_code: 'VATEX-EU-AE',
    });
    assert.equal(rc.statusCode, 200, rc.body);
    const compound = await post('/v1/tax_rates', {
      name: 'QST',
      percentage: '9.975',
      inclusive: false,
      category: 'S',
      compound: true,
      jurisdiction: 'CA-QC',
    });
    assert.equal(compound.json().compound, true);
  });

  it('refuses invalid terms with the offending param (rules of src/domain/tax.ts)', async () => {
    const cases: [Json, string, string][] = [
      [{ percentage: 'abc' }, 'tax_rate_invalid', 'percentage'],
      [{ percentage: '7.1234567' }, 'tax_rate_invalid', 'percentage'],
      [{ percentage: '100.5' }, 'tax_rate_invalid', 'percentage'],
      [{ percentage: '-5' }, 'tax_rate_invalid', 'percentage'],
      [{ percentage: '1e1' }, 'tax_rate_invalid', 'percentage'],
      [{ percentage: ' 20' }, 'tax_rate_invalid', 'percentage'],
      [{ percentage: '.5' }, 'tax_rate_invalid', 'percentage'],
      [{ percentage: '0' }, 'tax_rate_invalid', 'percentage'], // S must be above 0
      [{ percentage: 20 }, 'validation_failed', 'percentage'], // a string, never a float
      [{ category: 'Z', percentage: '5' }, 'tax_rate_invalid', 'percentage'],
      [{ category: 'E', percentage: '0' }, 'tax_rate_invalid', 'exemption_reason'],
      [{ exemption_reason: 'not exempt at all' }, 'tax_rate_invalid', 'exemption_reason'],
      [{ compound: true, inclusive: true }, 'tax_rate_invalid', 'compound'],
      [{ category: 'X' }, 'validation_failed', 'category'],
      [{ inclusive: 'false' }, 'validation_failed', 'inclusive'],
      [{ name: '' }, 'validation_failed', 'name'],
      [{ name: '   ' }, 'validation_failed', 'name'],
      [{ name: 'x'.repeat(101) }, 'validation_failed', 'name'],
      [{ jurisdiction: 'x'.repeat(51) }, 'validation_failed', 'jurisdiction'],
    ];
    for (const [override, code, param] of cases) {
      const r = await post('/v1/tax_rates', { ...VAT20, ...override });
      assertError(r, 422, code, param);
    }
    const { inclusive: _omit, ...noInclusive } = VAT20;
    assertError(await post('/v1/tax_rates', noInclusive), 422, 'validation_failed', 'inclusive');
    assertError(await post('/v1/tax_rates', { ...VAT20, rate: '20' }), 422, 'validation_failed');
  });

  it('reads one rate; another org, an unknown id and a malformed id are refused', async () => {
    const r = await get(`/v1/tax_rates/${vat20}`, orgA, 'viewer');
    assert.equal(r.statusCode, 200);
    assert.equal(r.json().percentage, '20');
    assertError(await get(`/v1/tax_rates/${vat20}`, orgB), 404, 'not_found');
    assertError(await get(`/v1/tax_rates/txr_${'0'.repeat(32)}`), 404, 'not_found');
    assertError(await get('/v1/tax_rates/txr_1%27%20OR%201=1'), 422, 'validation_failed');
    assertError(await patch(`/v1/tax_rates/${vat20}`, { name: 'mine now' }, orgB), 404, 'not_found');
  });

  it('renames and deactivates, but never changes a rate’s terms', async () => {
    const renamed = await patch(`/v1/tax_rates/${vat20}`, { name: 'Standard rate DE' });
    assert.equal(renamed.statusCode, 200, renamed.body);
    assert.equal(renamed.json().name, 'Standard rate DE');
    for (const [field, value] of [
      ['percentage', '19'],
      ['inclusive', true],
      ['category', 'Z'],
      ['compound', true],
      ['exemption_reason', 'x'],
      ['exemption_reason_code', null],
      ['jurisdiction', 'FR'],
    ] as const) {
      const r = await patch(`/v1/tax_rates/${vat20}`, { name: 'sneaky', [field]: value });
      assertError(r, 422, 'validation_failed', field);
      assert.match(r.json().error.message, /cannot change once created.*Only name and active/);
    }
    assertError(await patch(`/v1/tax_rates/${vat20}`, { rate: '19' }), 422, 'validation_failed');
    const after = await get(`/v1/tax_rates/${vat20}`);
    assert.equal(after.json().percentage, '20');
    assert.equal(after.json().name, 'Standard rate DE');
    // The database refuses too: the application role may update only name and active.
    await assert.rejects(
      inOrg(t.db, orgA, (tx) => sql`UPDATE tax_rates SET percentage = '19' WHERE id = ${vat20}`.execute(tx)),
      /permission denied/,
    );
    assert.equal(await auditCount('tax_rate.updated', vat20), 1);
  });

  it('lists newest first with keyset pagination and an active filter', async () => {
    const off = await post('/v1/tax_rates', { ...VAT20, name: 'retired' });
    const offId = off.json().id;
    const d = await patch(`/v1/tax_rates/${offId}`, { active: false });
    assert.equal(d.json().active, false);
    const all = await get('/v1/tax_rates?limit=100');
    assert.equal(all.statusCode, 200);
    const ids = all.json().data.map((r: Json) => r.id);
    assert.equal(all.json().object, 'list');
    assert.equal(all.json().has_more, false);
    assert.ok(ids.includes(offId));
    assert.ok(ids.includes(vat20));
    const active = await get('/v1/tax_rates?active=true&limit=100');
    assert.ok(!active.json().data.some((r: Json) => r.id === offId));
    assert.ok(active.json().data.every((r: Json) => r.active === true));
    const inactive = await get('/v1/tax_rates?active=false');
    assert.deepEqual(
      inactive.json().data.map((r: Json) => r.id),
      [offId],
    );
    // Walk the whole list two at a time: same ids, same order, no repeats.
    const walked: string[] = [];
    let cursor = '';
    for (;;) {
      const page = await get(`/v1/tax_rates?limit=2${cursor ? `&starting_after=${cursor}` : ''}`);
      const data = page.json().data as Json[];
      walked.push(...data.map((r) => String(r.id)));
      if (!page.json().has_more) break;
      cursor = walked[walked.length - 1] ?? '';
    }
    assert.deepEqual(walked, ids);
    assert.deepEqual((await get('/v1/tax_rates', orgB)).json().data, []);
    assertError(await get(`/v1/tax_rates?starting_after=${vat20}`, orgB), 404, 'not_found', 'starting_after');
    assertError(await get('/v1/tax_rates?limit=101'), 422, 'validation_failed', 'limit');
    assertError(await get('/v1/tax_rates?active=yes'), 422, 'validation_failed', 'active');
  });

  it('needs catalog:write to write and catalog:read to read (admin has no catalog:write by design)', async () => {
    for (const role of ['admin', 'accountant', 'sales_rep', 'viewer', 'auditor'] as const) {
      assertError(await post('/v1/tax_rates', VAT20, orgA, role), 403, 'forbidden');
      assertError(await patch(`/v1/tax_rates/${vat20}`, { active: false }, orgA, role), 403, 'forbidden');
    }
    for (const role of ['admin', 'finance_manager', 'accountant', 'sales_rep', 'viewer'] as const) {
      assert.equal((await get('/v1/tax_rates', orgA, role)).statusCode, 200, role);
    }
    assertError(await get('/v1/tax_rates', orgA, 'auditor'), 403, 'forbidden');
    assertError(await get(`/v1/tax_rates/${vat20}`, orgA, 'auditor'), 403, 'forbidden');
    const r = await app.inject({ method: 'GET', url: '/v1/tax_rates' });
    assertError(r, 401, 'unauthenticated');
    assert.equal((await get(`/v1/tax_rates/${vat20}`)).json().active, true);
  });

  it('a retried POST with the same Idempotency-Key creates one rate', async () => {
    const body = { ...VAT20, name: 'idempotent rate' };
    const key = { 'idempotency-key': 'create-rate-1' };
    const a = await post('/v1/tax_rates', body, orgA, 'owner', key);
    const b = await post('/v1/tax_rates', body, orgA, 'owner', key);
    assert.equal(a.statusCode, 200, a.body);
    assert.equal(b.statusCode, 200, b.body);
    assert.equal(b.headers['idempotent-replayed'], 'true');
    assert.equal(b.json().id, a.json().id);
    const n = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM tax_rates WHERE name = 'idempotent rate'`.execute(t.db);
    assert.equal(n.rows[0]?.n, 1);
    assert.equal(await auditCount('tax_rate.created', a.json().id), 1);
    const other = await post('/v1/tax_rates', { ...body, percentage: '19' }, orgA, 'owner', key);
    assertError(other, 409, 'idempotency_key_reused');
  });
});

describe('products', () => {
  let vat: string;
  let inclusiveVat: string;
  let inactiveVat: string;
  let otherOrgVat: string;
  let productId: string;

  before(async () => {
    vat = (await post('/v1/tax_rates', VAT20)).json().id;
    inclusiveVat = (await post('/v1/tax_rates', { ...VAT20, name: 'incl', inclusive: true })).json().id;
    inactiveVat = (await post('/v1/tax_rates', { ...VAT20, name: 'old' })).json().id;
    await patch(`/v1/tax_rates/${inactiveVat}`, { active: false });
    otherOrgVat = (await post('/v1/tax_rates', VAT20, orgB)).json().id;
  });

  it('creates a product with a primary price, more currencies and default tax rates', async () => {
    const r = await post('/v1/products', {
      name: 'Consulting hour',
      unit_amount: 15000,
      currency: 'eur',
      unit_code: 'HUR',
      description: 'Senior consultant',
      tax_rates: [vat],
      prices: [
        { currency: 'USD', unit_amount: 17000 },
        { currency: 'JPY', unit_amount: 2300 },
      ],
    });
    assert.equal(r.statusCode, 200, r.body);
    const p = r.json();
    productId = p.id;
    assert.match(p.id, /^prd_[0-9a-z]{32}$/);
    assert.equal(p.object, 'product');
    assert.equal(p.name, 'Consulting hour');
    assert.equal(p.unit_code, 'HUR');
    assert.equal(p.currency, 'EUR');
    assert.equal(p.unit_amount, 15000);
    assert.equal(p.unit_amount_decimal, null);
    assert.deepEqual(p.prices, [
      { currency: 'EUR', unit_amount: 15000, unit_amount_decimal: null },
      { currency: 'JPY', unit_amount: 2300, unit_amount_decimal: null },
      { currency: 'USD', unit_amount: 17000, unit_amount_decimal: null },
    ]);
    assert.deepEqual(p.tax_rates, [vat]);
    assert.equal(p.active, true);
    assert.equal(await auditCount('product.created', p.id), 1);
    const g = await get(`/v1/products/${p.id}`, orgA, 'sales_rep');
    assert.equal(g.statusCode, 200);
    assert.deepEqual(g.json(), p);
    const stored = await sql<{ unit_amount: bigint }>`
      SELECT unit_amount FROM product_prices WHERE product_id = ${p.id} AND currency = 'EUR'`.execute(t.db);
    assert.equal(stored.rows[0]?.unit_amount, 15000n); // bigint minor units in SQL
  });

  it('the §9 minimal shape works, with unit code C62 and no tax rates by default', async () => {
    const r = await post(
      '/v1/products',
      { name: 'Widget', unit_amount: 999, currency: 'USD' },
      orgA,
      'finance_manager',
    );
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().unit_code, 'C62');
    assert.deepEqual(r.json().tax_rates, []);
    assert.equal(r.json().currency, 'USD');
    assert.equal(r.json().unit_amount, 999);
  });

  it('round-trips sub-minor prices as exact decimal strings of minor units', async () => {
    const r = await post('/v1/products', {
      name: 'API call',
      unit_amount_decimal: '0.125',
      currency: 'USD',
      prices: [
        { currency: 'EUR', unit_amount_decimal: '0012.340000' },
        { currency: 'GBP', unit_amount_decimal: '0.000001' },
      ],
    });
    assert.equal(r.statusCode, 200, r.body);
    const g = await get(`/v1/products/${r.json().id}`);
    assert.deepEqual(g.json().prices, [
      { currency: 'EUR', unit_amount: null, unit_amount_decimal: '12.34' },
      { currency: 'GBP', unit_amount: null, unit_amount_decimal: '0.000001' },
      { currency: 'USD', unit_amount: null, unit_amount_decimal: '0.125' },
    ]);
    assert.equal(g.json().unit_amount, null);
    assert.equal(g.json().unit_amount_decimal, '12.34');
    const raw = await sql<{ unit_amount_decimal: string }>`
      SELECT unit_amount_decimal FROM product_prices WHERE product_id = ${r.json().id} AND currency = 'USD'`.execute(
      t.db,
    );
    assert.equal(raw.rows[0]?.unit_amount_decimal, '0.125');
  });

  it('keeps amounts exact up to 2^53-1 minor units and refuses anything beyond', async () => {
    const max = await post('/v1/products', {
      name: 'Max',
      unit_amount: Number.MAX_SAFE_INTEGER,
      currency: 'EUR',
    });
    assert.equal(max.statusCode, 200, max.body);
    assert.match(max.body, /"unit_amount":9007199254740991[,}]/);
    const huge = await app.inject({
      method: 'POST',
      url: '/v1/products',
      headers: { ...as(orgA, 'owner'), 'content-type': 'application/json' },
      payload: '{"name":"Huge","unit_amount":9007199254740993,"currency":"EUR"}',
    });
    assertError(huge, 422, 'validation_failed', 'unit_amount');
    assert.match(huge.json().error.message, /2\^53-1/);
    const bigDecimal = await post('/v1/products', {
      name: 'Huge',
      unit_amount_decimal: '9007199254740991.5',
      currency: 'EUR',
    });
    assertError(bigDecimal, 422, 'amount_invalid', 'unit_amount_decimal');
    const extra = await post('/v1/products', {
      name: 'Huge',
      unit_amount: 1,
      currency: 'EUR',
      prices: [{ currency: 'USD', unit_amount: 1e20 }],
    });
    assertError(extra, 422, 'validation_failed', 'prices.0.unit_amount');
  });

  it('refuses invalid prices and currencies with the offending param', async () => {
    const base = { name: 'Bad', currency: 'EUR' };
    const cases: [Json, string, string][] = [
      [{ unit_amount: 1.5 }, 'validation_failed', 'unit_amount'],
      [{ unit_amount: -1 }, 'validation_failed', 'unit_amount'],
      [{ unit_amount: '1500' }, 'validation_failed', 'unit_amount'],
      [{}, 'amount_invalid', 'unit_amount'],
      [{ unit_amount: 1, unit_amount_decimal: '1' }, 'amount_invalid', 'unit_amount'],
      [{ unit_amount_decimal: '1e-3' }, 'amount_invalid', 'unit_amount_decimal'],
      [{ unit_amount_decimal: '-0.5' }, 'amount_invalid', 'unit_amount_decimal'],
      [{ unit_amount_decimal: '0.1234567' }, 'amount_invalid', 'unit_amount_decimal'],
      [{ unit_amount_decimal: 0.5 }, 'validation_failed', 'unit_amount_decimal'],
      [{ unit_amount: 1, currency: 'ZZZ' }, 'currency_unknown', 'currency'],
      [{ unit_amount: 1, currency: 'XAU' }, 'currency_unknown', 'currency'],
      [{ unit_amount: 1, currency: 'EURO' }, 'validation_failed', 'currency'],
      [
        { unit_amount: 1, prices: [{ currency: 'EUR', unit_amount: 2 }] },
        'validation_failed',
        'prices.0.currency',
      ],
      [
        {
          unit_amount: 1,
          prices: [
            { currency: 'USD', unit_amount: 2 },
            { currency: 'usd', unit_amount_decimal: '2.5' },
          ],
        },
        'validation_failed',
        'prices.1.currency',
      ],
      [{ unit_amount: 1, prices: [{ currency: 'USD' }] }, 'amount_invalid', 'prices.0.unit_amount'],
      [
        { unit_amount: 1, prices: [{ currency: 'QQQ', unit_amount: 1 }] },
        'currency_unknown',
        'prices.0.currency',
      ],
      [{ unit_amount: 1, unit_code: 'hour' }, 'validation_failed', 'unit_code'],
      [{ unit_amount: 1, name: '' }, 'validation_failed', 'name'],
    ];
    for (const [override, code, param] of cases) {
      assertError(await post('/v1/products', { ...base, ...override }), 422, code, param);
    }
  });

  it('accepts only active tax rates of the same org, distinct and all inclusive or all exclusive', async () => {
    const base = { name: 'Taxed', unit_amount: 100, currency: 'EUR' };
    const missing = `txr_${'1'.repeat(32)}`;
    const cases: [string[], string, string][] = [
      [[missing], 'validation_failed', 'tax_rates.0'],
      [[vat, otherOrgVat], 'validation_failed', 'tax_rates.1'],
      [[inactiveVat], 'validation_failed', 'tax_rates.0'],
      [[vat, vat], 'validation_failed', 'tax_rates.1'],
      [[vat, inclusiveVat], 'tax_inclusive_mixed', 'tax_rates'],
      [['txr_bad'], 'validation_failed', 'tax_rates.0'],
    ];
    for (const [ids, code, param] of cases) {
      assertError(await post('/v1/products', { ...base, tax_rates: ids }), 422, code, param);
    }
    // Another org's rate reads exactly like a rate that does not exist.
    const foreign = await post('/v1/products', { ...base, tax_rates: [otherOrgVat] });
    const absent = await post('/v1/products', { ...base, tax_rates: [missing] });
    assert.equal(
      foreign.json().error.message.replace(otherOrgVat, 'ID'),
      absent.json().error.message.replace(missing, 'ID'),
    );
    assertError(
      await post('/v1/products', { ...base, tax_rates: Array.from({ length: 11 }, () => vat) }),
      422,
      'validation_failed',
      'tax_rates',
    );
    const n = await sql<{ n: number }>`SELECT count(*)::int AS n FROM products WHERE name = 'Taxed'`.execute(
      t.db,
    );
    assert.equal(n.rows[0]?.n, 0); // nothing half-written
  });

  it('updates name, description, unit code, tax rates, active, and replaces prices', async () => {
    const r = await patch(`/v1/products/${productId}`, {
      name: 'Consulting hour (senior)',
      description: null,
      unit_code: 'C62',
      tax_rates: [inclusiveVat],
      prices: [
        { currency: 'EUR', unit_amount_decimal: '14999.5' },
        { currency: 'CHF', unit_amount: 16000 },
      ],
    });
    assert.equal(r.statusCode, 200, r.body);
    const p = r.json();
    assert.equal(p.name, 'Consulting hour (senior)');
    assert.equal(p.description, null);
    assert.equal(p.unit_code, 'C62');
    assert.deepEqual(p.tax_rates, [inclusiveVat]);
    assert.deepEqual(p.prices, [
      { currency: 'EUR', unit_amount: null, unit_amount_decimal: '14999.5' },
      { currency: 'CHF', unit_amount: 16000, unit_amount_decimal: null },
    ]);
    assert.deepEqual((await get(`/v1/products/${productId}`)).json(), p);
    const off = await patch(`/v1/products/${productId}`, { active: false }, orgA, 'finance_manager');
    assert.equal(off.json().active, false);
    assert.deepEqual(off.json().prices, p.prices);
    assert.equal(await auditCount('product.updated', productId), 2);
    assertError(await patch(`/v1/products/${productId}`, { prices: [] }), 422, 'validation_failed', 'prices');
    assertError(
      await patch(`/v1/products/${productId}`, { tax_rates: [inactiveVat] }),
      422,
      'validation_failed',
      'tax_rates.0',
    );
    assertError(
      await patch(`/v1/products/${productId}`, {
        prices: [{ currency: 'EUR', unit_amount: 1, unit_amount_decimal: '1' }],
      }),
      422,
      'amount_invalid',
      'prices.0.unit_amount',
    );
    assertError(await patch(`/v1/products/${productId}`, { currency: 'USD' }), 422, 'validation_failed');
    assert.deepEqual((await get(`/v1/products/${productId}`)).json().prices, p.prices); // failed patches changed nothing
  });

  it('lists newest first with an active filter and keyset pagination', async () => {
    const all = await get('/v1/products?limit=100');
    const ids = all.json().data.map((p: Json) => p.id);
    assert.ok(ids.includes(productId));
    assert.ok(all.json().data.every((p: Json) => Array.isArray(p.prices) && (p.prices as Json[]).length > 0));
    const active = await get('/v1/products?active=true&limit=100');
    assert.ok(!active.json().data.some((p: Json) => p.id === productId));
    const inactive = await get('/v1/products?active=false', orgA, 'viewer');
    assert.deepEqual(
      inactive.json().data.map((p: Json) => p.id),
      [productId],
    );
    const first = await get('/v1/products?limit=1');
    assert.equal(first.json().has_more, true);
    const second = await get(`/v1/products?limit=1&starting_after=${first.json().data[0].id}`);
    assert.equal(second.json().data[0].id, ids[1]);
  });

  it('enforces roles and tenancy: 403 without catalog:write, 404 across orgs', async () => {
    const body = { name: 'Nope', unit_amount: 1, currency: 'EUR' };
    for (const role of ['admin', 'accountant', 'sales_rep', 'viewer', 'auditor'] as const) {
      assertError(await post('/v1/products', body, orgA, role), 403, 'forbidden');
      assertError(await patch(`/v1/products/${productId}`, { name: 'x' }, orgA, role), 403, 'forbidden');
    }
    assertError(await get('/v1/products', orgA, 'auditor'), 403, 'forbidden');
    assertError(await get(`/v1/products/${productId}`, orgB), 404, 'not_found');
    assertError(await patch(`/v1/products/${productId}`, { active: true }, orgB), 404, 'not_found');
    assertError(await get(`/v1/products/prd_${'0'.repeat(32)}`), 404, 'not_found');
    assert.deepEqual((await get('/v1/products', orgB)).json().data, []);
    const denied = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM audit_events WHERE outcome = 'denied' AND org_id = ${orgA}`.execute(
      t.db,
    );
    assert.ok((denied.rows[0]?.n ?? 0) > 0);
    assert.equal((await get(`/v1/products/${productId}`)).json().name, 'Consulting hour (senior)');
  });

  it('survives hostile input: stored verbatim, never executed, refused when malformed', async () => {
    const hostile = `Robert'); DROP TABLE products; -- <script>alert(1)</script> ${'\u202e'}`;
    const r = await post('/v1/products', {
      name: hostile,
      description: hostile,
      unit_amount: 1,
      currency: 'EUR',
    });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().name, hostile.trim());
    assert.equal(r.headers['content-type'], 'application/json; charset=utf-8');
    assert.equal((await get(`/v1/products/${r.json().id}`)).json().description, hostile.trim());
    const rate = await post('/v1/tax_rates', { ...VAT20, name: "x' OR '1'='1" });
    assert.equal(rate.statusCode, 200);
    assertError(
      await post('/v1/products', { name: 'a\u0000b', unit_amount: 1, currency: 'EUR' }),
      422,
      'validation_failed',
      'name',
    );
    assertError(
      await post('/v1/tax_rates', { ...VAT20, name: 'nul\u0000' }),
      422,
      'validation_failed',
      'name',
    );
    assertError(
      await post('/v1/products', { name: 'x'.repeat(10_000), unit_amount: 1, currency: 'EUR' }),
      422,
      'validation_failed',
      'name',
    );
    assertError(
      await post('/v1/products', { name: 'Card 4111 1111 1111 1111', unit_amount: 1, currency: 'EUR' }),
      422,
      'card_number_not_allowed',
    );
    assertError(await post('/v1/products', [{ name: 'array' }]), 422, 'validation_failed');
    assertError(
      await post('/v1/products', { name: { $ne: null }, unit_amount: 1, currency: 'EUR' }),
      422,
      'validation_failed',
      'name',
    );
    const proto = await app.inject({
      method: 'POST',
      url: '/v1/tax_rates',
      headers: { ...as(orgA, 'owner'), 'content-type': 'application/json' },
      payload: '{"name":"p","percentage":"20","inclusive":false,"category":"S","__proto__":{"admin":true}}',
    });
    assert.equal(proto.statusCode, 400, proto.body);
    const broken = await app.inject({
      method: 'POST',
      url: '/v1/products',
      headers: { ...as(orgA, 'owner'), 'content-type': 'application/json' },
      payload: '{"name":',
    });
    assertError(broken, 400, 'invalid_json');
    const tables = await sql<{ n: number }>`SELECT count(*)::int AS n FROM products`.execute(t.db);
    assert.ok((tables.rows[0]?.n ?? 0) > 0);
  });

  it('documents the catalog in the OpenAPI document', async () => {
    const r = await app.inject({ method: 'GET', url: '/v1/openapi.json' });
    assert.equal(r.statusCode, 200);
    const paths = Object.keys(r.json().paths);
    for (const p of ['/v1/tax_rates', '/v1/tax_rates/{id}', '/v1/products', '/v1/products/{id}']) {
      assert.ok(paths.includes(p), p);
    }
  });
});
