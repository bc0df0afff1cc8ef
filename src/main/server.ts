import { readFileSync } from 'node:fs';
import https from 'node:https';
import { isIP } from 'node:net';
import { createFieldCipher } from '../adapters/crypto/field-cipher.js';
import { loadKeyProvider } from '../adapters/crypto/key-provider.js';
import { createPasswordHasher } from '../adapters/crypto/passwords.js';
import { createTotp } from '../adapters/crypto/totp.js';
import { createWebAuthn, relyingPartyFromUrl } from '../adapters/crypto/webauthn.js';
import { migrationStatus } from '../adapters/db/index.js';
import { parseAllowList, type SsrfPolicy } from '../adapters/net/ssrf.js';
import { fileErasureLog } from '../adapters/privacy/erasure-log.js';
import { AuditSealer } from '../app/audit-chain.js';
import { type Clock, type FieldCipher, systemClock } from '../app/ports.js';
import { runRetentionAll } from '../app/retention.js';
import type { IdentityDeps } from '../app/sessions.js';
import { WebhookDispatcher } from '../app/webhook-dispatcher.js';
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
  let ready: ReturnType<typeof createFieldCipher> | undefined;
  const real = () => {
    loaded ??= loadKeyProvider(rt.config).then((kp) => {
      ready = createFieldCipher(kp);
      return ready;
    });
    return loaded;
  };
  const cipher: FieldCipher = {
    encrypt: async (tx, scope, field, plaintext) => (await real()).encrypt(tx, scope, field, plaintext),
    encryptForStatement: async (tx, scope, field, plaintext) =>
      (await real()).encryptForStatement(tx, scope, field, plaintext),
    guardFailed: (error) => ready?.guardFailed(error),
    decrypt: async (tx, scope, field, ciphertext) => (await real()).decrypt(tx, scope, field, ciphertext),
    blindIndex: async (tx, orgId, purpose, value) => (await real()).blindIndex(tx, orgId, purpose, value),
    forget: () => ready?.forget(),
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

/**
 * Builds the app on an open runtime and listens on the configured address. With `jobs` (the
 * default) it also runs the background work: the audit chain sealer, the webhook dispatcher and
 * retention; of the processes of `serve --workers N`, one does.
 */
export async function startServer(rt: Runtime, opts: { jobs?: boolean } = {}): Promise<RunningServer> {
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
  const identity = await createIdentityDeps(rt);
  const ssrf: SsrfPolicy = { devMode: config.devMode, allow: parseAllowList(config.webhooks.allowHosts) };
  const app = await buildApp({
    db: rt.database.db,
    logger: rt.logger,
    bodyLimitBytes: config.bodyLimitBytes,
    readiness,
    identity,
    webhooks: { ssrf },
    erasureLog: fileErasureLog(config.privacy.erasureLog),
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
  if (opts.jobs === false) return { app, url, close: () => app.close() };
  // The audit chain sealer (DESIGN.md §5): links committed audit events into their chains.
  const sealer = new AuditSealer(rt.database.db, {
    checkpointEvery: config.audit.checkpointEvery,
    checkpointMinutes: config.audit.checkpointMinutes,
    keyProvider: () => loadKeyProvider(rt.config),
  });
  const sealing = sealer.start(config.audit.sealIntervalMs, (e) =>
    rt.logger.error({ component: 'audit-sealer', error: (e as Error).message }, 'audit sealing failed'),
  );
  // The outbound webhook dispatcher: drains the delivery outbox, sending outside transactions.
  const dispatcher = new WebhookDispatcher(rt.database.db, identity.cipher, {
    ssrf,
    onFailure: (f) => rt.logger.warn({ component: 'webhook-dispatcher', ...f }, 'webhook delivery failed'),
  });
  const dispatching = dispatcher.start(config.webhooks.dispatchIntervalMs, (e) =>
    rt.logger.error(
      { component: 'webhook-dispatcher', error: (e as Error).message },
      'webhook dispatch failed',
    ),
  );
  const retention = scheduleRetention(rt.logger, identity, config.privacy.retentionIntervalHours);
  return {
    app,
    url,
    // Stop the sealer without waiting for a pass in flight: one batch is one transaction, so a
    // pass cut short by the closing pool loses nothing (and shutdown timing stays as it was).
    // The dispatcher is awaited: a send in flight finishes (within its timeout) and records
    // its outcome; an unrecorded one would be sent again after its lease, never lost.
    close: async () => {
      void sealing.stop();
      retention.stop();
      const closing = app.close();
      await dispatching.stop();
      return closing;
    },
  };
}

/**
 * Retention policies on a schedule (DESIGN.md §5): a first run a minute after start, then every
 * `hours` (0 turns it off). Each org's run is one transaction and one audit event; a failure
 * is logged and retried at the next tick. The timer never keeps the process alive.
 */
export function scheduleRetention(
  logger: Pick<Runtime['logger'], 'info' | 'error'>,
  identity: Pick<IdentityDeps, 'db' | 'cipher' | 'clock'>,
  hours: number,
  firstDelayMs = 60_000,
): { stop(): void } {
  if (hours <= 0) return { stop() {} };
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const tick = async () => {
    try {
      const reports = await runRetentionAll(identity, { dryRun: false });
      logger.info(
        {
          component: 'retention',
          orgs: reports.length,
          counts: reports.map((r) => r.classes.map((c) => c.count)),
        },
        'retention run done',
      );
    } catch (e) {
      logger.error({ component: 'retention', error: (e as Error).message }, 'retention run failed');
    }
    if (!stopped) {
      timer = setTimeout(tick, hours * 3_600_000);
      timer.unref();
    }
  };
  timer = setTimeout(tick, firstDelayMs);
  timer.unref();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
