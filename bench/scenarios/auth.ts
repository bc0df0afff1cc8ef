import { randomBytes } from 'node:crypto';
import { ARGON2_DEFAULTS, createPasswordHasher } from '../../src/adapters/crypto/passwords.js';
import { createTotp } from '../../src/adapters/crypto/totp.js';
import { createWebAuthn, relyingPartyFromUrl } from '../../src/adapters/crypto/webauthn.js';
import { migrationStatus } from '../../src/adapters/db/index.js';
import { createApiKeyAsOperator } from '../../src/app/api-keys.js';
import { createOrg } from '../../src/app/orgs.js';
import { type FieldCipher, systemClock } from '../../src/app/ports.js';
import type { IdentityDeps } from '../../src/app/sessions.js';
import { createUserAsOperator } from '../../src/app/users.js';
import { buildApp } from '../../src/http/app.js';
import { type BenchContext, percentile, type Scenario } from '../harness.js';

const PASSWORD = 'bench passphrase for logins';

// Logins and the authenticated GET never touch encrypted fields: a cipher that refuses keeps
// the bench independent of the key store.
const noCipher: FieldCipher = {
  encrypt: () => Promise.reject(new Error('not used by this bench')),
  encryptForStatement: () => Promise.reject(new Error('not used by this bench')),
  guardFailed: () => {},
  decrypt: () => Promise.reject(new Error('not used by this bench')),
  blindIndex: () => Promise.reject(new Error('not used by this bench')),
};

async function setup(ctx: BenchContext) {
  const { db, pool } = await ctx.freshDatabase();
  const deps: IdentityDeps = {
    db,
    clock: systemClock,
    cipher: noCipher,
    passwords: createPasswordHasher(ARGON2_DEFAULTS), // the production parameters: m=64 MiB, t=3, p=1
    totp: createTotp(),
    webauthn: createWebAuthn(relyingPartyFromUrl('http://localhost:3000')),
    sessionLimits: { idleMinutes: 15, absoluteHours: 12 },
  };
  const org = await createOrg(db, { name: 'Bench', baseCurrency: 'EUR' });
  const emails: string[] = [];
  for (let i = 0; i < 4; i++) {
    const email = `bench${i}.${randomBytes(3).toString('hex')}@example.test`;
    await createUserAsOperator(deps, { email, password: PASSWORD, role: 'accountant', orgId: org.id });
    emails.push(email);
  }
  const app = await buildApp({
    db,
    identity: deps,
    readiness: async () => ({
      database: true,
      migrations: (await migrationStatus(pool)).pending.length === 0 ? 'current' : 'pending',
    }),
    plugins: [
      (a) => {
        // Two empty routes: the difference between them is the cost of the session (or key)
        // lookup plus the policy check, and nothing else.
        a.get('/bench/public', { config: { auth: { public: true } } }, async () => ({ ok: true }));
        a.get('/bench/authed', { config: { auth: { permission: 'invoices:read' } } }, async () => ({
          ok: true,
        }));
      },
    ],
  });
  await app.ready();
  return { app, deps, org, emails };
}

async function logins(ctx: BenchContext, concurrency: number) {
  const { app, emails } = await setup(ctx);
  try {
    const durationMs = 5000;
    const start = Date.now();
    let n = 0;
    const lat: number[] = [];
    await Promise.all(
      Array.from({ length: concurrency }, async (_, w) => {
        while (Date.now() - start < durationMs) {
          const t0 = process.hrtime.bigint();
          const r = await app.inject({
            method: 'POST',
            url: '/v1/auth/login',
            payload: { email: emails[w % emails.length], password: PASSWORD },
          });
          if (r.statusCode !== 200) throw new Error(`login failed: ${r.statusCode} ${r.body}`);
          lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
          n++;
        }
      }),
    );
    const secs = (Date.now() - start) / 1000;
    return { value: n / secs, extra: { p50_ms: percentile(lat, 50), p99_ms: percentile(lat, 99) } };
  } finally {
    await app.close();
  }
}

async function authedGet(ctx: BenchContext, via: 'session' | 'api_key') {
  const { app, deps, org, emails } = await setup(ctx);
  try {
    let headers: Record<string, string>;
    if (via === 'session') {
      const r = await app.inject({
        method: 'POST',
        url: '/v1/auth/login',
        payload: { email: emails[0], password: PASSWORD },
      });
      const cookies = (r.headers['set-cookie'] as string[]).map((c) => c.split(';')[0]).join('; ');
      headers = { cookie: cookies };
    } else {
      headers = {
        authorization: `Bearer ${(await createApiKeyAsOperator(deps, org.id, { name: 'bench', scopes: ['invoices:read'] })).secret}`,
      };
    }
    const measure = async (url: string, h: Record<string, string>, n: number) => {
      const lat: number[] = [];
      for (let i = 0; i < 200; i++) await app.inject({ method: 'GET', url, headers: h });
      for (let i = 0; i < n; i++) {
        const t0 = process.hrtime.bigint();
        const r = await app.inject({ method: 'GET', url, headers: h });
        lat.push(Number(process.hrtime.bigint() - t0) / 1e3);
        if (r.statusCode !== 200) throw new Error(`GET ${url}: ${r.statusCode} ${r.body}`);
      }
      return lat;
    };
    const base = await measure('/bench/public', {}, 3000);
    const authed = await measure('/bench/authed', headers, 3000);
    const p50 = percentile(authed, 50);
    const p99 = percentile(authed, 99);
    return {
      value: p50 - percentile(base, 50),
      extra: {
        authed_p50_us: Math.round(p50),
        authed_p99_us: Math.round(p99),
        public_p50_us: Math.round(percentile(base, 50)),
        public_p99_us: Math.round(percentile(base, 99)),
        overhead_p99_us: Math.round(p99 - percentile(base, 99)),
      },
    };
  } finally {
    await app.close();
  }
}

export const scenarios: Scenario[] = [
  {
    name: 'auth.login.argon2id_64MiB_t3.1_client',
    unit: 'logins/s',
    needsDb: true,
    run: (ctx) => logins(ctx, 1),
  },
  {
    name: 'auth.login.argon2id_64MiB_t3.4_clients',
    unit: 'logins/s',
    needsDb: true,
    run: (ctx) => logins(ctx, 4),
  },
  {
    name: 'auth.get_overhead.session_p50',
    unit: 'µs',
    needsDb: true,
    run: (ctx) => authedGet(ctx, 'session'),
  },
  {
    name: 'auth.get_overhead.api_key_p50',
    unit: 'µs',
    needsDb: true,
    run: (ctx) => authedGet(ctx, 'api_key'),
  },
];
