import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { loadKeyProvider } from '../../adapters/crypto/key-provider.js';
import { inTransaction } from '../../adapters/db/index.js';
import { recordAudit } from '../../app/audit.js';
import {
  type AuditFilter,
  AuditSealer,
  authenticateSigningKeys,
  type CheckpointFile,
  CSV_COLUMNS,
  csvRow,
  exportAuditEvents,
  exportCheckpoints,
  listChainsAsOperator,
  parseCheckpointFile,
  verifyChain,
} from '../../app/audit-chain.js';
import { loadConfig } from '../../config/config.js';
import { openRuntime, type Runtime } from '../../main/runtime.js';
import { CliError, makeOut } from '../output.js';

function json(cmd: Command): boolean {
  return Boolean((cmd.optsWithGlobals() as { json?: boolean }).json);
}

/** The chains a command covers: one org (or `platform`), else every org and the platform chain. */
async function chains(rt: Runtime, org: string | undefined): Promise<(string | null)[]> {
  const all = await listChainsAsOperator(rt.database.db);
  if (org === undefined) return all;
  if (org === 'platform') return [null];
  if (!all.includes(org)) throw new CliError(`no org ${org}`);
  return [org];
}

function parseTime(v: string | undefined, name: string): Date | undefined {
  if (v === undefined) return undefined;
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) throw new CliError(`--${name} must be an ISO 8601 date or date-time`);
  return d;
}

