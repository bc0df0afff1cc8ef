import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { isoCBOR } from '@simplewebauthn/server/helpers';
import type { IdentityDeps } from '../../src/app/sessions.js';
import { buildTestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import {
  cookiesFrom,
  MINUTE,
  type SeededOrg,
  seedOrg,
  TEST_PUBLIC_URL,
  TestClock,
  testIdentity,
} from '../helpers/identity.js';

/**
 * A software authenticator: an ES256 key pair held in the test, producing the exact bytes a
 * platform authenticator would (attestation 'none', user presence + user verification flags).
 */
class SoftAuthenticator {
  readonly credentialId = randomBytes(32);
  private readonly keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  private counter = 0;
  userHandle = '';

  constructor(
    readonly rpId = 'localhost',
    readonly origin = TEST_PUBLIC_URL,
  ) {}

  get id(): string {
    return this.credentialId.toString('base64url');
  }

  private coseKey(): Uint8Array {
    const jwk = this.keys.publicKey.export({ format: 'jwk' });
    const cose = new Map<number, number | Uint8Array>([
      [1, 2], // kty: EC2
      [3, -7], // alg: ES256
      [-1, 1], // crv: P-256
      [-2, Buffer.from(jwk.x ?? '', 'base64url')],
      [-3, Buffer.from(jwk.y ?? '', 'base64url')],
    ]);
    return isoCBOR.encode(cose);
  }

  private authData(flags: number, attested: boolean): Buffer {
    const rpIdHash = createHash('sha256').update(this.rpId).digest();
    const count = Buffer.alloc(4);
    count.writeUInt32BE(this.counter);
    const parts = [rpIdHash, Buffer.from([flags]), count];
    if (attested) {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(this.credentialId.length);
      parts.push(Buffer.alloc(16), len, this.credentialId, Buffer.from(this.coseKey()));
    }
    return Buffer.concat(parts);
  }

  private clientData(type: string, challenge: string, origin = this.origin): Buffer {
    return Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false }));
  }

  /** navigator.credentials.create() */
  create(options: { challenge: string; user: { id: string } }, opts: { uv?: boolean } = {}) {
    this.userHandle = options.user.id;
    const flags = 0x01 | (opts.uv === false ? 0 : 0x04) | 0x40; // UP | UV | AT
    const attestationObject = isoCBOR.encode(
      new Map<string, string | Map<string, string> | Uint8Array>([
        ['fmt', 'none'],
        ['attStmt', new Map<string, string>()],
        ['authData', this.authData(flags, true)],
      ]),
    );
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      authenticatorAttachment: 'platform',
      clientExtensionResults: {},
      response: {
        clientDataJSON: this.clientData('webauthn.create', options.challenge).toString('base64url'),
        attestationObject: Buffer.from(attestationObject).toString('base64url'),
        transports: ['internal'],
      },
    };
  }

  /** navigator.credentials.get() */
  get(options: { challenge: string }, opts: { uv?: boolean; origin?: string; key?: KeyObject } = {}) {
    this.counter++;
    const authData = this.authData(0x01 | (opts.uv === false ? 0 : 0x04), false);
    const clientData = this.clientData('webauthn.get', options.challenge, opts.origin);
    const signed = Buffer.concat([authData, createHash('sha256').update(clientData).digest()]);
    const signature = sign('sha256', signed, opts.key ?? this.keys.privateKey);
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      clientExtensionResults: {},
      response: {
        clientDataJSON: clientData.toString('base64url'),
        authenticatorData: authData.toString('base64url'),
        signature: signature.toString('base64url'),
        userHandle: this.userHandle,
      },
    };
  }
}

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
  a = await seedOrg(deps, 'Passkey Org');
});
after(async () => {
  await app.close();
  await t.drop();
});

async function session(role: keyof SeededOrg['users']) {
  const u = a.users[role];
  const r = await app.inject({
    method: 'POST',
    url: '/v1/auth/login',
    payload: { email: u.email, password: u.password },
  });
  assert.equal(r.statusCode, 200, r.body);
  return cookiesFrom(r.headers['set-cookie']);
}

const post = (c: { cookie: string; csrf: string } | null, url: string, payload: unknown) =>
  app.inject({
    method: 'POST',
    url,
    headers: c ? { cookie: c.cookie, 'x-csrf-token': c.csrf } : {},
    payload: payload as object,
  });

async function register(role: keyof SeededOrg['users'], authn: SoftAuthenticator) {
  const c = await session(role);
  const opts = await post(c, '/v1/me/passkeys/options', {});
  assert.equal(opts.statusCode, 200, opts.body);
  const { challenge_id, options } = opts.json();
  assert.equal(options.rp.id, 'localhost');
  assert.equal(options.authenticatorSelection.userVerification, 'required');
  const r = await post(c, '/v1/me/passkeys', {
    challenge_id,
    name: 'Laptop',
    credential: authn.create(options),
  });
  return { res: r, cookie: c, challengeId: challenge_id as string, options };
}

