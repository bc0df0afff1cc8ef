import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { parseAllowList } from '../adapters/net/ssrf.js';

/** A configuration problem, reported as one line naming the variable; never a stack trace. */
export class ConfigError extends Error {
  constructor(
    public readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}

const boolish = z
  .union([z.boolean(), z.enum(['1', '0', 'true', 'false', 'yes', 'no', ''])])
  .transform((v) => v === true || v === '1' || v === 'true' || v === 'yes');

const intIn = (min: number, max: number) =>
  z.coerce
    .number({ error: 'must be a whole number' })
    .int('must be a whole number')
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`);

const postgresUrl = z.string().refine(
  (v) => {
    try {
      const u = new URL(v);
      return (u.protocol === 'postgres:' || u.protocol === 'postgresql:') && u.hostname !== '';
    } catch {
      return false;
    }
  },
  { message: 'must be a URL of the form postgres://user:password@host:port/database' },
);

/** Every setting, by its environment variable name (a config file uses the same keys). */
const schema = z.object({
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: intIn(0, 65535).default(3000),
  BILLVAULT_DATA_DIR: z.string().min(1).default('./data'),
  DATABASE_URL: postgresUrl.optional(),
  BILLVAULT_MASTER_KEY: z
    .string()
    .refine((v) => /^[A-Za-z0-9+/]{43}=$/.test(v) && Buffer.from(v, 'base64').length === 32, {
      message: 'must be the base64 encoding of exactly 32 bytes',
    })
    .optional(),
  BILLVAULT_MASTER_KEY_FILE: z.string().min(1).optional(),
  BILLVAULT_TLS_CERT: z.string().min(1).optional(),
  BILLVAULT_TLS_KEY: z.string().min(1).optional(),
  BILLVAULT_BEHIND_TLS_PROXY: boolish.default(false),
  BILLVAULT_PUBLIC_URL: z
    .url({ error: 'must be an absolute URL such as https://billing.example.com' })
    .optional(),
  BILLVAULT_SESSION_IDLE_MINUTES: intIn(1, 24 * 60).default(15),
  BILLVAULT_SESSION_ABSOLUTE_HOURS: intIn(1, 24 * 30).default(12),
  BILLVAULT_BODY_LIMIT_BYTES: intIn(1024, 50 * 1024 * 1024).default(1024 * 1024),
  BILLVAULT_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  BILLVAULT_DB_POOL_SIZE: intIn(1, 200).default(10),
  BILLVAULT_WORKERS: intIn(1, 64).default(1),
  BILLVAULT_TX_BATCH_MAX: intIn(1, 256).default(16),
  BILLVAULT_TX_BATCH_IN_FLIGHT: intIn(1, 64).default(2),
  // unset: the embedded server's own default (EMBEDDED_NICE)
  BILLVAULT_EMBEDDED_NICE: intIn(0, 19).optional(),
  BILLVAULT_AUDIT_SEAL_INTERVAL_MS: intIn(100, 60_000).default(1000),
  BILLVAULT_AUDIT_CHECKPOINT_EVERY: intIn(1, 10_000_000).default(1000),
  BILLVAULT_AUDIT_CHECKPOINT_MINUTES: intIn(1, 24 * 60).default(10),
  BILLVAULT_DEV_MODE: boolish.default(false),
  BILLVAULT_WEBHOOK_ALLOW_HOSTS: z
    .string()
    .default('')
    .superRefine((v, c) => {
      try {
        parseAllowList(v);
      } catch (e) {
        c.addIssue({ code: 'custom', message: (e as Error).message });
      }
    }),
  BILLVAULT_WEBHOOK_DISPATCH_INTERVAL_MS: intIn(100, 60_000).default(1000),
  BILLVAULT_ERASURE_LOG: z.string().min(1).optional(),
  BILLVAULT_RETENTION_INTERVAL_HOURS: intIn(0, 24 * 31).default(24),
  BILLVAULT_STRIPE_WEBHOOK_SECRET: z
    .string()
    .regex(/^[\x21-\x7e]{16,255}$/, 'must be 16 to 255 printable characters without spaces (whsec_…)')
    .optional(),
});

export type RawConfig = z.infer<typeof schema>;

export interface Config {
  host: string;
  port: number;
  dataDir: string;
  databaseUrl: string | undefined;
  masterKey: { source: 'env'; keyBase64: string } | { source: 'file'; path: string };
  tls: { certPath: string; keyPath: string } | undefined;
  behindTlsProxy: boolean;
  publicUrl: string;
  session: { idleMinutes: number; absoluteHours: number };
  bodyLimitBytes: number;
  logLevel: RawConfig['BILLVAULT_LOG_LEVEL'];
  dbPoolSize: number;
  /** `serve`: server processes sharing the port (each with its own pool of dbPoolSize). */
  workers: number;
  /**
   * Group commit of an org's finalisations (src/app/tx-batch.ts): callers at most in one shared
   * transaction (1: never shared), and the org's transactions running at once before callers queue.
   */
  txBatch: { maxBatch: number; maxInFlight: number };
  /** The embedded server's nice value (0–19); undefined: its default (EMBEDDED_NICE, 5). */
  embeddedNice: number | undefined;
  /** The audit chain sealer in `serve`, and how often it signs a checkpoint (every N events or T minutes). */
  audit: { sealIntervalMs: number; checkpointEvery: number; checkpointMinutes: number };
  /** Development mode: outbound webhooks may call http://localhost (never on by default). */
  devMode: boolean;
  /** Outbound webhooks: SSRF exceptions (host names, addresses, CIDRs) and the dispatcher's interval. */
  webhooks: { allowHosts: string; dispatchIntervalMs: number };
  /** The erasure log (tombstones kept outside the database) and how often `serve` runs retention (0: never). */
  privacy: { erasureLog: string; retentionIntervalHours: number };
  /** Webhook secrets of a single-org install (an org's own stored secret takes precedence). */
  gatewaySecrets: { stripe?: string };
}

const KEYS = Object.keys(schema.shape) as (keyof RawConfig)[];

function readConfigFile(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const file = env.BILLVAULT_CONFIG;
  if (!file) return {};
  if (!existsSync(file)) throw new ConfigError('BILLVAULT_CONFIG', `file ${file} does not exist`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw new ConfigError('BILLVAULT_CONFIG', `file ${file} is not valid JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError('BILLVAULT_CONFIG', 'must hold a JSON object keyed by variable name');
  }
  for (const key of Object.keys(parsed)) {
    if (!KEYS.includes(key as keyof RawConfig)) {
      throw new ConfigError('BILLVAULT_CONFIG', `unknown setting "${key}"`);
    }
  }
  return parsed as Record<string, unknown>;
}

