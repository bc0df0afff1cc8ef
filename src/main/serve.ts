// `billvault serve`: one server process, or (with --workers N) a primary process that owns the
// database (it migrates it, and starts and stops the embedded server) and N server processes
// sharing the listening port through node:cluster. One event loop handles a few hundred
// requests a second that each finalise an invoice; the workers put the other cores to work.
import cluster, { type Worker } from 'node:cluster';
import { loadKeyProvider } from '../adapters/crypto/key-provider.js';
import { createLogger } from '../adapters/log/logger.js';
import { CliError } from '../cli/output.js';
import type { Config } from '../config/config.js';
import { openRuntime, type Runtime } from './runtime.js';
import { checkTransport, type RunningServer, startServer } from './server.js';

/** What a worker tells the primary once it listens. */
interface ListeningMessage {
  type: 'billvault:listening';
  url: string;
}
const isListening = (m: unknown): m is ListeningMessage =>
  typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'billvault:listening';

/** Set by the primary for its workers only (never read from a user's environment otherwise). */
const WORKER_ENV = {
  /** The embedded server's connection string (with its password): workers must not start one. */
  embeddedUrl: 'BILLVAULT_INTERNAL_EMBEDDED_URL',
  /** "1" for the worker that runs the background jobs (sealer, dispatcher, retention). */
  jobs: 'BILLVAULT_INTERNAL_JOBS',
} as const;

/** Restarts of crashed workers allowed within CRASH_WINDOW_MS before serve gives up. */
const CRASH_LIMIT = 5;
const CRASH_WINDOW_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;

export async function serve(config: Config): Promise<void> {
  if (cluster.isWorker) return serveWorker(config);
  checkTransport(config); // before touching the database
  if (config.workers > 1) return servePrimary(config);
  const rt = await openRuntime(config, { migrate: true, logger: createLogger(config.logLevel) });
  const { url, stop } = await listen(rt);
  rt.logger.info({ url, database: rt.database.describe }, 'billvault listening');
  process.stderr.write(`Billvault is serving on ${url} (${rt.database.kind} PostgreSQL)\n`);
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

/**
 * Starts the server on an open runtime (closing the runtime if that fails); `stop` closes both,
 * once, and ends the process (as a single server or a worker).
 */
async function listen(rt: Runtime, opts: { jobs?: boolean } = {}) {
  let server: RunningServer;
  try {
    server = await startServer(rt, opts);
  } catch (e) {
    await rt.close();
    throw e;
  }
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    rt.logger.info({ signal }, 'shutting down');
    await server.close().catch(() => {});
    await rt.close().catch(() => {});
    process.exit(0);
  };
  return { url: server.url, stop };
}

async function servePrimary(config: Config): Promise<void> {
  const logger = createLogger(config.logLevel).child({ process: 'primary' });
  const rt = await openRuntime(config, { migrate: true, logger });
  const workers = new Set<Worker>();
  // whether a worker is the one running the background jobs
  const roles = new WeakMap<Worker, boolean>();
  let stopping = false;
  try {
    // A master key file that does not exist yet is created here, once: left to the workers, two
    // of them could each write one and encrypt under a key the other then replaces.
    await loadKeyProvider(config);
    const env = (jobs: boolean) => ({
      ...(rt.database.kind === 'embedded' ? { [WORKER_ENV.embeddedUrl]: rt.database.url } : {}),
      [WORKER_ENV.jobs]: jobs ? '1' : '0',
    });
    const fork = (jobs: boolean): Worker => {
      const w = cluster.fork(env(jobs));
      workers.add(w);
      roles.set(w, jobs);
      w.once('exit', () => workers.delete(w));
      return w;
    };
    // All workers listening, or the first failure to start.
    const url = await new Promise<string>((resolve, reject) => {
      let listening = 0;
      let first: string | undefined;
      for (let i = 0; i < config.workers; i++) {
        const w = fork(i === 0);
        w.on('message', (m: unknown) => {
          if (!isListening(m)) return;
          first ??= m.url;
          if (++listening === config.workers) resolve(first);
        });
        w.once('exit', (code, signal) => {
          if (listening < config.workers)
            reject(
              new CliError(
                `a server process failed to start (${signal ?? `exit code ${code}`}); its error is above`,
              ),
            );
        });
      }
    });
    logger.info({ url, database: rt.database.describe, workers: config.workers }, 'billvault listening');
    process.stderr.write(
      `Billvault is serving on ${url} (${rt.database.kind} PostgreSQL, ${config.workers} server processes)\n`,
    );
    // A crashed worker is replaced (with the same role); a crash loop ends serve instead.
    const crashes: number[] = [];
    cluster.on('exit', (w, code, signal) => {
      if (stopping) return;
      const jobs = roles.get(w) ?? false;
      const now = Date.now();
      crashes.push(now);
      while (crashes.length > 0 && (crashes[0] as number) < now - CRASH_WINDOW_MS) crashes.shift();
      logger.error({ worker: w.id, code, signal }, 'server process exited; starting another');
      if (crashes.length > CRASH_LIMIT) {
        logger.fatal({ crashes: crashes.length }, 'server processes keep crashing: stopping');
        void stopAll(1);
        return;
      }
      // (not unref'd: with every worker gone, this timer is what keeps the primary alive)
      setTimeout(() => {
        if (!stopping) fork(jobs);
      }, 1000);
    });
  } catch (e) {
    stopping = true;
    await stopWorkers(workers);
    await rt.close().catch(() => {});
    throw e;
  }
  const stopAll = async (code: number) => {
    stopping = true;
    await stopWorkers(workers);
    await rt.close().catch(() => {});
    process.exit(code);
  };
  let signalled = false;
  const onSignal = (signal: string) => {
    if (signalled) return;
    signalled = true;
    logger.info({ signal }, 'shutting down');
    void stopAll(0);
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
}

/** Asks every worker to finish (SIGTERM) and waits, killing the ones that take too long. */
async function stopWorkers(workers: Set<Worker>): Promise<void> {
  await Promise.all(
    [...workers].map(
      (w) =>
        new Promise<void>((resolve) => {
          if (w.isDead()) return resolve();
          const timer = setTimeout(() => w.process.kill('SIGKILL'), STOP_TIMEOUT_MS);
          w.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          w.process.kill('SIGTERM');
        }),
    ),
  );
}

async function serveWorker(config: Config): Promise<void> {
  const id = cluster.worker?.id ?? 0;
  const logger = createLogger(config.logLevel).child({ worker: id });
  const jobs = process.env[WORKER_ENV.jobs] === '1';
  const rt = await openRuntime(config, {
    migrate: false,
    logger,
    sharedEmbeddedUrl: process.env[WORKER_ENV.embeddedUrl],
  });
  const { url, stop } = await listen(rt, { jobs });
  process.send?.({ type: 'billvault:listening', url } satisfies ListeningMessage);
  // The primary decides when to stop (Ctrl-C reaches every process of the group: the workers
  // leave it to the primary, which stops them in order). Without a primary, a worker stops.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => void stop('SIGTERM'));
  cluster.worker?.on('disconnect', () => void stop('primary gone'));
}
