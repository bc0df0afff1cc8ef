// The real HTTP API on a bench database, authenticated with a real API key: what the invoice
// and payment scenarios drive with 16 concurrent clients.
import { randomBytes } from 'node:crypto';
import { createFieldCipher } from '../src/adapters/crypto/field-cipher.js';
import { LocalKeyProvider } from '../src/adapters/crypto/key-provider.js';
import { ARGON2_DEFAULTS, createPasswordHasher } from '../src/adapters/crypto/passwords.js';
import { createTotp } from '../src/adapters/crypto/totp.js';
import { createWebAuthn, relyingPartyFromUrl } from '../src/adapters/crypto/webauthn.js';
import type { Db } from '../src/adapters/db/index.js';
import { createApiKeyAsOperator } from '../src/app/api-keys.js';
import { createOrg } from '../src/app/orgs.js';
import { systemClock } from '../src/app/ports.js';
import type { IdentityDeps } from '../src/app/sessions.js';
import { buildApp } from '../src/http/app.js';

/** Serves the app on a loopback port for one new org; `call` sends JSON with its API key. */
export async function serveBenchApi(db: Db) {
  const identity: IdentityDeps = {
    db,
    clock: systemClock,
    cipher: createFieldCipher(new LocalKeyProvider([randomBytes(32)], 'bench')),
    passwords: createPasswordHasher(ARGON2_DEFAULTS),
    totp: createTotp(),
    webauthn: createWebAuthn(relyingPartyFromUrl('http://localhost:3000')),
    sessionLimits: { idleMinutes: 15, absoluteHours: 12 },
  };
  const org = await createOrg(db, { name: 'Bench', baseCurrency: 'EUR' });
  const key = await createApiKeyAsOperator(identity, org.id, { name: 'bench' });
  const app = await buildApp({
    db,
    identity,
    readiness: async () => ({ database: true, migrations: 'current' }),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  const headers = { authorization: `Bearer ${key.secret}`, 'content-type': 'application/json' };
  const call = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${base}${path}`, {
      method,
      headers,
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const json = (await r.json()) as Record<string, unknown>;
    if (r.status !== 200) throw new Error(`${method} ${path} → ${r.status} ${JSON.stringify(json)}`);
    return json;
  };
  return { app, org: org.id, call };
}