/** Parses the environment (over an optional JSON config file) once, at start-up. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<RawConfig> = {}): Config {
  const input: Record<string, unknown> = { ...readConfigFile(env) };
  for (const key of KEYS) {
    const v = env[key];
    if (v !== undefined && v !== '') input[key] = v;
  }
  for (const [key, v] of Object.entries(overrides)) if (v !== undefined) input[key] = v;
  const result = schema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0];
    const variable = String(issue?.path[0] ?? 'configuration');
    const message = input[variable] === undefined ? 'is required' : issue?.message;
    throw new ConfigError(variable, message ?? 'is invalid');
  }
  const raw = result.data;
  if (Boolean(raw.BILLVAULT_TLS_CERT) !== Boolean(raw.BILLVAULT_TLS_KEY)) {
    throw new ConfigError(
      raw.BILLVAULT_TLS_CERT ? 'BILLVAULT_TLS_KEY' : 'BILLVAULT_TLS_CERT',
      'TLS needs both a certificate and a key',
    );
  }
  const dataDir = path.resolve(raw.BILLVAULT_DATA_DIR);
  const defaultKeyFile = path.join(
    env.XDG_CONFIG_HOME || path.join(homedir(), '.config'),
    'billvault',
    'master.key',
  );
  return {
    host: raw.HOST,
    port: raw.PORT,
    dataDir,
    databaseUrl: raw.DATABASE_URL,
    masterKey: raw.BILLVAULT_MASTER_KEY
      ? { source: 'env', keyBase64: raw.BILLVAULT_MASTER_KEY }
      : { source: 'file', path: path.resolve(raw.BILLVAULT_MASTER_KEY_FILE ?? defaultKeyFile) },
    tls:
      raw.BILLVAULT_TLS_CERT && raw.BILLVAULT_TLS_KEY
        ? { certPath: raw.BILLVAULT_TLS_CERT, keyPath: raw.BILLVAULT_TLS_KEY }
        : undefined,
    behindTlsProxy: raw.BILLVAULT_BEHIND_TLS_PROXY,
    publicUrl: raw.BILLVAULT_PUBLIC_URL ?? `http://localhost:${raw.PORT}`,
    session: {
      idleMinutes: raw.BILLVAULT_SESSION_IDLE_MINUTES,
      absoluteHours: raw.BILLVAULT_SESSION_ABSOLUTE_HOURS,
    },
    bodyLimitBytes: raw.BILLVAULT_BODY_LIMIT_BYTES,
    logLevel: raw.BILLVAULT_LOG_LEVEL,
    dbPoolSize: raw.BILLVAULT_DB_POOL_SIZE,
    workers: raw.BILLVAULT_WORKERS,
    txBatch: { maxBatch: raw.BILLVAULT_TX_BATCH_MAX, maxInFlight: raw.BILLVAULT_TX_BATCH_IN_FLIGHT },
    embeddedNice: raw.BILLVAULT_EMBEDDED_NICE,
    audit: {
      sealIntervalMs: raw.BILLVAULT_AUDIT_SEAL_INTERVAL_MS,
      checkpointEvery: raw.BILLVAULT_AUDIT_CHECKPOINT_EVERY,
      checkpointMinutes: raw.BILLVAULT_AUDIT_CHECKPOINT_MINUTES,
    },
    devMode: raw.BILLVAULT_DEV_MODE,
    webhooks: {
      allowHosts: raw.BILLVAULT_WEBHOOK_ALLOW_HOSTS,
      dispatchIntervalMs: raw.BILLVAULT_WEBHOOK_DISPATCH_INTERVAL_MS,
    },
    privacy: {
      erasureLog: raw.BILLVAULT_ERASURE_LOG
        ? path.resolve(raw.BILLVAULT_ERASURE_LOG)
        : path.join(path.dirname(dataDir), `${path.basename(dataDir)}-erasures.jsonl`),
      retentionIntervalHours: raw.BILLVAULT_RETENTION_INTERVAL_HOURS,
    },
    gatewaySecrets: raw.BILLVAULT_STRIPE_WEBHOOK_SECRET
      ? { stripe: raw.BILLVAULT_STRIPE_WEBHOOK_SECRET }
      : {},
  };
}
