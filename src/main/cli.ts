import { Command, CommanderError } from 'commander';
import { DatabaseStartError, MigrationError } from '../adapters/db/index.js';
import { registerApiKeyCommands } from '../cli/commands/apikeys.js';
import { registerAuditCommands } from '../cli/commands/audit.js';
import { registerBackupCommands } from '../cli/commands/backup.js';
import { registerBillingCommands } from '../cli/commands/billing.js';
import { registerCatalogCommands } from '../cli/commands/catalog.js';
import { registerKeyCommands } from '../cli/commands/keys.js';
import { registerLedgerCommands } from '../cli/commands/ledger.js';
import { registerPrivacyCommands } from '../cli/commands/privacy.js';
import { registerReportCommands } from '../cli/commands/reports.js';
import { registerSystemCommands } from '../cli/commands/system.js';
import { registerUserCommands } from '../cli/commands/users.js';
import { CliError } from '../cli/output.js';
import { ConfigError } from '../config/config.js';
import { DomainError } from '../domain/errors.js';

/** The `billvault` command: every failure is one line on stderr and a non-zero exit. */
export async function runCli(argv: string[]): Promise<number> {
  const program = new Command('billvault')
    .description('Billvault: self-hostable, security-first billing')
    .option('--json', 'machine-readable output')
    .exitOverride()
    .showHelpAfterError(false)
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  registerSystemCommands(program);
  registerKeyCommands(program);
  registerBackupCommands(program);
  registerLedgerCommands(program);
  registerUserCommands(program);
  registerApiKeyCommands(program);
  registerCatalogCommands(program);
  registerPrivacyCommands(program);
  registerBillingCommands(program);
  registerAuditCommands(program);
  registerReportCommands(program);
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    const expected =
      e instanceof ConfigError ||
      e instanceof CliError ||
      e instanceof MigrationError ||
      e instanceof DatabaseStartError ||
      e instanceof DomainError;
    const message = e instanceof Error ? e.message : String(e);
    process.stderr.write(`billvault: error: ${expected ? message : `unexpected: ${message}`}\n`);
    return e instanceof ConfigError ? 2 : 1;
  }
}
