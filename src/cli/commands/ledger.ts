import type { Command } from 'commander';
import { systemCtx } from '../../app/context.js';
import { verifyOrgLedger } from '../../app/ledger.js';
import { listOrgsAsOperator } from '../../app/orgs.js';
import { loadConfig } from '../../config/config.js';
import { openRuntime } from '../../main/runtime.js';
import { CliError, makeOut } from '../output.js';

/** `billvault ledger verify [--org ID]`: the invariants of DESIGN.md §4, per org; non-zero exit on any difference. */
export function registerLedgerCommands(program: Command): void {
  const ledger = program.command('ledger').description('the double-entry ledger');
  ledger
    .command('verify')
    .description(
      'check that every entry balances, the trial balance is zero and AR equals the open remainders',
    )
    .option('--org <id>', 'only this org (default: every org)')
    .action(async (opts: { org?: string }, cmd: Command) => {
      const out = makeOut(Boolean(cmd.optsWithGlobals().json));
      const rt = await openRuntime(loadConfig(), { migrate: false });
      try {
        const all = (await listOrgsAsOperator(rt.database.db)).map((o) => o.id);
        if (opts.org && !all.includes(opts.org)) throw new CliError(`no org ${opts.org}`);
        const orgs = opts.org ? [opts.org] : all;
        const reports = [];
        for (const org of orgs)
          reports.push({ org, ...(await verifyOrgLedger({ db: rt.database.db }, systemCtx(org))) });
        const ok = reports.every((r) => r.ok);
        const text = reports
          .map((r) =>
            r.ok
              ? `${r.org}: ok (${r.entries} entries, ${r.invoices} finalised invoices)`
              : `${r.org}: ${r.problems.length} problem(s)\n${r.problems.map((p) => `  ${p.check}: ${p.message}`).join('\n')}`,
          )
          .join('\n');
        out.result({ ok, orgs: reports }, text || 'no orgs');
        if (!ok) process.exitCode = 1;
      } finally {
        await rt.close();
      }
    });
}