/** audit verify | seal | checkpoint export | export. */
export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the tamper-evident audit trail');

  audit
    .command('verify')
    .description(
      'recompute every content and chain hash, check checkpoint signatures; report the first bad sequence number (non-zero exit on any problem)',
    )
    .option('--org <id>', 'only this org (or "platform"); default: every chain')
    .option('--checkpoints <file>', 'an exported checkpoint file: also detects a truncated tail')
    .action(async (opts: { org?: string; checkpoints?: string }, cmd: Command) => {
      const out = makeOut(json(cmd));
      const config = loadConfig();
      let file: CheckpointFile | undefined;
      if (opts.checkpoints) {
        try {
          file = parseCheckpointFile(await readFile(opts.checkpoints, 'utf8'));
        } catch (e) {
          throw new CliError(`--checkpoints ${opts.checkpoints}: ${(e as Error).message}`);
        }
      }
      const rt = await openRuntime(config, { migrate: false });
      try {
        const reports = [];
        for (const org of await chains(rt, opts.org))
          reports.push(await verifyChain(rt.database.db, org, file ? { checkpointFile: file } : {}));
        // Are the signing keys in the database the ones the master key wrapped?
        let keyProblems: string[] = [];
        let keysChecked = false;
        try {
          const kp = await loadKeyProvider(config, { create: false });
          keyProblems = await authenticateSigningKeys(rt.database.db, kp);
          keysChecked = true;
        } catch {
          out.info('note: no master key available: signing keys not authenticated against it');
        }
        const ok = reports.every((r) => r.ok) && keyProblems.length === 0;
        const lines = reports.map((r) =>
          r.ok
            ? `${r.chain_id}: ok (${r.sealed} sealed events, head seq ${r.head_seq}, ${r.checkpoints_checked} checkpoints)`
            : `${r.chain_id}: FAILED at seq ${r.first_bad_seq}\n${r.problems.map((p) => `  seq ${p.seq ?? '-'} ${p.kind}: ${p.message}`).join('\n')}`,
        );
        for (const p of keyProblems) lines.push(`signing key ${p}`);
        out.result(
          { ok, keys_authenticated: keysChecked, key_problems: keyProblems, chains: reports },
          lines.join('\n') || 'no chains',
        );
        if (!ok) process.exitCode = 1;
      } finally {
        await rt.close();
      }
    });

  audit
    .command('seal')
    .description('link committed audit events into their chains now (serve does this every second)')
    .action(async (_opts, cmd: Command) => {
      const out = makeOut(json(cmd));
      const config = loadConfig();
      const rt = await openRuntime(config, { migrate: false });
      try {
        const sealer = new AuditSealer(rt.database.db, {
          checkpointEvery: config.audit.checkpointEvery,
          checkpointMinutes: config.audit.checkpointMinutes,
          keyProvider: () => loadKeyProvider(config, { create: false }),
        });
        const sealed = await sealer.sealAll();
        out.result({ sealed }, `${sealed} event(s) sealed`);
      } finally {
        await rt.close();
      }
    });

  const checkpoint = audit.command('checkpoint').description('signed checkpoints of the chain heads');
  checkpoint
    .command('export')
    .description(
      'seal, sign a checkpoint of every chain head, and write all checkpoints as JSON (keep it outside the database)',
    )
    .option('--org <id>', 'only this org (or "platform"); default: every chain')
    .option('--file <path>', 'write here instead of stdout')
    .action(async (opts: { org?: string; file?: string }, cmd: Command) => {
      const out = makeOut(json(cmd));
      const config = loadConfig();
      const kp = await loadKeyProvider(config, { create: false });
      const rt = await openRuntime(config, { migrate: false });
      try {
        const sealer = new AuditSealer(rt.database.db, { keyProvider: kp });
        await sealer.sealAll();
        const list = await chains(rt, opts.org);
        for (const org of list) await sealer.checkpoint(org);
        const data = await exportCheckpoints(rt.database.db, list);
        const text = `${JSON.stringify(data, null, 2)}\n`;
        if (opts.file) {
          await writeFile(opts.file, text, { mode: 0o644 });
          out.result(
            { file: opts.file, checkpoints: data.checkpoints.length },
            `${data.checkpoints.length} checkpoint(s) written to ${opts.file}`,
          );
        } else {
          process.stdout.write(text);
        }
      } finally {
        await rt.close();
      }
    });

  audit
    .command('export')
    .description('export audit events as JSON Lines or CSV (oldest first)')
    .option('--format <format>', 'jsonl or csv', 'jsonl')
    .option('--org <id>', 'only this org (or "platform"); default: every chain')
    .option('--from <time>', 'events at or after this ISO 8601 time')
    .option('--to <time>', 'events before this ISO 8601 time')
    .option('--file <path>', 'write here instead of stdout')
    .action(async (opts: { format: string; org?: string; from?: string; to?: string; file?: string }) => {
      if (opts.format !== 'jsonl' && opts.format !== 'csv')
        throw new CliError('--format must be jsonl or csv');
      const from = parseTime(opts.from, 'from');
      const to = parseTime(opts.to, 'to');
      const filter: AuditFilter = { ...(from ? { from } : {}), ...(to ? { to } : {}) };
      const rt = await openRuntime(loadConfig(), { migrate: false });
      const sink = opts.file ? createWriteStream(opts.file, { mode: 0o600 }) : process.stdout;
      const write = async (line: string) => {
        if (!sink.write(`${line}\n`)) await once(sink, 'drain');
      };
      try {
        const list = await chains(rt, opts.org);
        if (opts.format === 'csv') await write(CSV_COLUMNS.join(','));
        let n = 0;
        for (const org of list) {
          for await (const e of exportAuditEvents(rt.database.db, org, filter)) {
            await write(opts.format === 'csv' ? csvRow(e) : JSON.stringify(e));
            n++;
          }
          // The export itself is audited, in the chain it read.
          await inTransaction(rt.database.db, { orgId: org }, (tx) =>
            recordAudit(tx, {
              orgId: org,
              actor: { kind: 'system', id: 'cli' },
              action: 'audit.exported',
              outcome: 'success',
              meta: { userAgent: 'billvault-cli' },
              details: { format: opts.format, from: opts.from ?? null, to: opts.to ?? null },
            }),
          );
        }
        if (opts.file) process.stderr.write(`${n} event(s) written to ${opts.file}\n`);
      } finally {
        if (opts.file && 'close' in sink) await new Promise<void>((r) => sink.end(() => r()));
        await rt.close();
      }
    });
}
