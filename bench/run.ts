// `npm run bench [filter…]`: runs the scenarios in bench/scenarios/, prints a table, and writes
// bench/results/latest.json with the machine, Node version and database kind of every figure.
// Database scenarios run on the embedded server and, when one answers, on an external server
// (BENCH_DATABASE_URL, else the local postgres://postgres@127.0.0.1:5432/postgres).
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { startEmbeddedPostgres } from '../src/adapters/db/embedded.js';
import { loadConfig } from '../src/config/config.js';
import { makeContext, type Scenario } from './harness.js';

interface Result {
  scenario: string;
  db: string;
  unit: string;
  value: number;
  extra?: Record<string, number | string>;
}

const here = path.dirname(fileURLToPath(import.meta.url));

async function loadScenarios(filter: string[]): Promise<Scenario[]> {
  const dir = path.join(here, 'scenarios');
  const out: Scenario[] = [];
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.ts'))
    .sort()) {
    const mod = (await import(pathToFileURL(path.join(dir, file)).href)) as { scenarios?: Scenario[] };
    for (const s of mod.scenarios ?? [])
      if (filter.length === 0 || filter.some((f) => s.name.includes(f))) out.push(s);
  }
  return out;
}

async function reachable(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.end();
    return true;
  } catch {
    return false;
  }
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString('en-US');
  return n.toFixed(2);
}

async function main() {
  const filter = process.argv.slice(2);
  const scenarios = await loadScenarios(filter);
  const results: Result[] = [];
  const needsDb = scenarios.some((s) => s.needsDb);

  const servers: { kind: 'embedded' | 'external'; url: string; stop?: () => Promise<void> }[] = [];
  let tmp: string | undefined;
  // BENCH_DB=embedded or BENCH_DB=external runs the database scenarios on that server only.
  const only = process.env.BENCH_DB;
  if (needsDb && only !== 'external') {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'billvault-bench-'));
    // at the CPU priority `serve` gives it (BILLVAULT_EMBEDDED_NICE, read and checked as serve does)
    const nice = loadConfig({ BILLVAULT_EMBEDDED_NICE: process.env.BILLVAULT_EMBEDDED_NICE }).embeddedNice;
    const emb = await startEmbeddedPostgres({ dataDir: tmp, ...(nice !== undefined ? { nice } : {}) });
    servers.push({ kind: 'embedded', url: emb.adminUrl, stop: emb.stop });
  }
  if (needsDb && only !== 'embedded') {
    const ext = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
    if (await reachable(ext)) servers.push({ kind: 'external', url: ext });
    else console.log(`(no external PostgreSQL answered at ${new URL(ext).host}; external figures skipped)`);
  }

  for (const s of scenarios) {
    const targets = s.needsDb ? servers : [{ kind: 'none' as const, url: undefined }];
    for (const target of targets) {
      const ctx = makeContext(target.kind, target.url);
      try {
        const r = await s.run(ctx);
        const value = typeof r === 'number' ? r : r.value;
        const extra = typeof r === 'number' ? undefined : r.extra;
        results.push({ scenario: s.name, db: target.kind, unit: s.unit, value, ...(extra ? { extra } : {}) });
        const extras = extra
          ? `  ${Object.entries(extra)
              .map(([k, v]) => `${k}=${typeof v === 'number' ? fmt(v) : v}`)
              .join(' ')}`
          : '';
        console.log(
          `${s.name.padEnd(34)} ${target.kind.padEnd(9)} ${fmt(value).padStart(14)} ${s.unit}${extras}`,
        );
      } finally {
        await ctx.cleanup();
      }
    }
  }

  for (const srv of servers) await srv.stop?.();
  if (tmp) rmSync(tmp, { recursive: true, force: true });

  const cpus = os.cpus();
  const report = {
    date: new Date().toISOString(),
    machine: {
      cpu: cpus[0]?.model ?? 'unknown',
      cores: cpus.length,
      memory_gib: Math.round(os.totalmem() / 2 ** 30),
      platform: `${os.platform()} ${os.release()}`,
    },
    node: process.version,
    results,
  };
  const file = path.join(here, 'results', filter.length ? `partial-${Date.now()}.json` : 'latest.json');
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(
    `\n${report.machine.cpu}, ${report.machine.cores} cores, Node ${report.node}; written to ${path.relative(process.cwd(), file)}`,
  );
}

await main();
