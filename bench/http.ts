// The real HTTP API on a bench database, authenticated with a real API key: what the invoice
// and payment scenarios drive with 16 concurrent clients.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import { createFieldCipher } from '../src/adapters/crypto/field-cipher.js';
import { LocalKeyProvider } from '../src/adapters/crypto/key-provider.js';
import { ARGON2_DEFAULTS, createPasswordHasher } from '../src/adapters/crypto/passwords.js';
import { createTotp } from '../src/adapters/crypto/totp.js';
import { createWebAuthn, relyingPartyFromUrl } from '../src/adapters/crypto/webauthn.js';
import { childPids } from '../src/adapters/db/embedded.js';
import type { Db } from '../src/adapters/db/index.js';
import { createApiKeyAsOperator } from '../src/app/api-keys.js';
import { createOrg } from '../src/app/orgs.js';
import { systemClock } from '../src/app/ports.js';
import type { IdentityDeps } from '../src/app/sessions.js';
import { configureBatching } from '../src/app/tx-batch.js';
import { loadConfig } from '../src/config/config.js';
import { buildApp } from '../src/http/app.js';

// Database round trips: a statement sent while the client waits for nothing else starts one; a
// statement pipelined behind another (BEGIN's scope statement, a COMMIT) rides on it.
let roundTrips = 0;
const originalQuery = pg.Client.prototype.query;
let counting = false;
type ClientQueues = { _activeQuery?: unknown; _sentQueryQueue?: unknown[]; _queryQueue?: unknown[] };
/** Counts the database round trips of every pg client of this process from now on. */
export function countRoundTrips(): () => number {
  if (!counting) {
    counting = true;
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      const q = this as unknown as ClientQueues;
      if (!q._activeQuery && !q._sentQueryQueue?.length && !q._queryQueue?.length) roundTrips++;
      return (originalQuery as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof pg.Client.prototype.query;
  }
  const start = roundTrips;
  return () => roundTrips - start;
}

/** One request of a flow; `{id}` in the path is the id the flow's previous response returned. */
export interface LoadStep {
  method: string;
  path: string;
  body?: string;
}
export interface LoadJob {
  port: number;
  auth: string;
  /** One flow per client. */
  flows: LoadStep[][];
  /** The last response of a flow must have this `status`. */
  expectStatus?: string;
  ms: number;
}
export interface LoadResult {
  latencies: number[];
  seconds: number;
  errors: string[];
}

function benchIdentity(db: Db): IdentityDeps {
  return {
    db,
    clock: systemClock,
    cipher: createFieldCipher(new LocalKeyProvider([randomBytes(32)], 'bench')),
    passwords: createPasswordHasher(ARGON2_DEFAULTS),
    totp: createTotp(),
    webauthn: createWebAuthn(relyingPartyFromUrl('http://localhost:3000')),
    sessionLimits: { idleMinutes: 15, absoluteHours: 12 },
  };
}

/** A new org and an API key with its owner's permissions. */
async function benchOrg(identity: IdentityDeps) {
  const org = await createOrg(identity.db, { name: 'Bench', baseCurrency: 'EUR' });
  return { org, key: await createApiKeyAsOperator(identity, org.id, { name: 'bench' }) };
}

/** The bench's settings that serve reads too, read and checked as serve does. */
const BATCH_VARS = ['BILLVAULT_TX_BATCH_MAX', 'BILLVAULT_TX_BATCH_IN_FLIGHT'] as const;
const batchEnv = () =>
  Object.fromEntries(BATCH_VARS.flatMap((k) => (process.env[k] ? [[k, process.env[k]]] : [])));

/** Serves the app on a loopback port for one new org; `call` sends JSON with its API key. */
export async function serveBenchApi(db: Db) {
  // finalisations share transactions as serve's would (BILLVAULT_TX_BATCH_*)
  configureBatching(db, loadConfig(batchEnv()).txBatch);
  const identity = benchIdentity(db);
  const { org, key } = await benchOrg(identity);
  const app = await buildApp({
    db,
    identity,
    readiness: async () => ({ database: true, migrations: 'current' }),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  const client = benchClient(port, `Bearer ${key.secret}`, () => app.close());
  return { org: org.id, ...client, app: { server: app.server, close: client.app.close } };
}

/**
 * Runs `billvault serve --workers N` as a user would (its own processes, the background jobs on,
 * request logging at `warn`) on the bench database `url`, for one new org with an API key.
 */
export async function serveBenchCluster(db: Db, url: string, workers: number) {
  const { org, key } = await benchOrg(benchIdentity(db));
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'bv-bench-serve-'));
  const child = spawn(process.execPath, ['bin/billvault.js', 'serve', '--workers', String(workers)], {
    cwd: path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'),
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      PORT: '0',
      DATABASE_URL: url,
      BILLVAULT_DATA_DIR: dataDir,
      BILLVAULT_MASTER_KEY: randomBytes(32).toString('base64'),
      BILLVAULT_LOG_LEVEL: 'warn',
      ...batchEnv(),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let err = '';
    child.stderr?.on('data', (d) => {
      err += d;
      const m = /serving on http:\/\/[^:]+:(\d+)/.exec(err);
      if (m?.[1]) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${err}`)));
  });
  const stop = async () => {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
    rmSync(dataDir, { recursive: true, force: true });
  };
  return {
    org: org.id,
    pids: () => serverPids(child.pid),
    ...benchClient(port, `Bearer ${key.secret}`, stop),
  };
}

/** The pids of a process and its children (only the process where /proc cannot tell). */
function serverPids(root: number | undefined): number[] {
  return root === undefined ? [] : [root, ...childPids(root)];
}

/** `call` (one JSON request with the API key) and `drive` (the load generator) against a port. */
function benchClient(port: number, auth: string, closeServer: () => Promise<unknown>) {
  // The load generator shares the process (and the two cores) with the server, so it should be
  // cheap: node:http over keep-alive connections (fetch/undici costs it noticeably more CPU).
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const call = (method: string, path: string, body?: unknown) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const payload = body ? JSON.stringify(body) : undefined;
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          method,
          path,
          agent,
          headers: {
            authorization: auth,
            ...(payload
              ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
              : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            try {
              const json = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
              if (res.statusCode !== 200)
                reject(new Error(`${method} ${path} → ${res.statusCode} ${JSON.stringify(json)}`));
              else resolve(json);
            } catch (e) {
              reject(e);
            }
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  /**
   * Runs `flows` (one per client, repeated) for `ms` on a load-generator thread (bench/load-worker.mjs),
   * so the server's event loop is its own; the CPU of both threads still counts in the process's.
   */
  const drive = (flows: LoadStep[][], ms: number, expectStatus?: string): Promise<LoadResult> =>
    new Promise((resolve, reject) => {
      const job: LoadJob = { port, auth, flows, ms, ...(expectStatus ? { expectStatus } : {}) };
      const worker = new Worker(new URL('./load-worker.mjs', import.meta.url), { workerData: job });
      worker.once('message', (r: LoadResult) => {
        void worker.terminate();
        if (r.errors.length > 0) reject(new Error(`load generator: ${r.errors[0]}`));
        else resolve(r);
      });
      worker.once('error', reject);
      // a worker that dies without answering must not leave the benchmark waiting (no-op after an answer)
      worker.once('exit', (code) => reject(new Error(`load generator exited (${code}) without a result`)));
    });
  return {
    app: {
      async close() {
        agent.destroy();
        await closeServer();
      },
    },
    call,
    drive,
  };
}
