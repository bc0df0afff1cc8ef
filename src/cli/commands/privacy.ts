import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { fileErasureLog } from '../../adapters/privacy/erasure-log.js';
import { systemCtx } from '../../app/context.js';
import {
  ERASURE_REASONS,
  type ErasureReason,
  eraseCustomer,
  exportAsCsv,
  exportCustomer,
} from '../../app/privacy.js';
import { runRetentionAll } from '../../app/retention.js';
import { loadConfig } from '../../config/config.js';
import { isDomainError } from '../../domain/errors.js';
import { openRuntime, type Runtime } from '../../main/runtime.js';
import { createIdentityDeps } from '../../main/server.js';
import { CliError, makeOut } from '../output.js';
import { resolveOrg } from './users.js';

const CUSTOMER_ID = /^cus_[0-9a-z]{32}$/;

function json(cmd: Command): boolean {
  return Boolean((cmd.optsWithGlobals() as { json?: boolean }).json);
}

async function withRuntime<T>(fn: (rt: Runtime) => Promise<T>): Promise<T> {
  const rt = await openRuntime(loadConfig(), { migrate: true });
  try {
    return await fn(rt);
  } catch (e) {
    // Domain errors are expected outcomes (not found, legal hold): one line, no stack.
    if (isDomainError(e)) throw new CliError(`${e.code}: ${e.message}`);
    throw e;
  } finally {
    await rt.close();
  }
}

/** customer export | erase, retention run. */
export function registerPrivacyCommands(program: Command): void {
  const customer =
    program.commands.find((c) => c.name() === 'customer') ??
    program.command('customer').description('manage customers');

  customer
    .command('export')
    .description(
      'everything about one customer (GDPR Art. 15/20): export.json and CSV files, or JSON on stdout',
    )
    .requiredOption('--id <id>', 'the customer (cus_…)')
    .option('--out <dir>', 'write export.json and the CSV files into this new directory (0700, files 0600)')
    .option('--org <id>', 'org id (default: the only org)')
    .action(async (opts: { id: string; out?: string; org?: string }, cmd: Command) => {
      const out = makeOut(json(cmd));
      if (!CUSTOMER_ID.test(opts.id)) throw new CliError('--id must be a customer id (cus_…)');
      if (opts.out && existsSync(opts.out)) throw new CliError(`${opts.out} exists; exports never overwrite`);
      await withRuntime(async (rt) => {
        const identity = await createIdentityDeps(rt);
        const orgId = await resolveOrg(rt, opts.org);
        const data = await exportCustomer(identity, systemCtx(orgId), opts.id);
        if (!opts.out) {
          process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
          return;
        }
        const dir = path.resolve(opts.out);
        await mkdir(dir, { recursive: true, mode: 0o700 });
        const files: Record<string, string> = {
          'export.json': `${JSON.stringify(data, null, 2)}\n`,
          ...exportAsCsv(data),
        };
        for (const [name, text] of Object.entries(files))
          await writeFile(path.join(dir, name), text, { mode: 0o600, flag: 'wx' });
        out.result(
          { dir, files: Object.keys(files) },
          `wrote ${Object.keys(files).length} files to ${dir}: ${Object.keys(files).join(', ')}`,
        );
      });
    });

  customer
    .command('erase')
    .description('erase a customer by crypto-shredding (GDPR Art. 17); refused while a legal hold is on')
    .requiredOption('--id <id>', 'the customer (cus_…)')
    .requiredOption('--reason <reason>', ERASURE_REASONS.join(' | '))
    .option('--org <id>', 'org id (default: the only org)')
    .action(async (opts: { id: string; reason: string; org?: string }, cmd: Command) => {
      const out = makeOut(json(cmd));
      if (!CUSTOMER_ID.test(opts.id)) throw new CliError('--id must be a customer id (cus_…)');
      if (!(ERASURE_REASONS as readonly string[]).includes(opts.reason))
        throw new CliError(`--reason must be one of ${ERASURE_REASONS.join(', ')}`);
      await withRuntime(async (rt) => {
        const identity = await createIdentityDeps(rt);
        const orgId = await resolveOrg(rt, opts.org);
        const r = await eraseCustomer(
          { ...identity, erasureLog: fileErasureLog(rt.config.privacy.erasureLog) },
          systemCtx(orgId),
          opts.id,
          opts.reason as ErasureReason,
        );
        out.result(
          r,
          `erased ${r.customer}: ${r.keys_destroyed} key(s) destroyed, ${r.invoices_retained} invoice(s) keep restricted buyer details for ${r.retain_years} years, ${r.drafts_deleted} draft(s) deleted, ${r.quotes_withdrawn} quote(s) withdrawn`,
        );
      });
    });

  const retention = program.command('retention').description('retention policies (DESIGN.md §5 Privacy)');
  retention
    .command('run')
    .description('apply every retention policy now (serve also runs them on a schedule)')
    .option('--dry-run', 'count what would be removed; change nothing')
    .option('--org <id>', 'only this org (default: every org)')
    .action(async (opts: { dryRun?: boolean; org?: string }, cmd: Command) => {
      const out = makeOut(json(cmd));
      await withRuntime(async (rt) => {
        const identity = await createIdentityDeps(rt);
        const orgId = opts.org ? await resolveOrg(rt, opts.org) : undefined;
        const reports = await runRetentionAll(identity, {
          dryRun: Boolean(opts.dryRun),
          ...(orgId ? { orgId } : {}),
        });
        const text = reports
          .map(
            (r) =>
              `${r.org}${r.dry_run ? ' (dry run)' : ''}:\n${r.classes
                .map(
                  (c) => `  ${c.class.padEnd(26)} ${String(c.count).padStart(8)}  ${c.action}: ${c.policy}`,
                )
                .join('\n')}`,
          )
          .join('\n');
        out.result({ dry_run: Boolean(opts.dryRun), orgs: reports }, text || 'no orgs');
      });
    });
}
