import { readFileSync } from 'node:fs';
import https from 'node:https';
import { isIP } from 'node:net';
import { createFieldCipher } from '../adapters/crypto/field-cipher.js';
import { loadKeyProvider } from '../adapters/crypto/key-provider.js';
import { createPasswordHasher } from '../adapters/crypto/passwords.js';
import { createTotp } from '../adapters/crypto/totp.js';
import { createWebAuthn, relyingPartyFromUrl } from '../adapters/crypto/webauthn.js';
import { migrationStatus } from '../adapters/db/index.js';
import { AuditSealer } from '../app/audit-chain.js';
import { type Clock, type FieldCipher, systemClock } from '../app/ports.js';
import type { IdentityDeps } from '../app/sessions.js';
import { type Config, ConfigError } from '../config/config.js';
import { type BuiltApp, buildApp, type Readiness } from '../http/app.js';
import type { Runtime } from './runtime.js';

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1';
  return false;
}

/** Refuses a listener that would send credentials in clear over a network. */
export function checkTransport(config: Pick<Config, 'host' | 'tls' | 'behindTlsProxy'>): void {
  if (!config.tls && !config.behindTlsProxy && !isLoopback(config.host)) {
    throw new ConfigError(
      'HOST',
      `refusing to listen on ${config.host} without TLS: give --tls-cert and --tls-key, or --behind-tls-proxy if a TLS proxy terminates connections`,
    );
  }
}

/** The identity adapters (argon2id, TOTP, WebAuthn for BILLVAULT_PUBLIC_URL, the field cipher). */
export async function createIdentityDeps(rt: Runtime, clock: Clock = systemClock): Promise<IdentityDeps> {
  // The master key is loaded on first use only: creating a user or an API key needs none.
  let loaded: Promise<FieldCipher> | undefined;
  const real = () => {
    loaded ??= loadKeyProvider(rt.config).then((kp) => createFieldCipher(kp));
    return loaded;
  };
  const cipher: FieldCipher = {
    encrypt: async (tx, scope, field, plaintext) => (await real()).encrypt(tx, scope, field, plaintext),
    decrypt: async (tx, scope, field, ciphertext) => (await real()).decrypt(tx, scope, field, ciphertext),
    blindIndex: async (tx, orgId, purpose, value) => (await real()).blindIndex(tx, orgId, purpose, value),
  };
  const passwords = createPasswordHasher();
  // Computed now, so the first login for an unknown account costs what every other one does.
  void passwords.dummyHash();
  return {
    db: rt.database.db,
    clock,
    cipher,
    passwords,
    totp: createTotp('Billvault'),
    webauthn: createWebAuthn(relyingPartyFromUrl(rt.config.publicUrl)),
    sessionLimits: rt.config.session,
    warn: (event, message) => rt.logger.warn(event, message),
  };
}

export interface RunningServer {
  app: BuiltApp;
  url: string;
  close(): Promise<void>;
}

/** Builds the app on an open runtime and listens on the configured address. */
export async function startServer(rt: Runtime): Promise<RunningServer> {
  const { config } = rt;
  checkTransport(config);
  const readiness = async (): Promise<Readiness> => {
    try {
      const status = await migrationStatus(rt.database.pool);
      return { database: true, migrations: status.pending.length === 0 ? 'current' : 'pending' };
    } catch {
      return { database: false, migrations: 'unknown' };
    }
  };
  const tls = config.tls
    ? { cert: readFileSync(config.tls.certPath), key: readFileSync(config.tls.keyPath) }
    : undefined;
  const app = await buildApp({
    db: rt.database.db,
    logger: rt.logger,
    bodyLimitBytes: config.bodyLimitBytes,
    readiness,
    identity: await createIdentityDeps(rt),
    hsts: Boolean(tls) || config.behindTlsProxy,
    gateway: { envSecrets: config.gatewaySecrets },
    ...(tls
      ? { serverFactory: (handler) => https.createServer({ ...tls, minVersion: 'TLSv1.2' }, handler) }
      : {}),
  });
  await app.listen({ host: config.host, port: config.port });
  const addr = app.server.address();
  const port = addr && typeof addr === 'object' ? addr.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `${tls ? 'https' : 'http'}://${host}:${port}`;
  // The audit chain sealer (DESIGN.md §5): links committed audit events into their chains.
  const sealer = new AuditSealer(rt.database.db, {
    checkpointEvery: config.audit.checkpointEvery,
    checkpointMinutes: config.audit.checkpointMinutes,
    keyProvider: () => loadKeyProvider(rt.config),
  });
  const sealing = sealer.start(config.audit.sealIntervalMs, (e) =>
    rt.logger.error({ component: 'audit-sealer', error: (e as Error).message }, 'audit sealing failed'),
  );
  return {
    app,
    url,
    // Stop the sealer without waiting for a pass in flight: one batch is one transaction, so a
    // pass cut short by the closing pool loses nothing (and shutdown timing stays as it was).
    close: () => {
      void sealing.stop();
      return app.close();
    },
  };
}