describe('WebAuthn passkeys (software authenticator, end to end)', () => {
  const authn = new SoftAuthenticator();

  it('registers a passkey (attestation none, UV required) and returns recovery codes once', async () => {
    const { res } = await register('owner', authn);
    assert.equal(res.statusCode, 201, res.body);
    const body = res.json();
    assert.equal(body.id, authn.id);
    assert.equal(body.recovery_codes.length, 10);
    const row = await t.db
      .selectFrom('webauthn_credentials')
      .selectAll()
      .where('id', '=', authn.id)
      .executeTakeFirstOrThrow();
    assert.equal(row.user_id, a.users.owner.id);
    assert.equal(Number(row.counter), 0);
  });

  it('signs in with the passkey alone (discoverable credential, counts as MFA)', async () => {
    const o = await post(null, '/v1/auth/webauthn/options', {});
    assert.equal(o.statusCode, 200, o.body);
    const { challenge_id, options } = o.json();
    const assertion = authn.get(options);
    const r = await post(null, '/v1/auth/webauthn/verify', { challenge_id, credential: assertion });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().user.id, a.users.owner.id);
    const c = cookiesFrom(r.headers['set-cookie']);
    const me = await app.inject({ method: 'GET', url: '/v1/me', headers: { cookie: c.cookie } });
    assert.equal(me.json().role, 'owner');
    const row = await t.db
      .selectFrom('sessions')
      .select('mfa')
      .orderBy('created_at', 'desc')
      .executeTakeFirstOrThrow();
    assert.equal(row.mfa, true);
    const cred = await t.db
      .selectFrom('webauthn_credentials')
      .select('counter')
      .where('id', '=', authn.id)
      .executeTakeFirstOrThrow();
    assert.equal(Number(cred.counter), 1);

    // the challenge is single-use: replaying the same assertion fails
    const replay = await post(null, '/v1/auth/webauthn/verify', { challenge_id, credential: assertion });
    assert.equal(replay.statusCode, 401);
  });

  it('after a password, the passkey is the second factor', async () => {
    const u = a.users.owner;
    const r = await app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      payload: { email: u.email, password: u.password },
    });
    assert.equal(r.json().mfa_required, true);
    assert.ok(r.json().methods.includes('webauthn'));
    const mfa_token = r.json().mfa_token;
    const o = await post(null, '/v1/auth/webauthn/options', { mfa_token });
    const { challenge_id, options } = o.json();
    assert.deepEqual(
      options.allowCredentials.map((c: { id: string }) => c.id),
      [authn.id],
    );
    const ok = await post(null, '/v1/auth/webauthn/verify', {
      challenge_id,
      credential: authn.get(options),
      mfa_token,
    });
    assert.equal(ok.statusCode, 200, ok.body);
  });

  it('refuses a wrong origin, a missing user verification, a foreign key and an expired challenge', async () => {
    const attempt = async (opts: Parameters<SoftAuthenticator['get']>[1], advance = 0) => {
      const o = await post(null, '/v1/auth/webauthn/options', {});
      const { challenge_id, options } = o.json();
      clock.advance(advance);
      return post(null, '/v1/auth/webauthn/verify', { challenge_id, credential: authn.get(options, opts) });
    };
    assert.equal((await attempt({ origin: 'https://evil.example' })).statusCode, 401);
    assert.equal((await attempt({ uv: false })).statusCode, 401);
    assert.equal(
      (await attempt({ key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey })).statusCode,
      401,
    );
    assert.equal((await attempt({}, 5 * MINUTE + 1000)).statusCode, 401);
    assert.equal((await attempt({})).statusCode, 200);
  });

  it('refuses a registration without user verification, for another user, or with a reused challenge', async () => {
    const noUv = new SoftAuthenticator();
    const c = await session('admin');
    const o = await post(c, '/v1/me/passkeys/options', {});
    const { challenge_id, options } = o.json();
    const bad = await post(c, '/v1/me/passkeys', {
      challenge_id,
      name: 'Key',
      credential: noUv.create(options, { uv: false }),
    });
    assert.equal(bad.statusCode, 422);
    const reuse = await post(c, '/v1/me/passkeys', {
      challenge_id,
      name: 'Key',
      credential: new SoftAuthenticator().create(options),
    });
    assert.equal(reuse.statusCode, 422, 'the challenge was spent by the failed attempt');
    const o2 = await post(c, '/v1/me/passkeys/options', {});
    const other = await session('viewer');
    const stolen = await post(other, '/v1/me/passkeys', {
      challenge_id: o2.json().challenge_id,
      name: 'Key',
      credential: new SoftAuthenticator().create(o2.json().options),
    });
    assert.equal(stolen.statusCode, 422);
    const hostile = await post(c, '/v1/me/passkeys', {
      challenge_id: "chl_' OR 1=1",
      name: 'x',
      credential: {},
    });
    assert.equal(hostile.statusCode, 422);
  });

  it('lists and removes passkeys (step-up), with a notice', async () => {
    const second = new SoftAuthenticator();
    const { res, cookie } = await register('finance_manager', second);
    assert.equal(res.statusCode, 201);
    const list = await app.inject({
      method: 'GET',
      url: '/v1/me/passkeys',
      headers: { cookie: cookie.cookie },
    });
    assert.deepEqual(
      list.json().data.map((p: { id: string }) => p.id),
      [second.id],
    );
    const del = await app.inject({
      method: 'DELETE',
      url: `/v1/me/passkeys/${second.id}`,
      headers: { cookie: cookie.cookie, 'x-csrf-token': cookie.csrf },
    });
    assert.equal(del.statusCode, 200, del.body);
    const kinds = await t.db
      .selectFrom('outbox')
      .select('kind')
      .where('user_id', '=', a.users.finance_manager.id)
      .execute();
    assert.ok(kinds.some((k) => k.kind === 'credential.passkey_removed'));
  });
});
