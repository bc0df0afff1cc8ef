import type { Command } from 'commander';
import { createApiKeyAsOperator, revokeApiKeyAsOperator } from '../../app/api-keys.js';
import { loadConfig } from '../../config/config.js';
import { openRuntime } from '../../main/runtime.js';
import { createIdentityDeps } from '../../main/server.js';
import { CliError, makeOut } from '../output.js';
import { resolveOrg } from './users.js';

function json(cmd: Command): boolean {
  return Boolean((cmd.optsWithGlobals() as { json?: boolean }).json);
}

/** apikey create | revoke. */
export function registerApiKeyCommands(program: Command): void {
  const apikey = program.command('apikey').description('manage API keys');

  apikey
    .command('create')
    .description(
      'create an API key (the secret is printed once); owner permissions unless --scopes narrows them',
    )
    .requiredOption('--name <name>', 'a label for the key')
    .option('--scopes <list>', 'comma-separated permissions, e.g. invoices:read,customers:read')
    .option('--org <id>', 'org id (default: the only org)')
    .action(async (opts: { name: string; scopes?: string; org?: string }, cmd: Command) => {
      const out = makeOut(json(cmd));
      const scopes = opts.scopes
        ?.split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      if (opts.scopes !== undefined && scopes?.length === 0)
        throw new CliError('--scopes needs at least one permission');
      const rt = await openRuntime(loadConfig(), { migrate: true });
      try {
        const deps = await createIdentityDeps(rt);
        const orgId = await resolveOrg(rt, opts.org);
        const key = await createApiKeyAsOperator(deps, orgId, { name: opts.name, scopes });
        out.result(
          { id: key.id, secret: key.secret },
          `created API key ${key.id} in ${orgId}\nsecret (shown once, store it now): ${key.secret}`,
        );
      } finally {
        await rt.close();
      }
    });

  apikey
    .command('revoke')
    .description('revoke an API key at once')
    .argument('<id>', 'the key id (key_…)')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const out = makeOut(json(cmd));
      if (!/^key_[0-9a-z]{32}$/.test(id)) throw new CliError(`"${id}" is not an API key id (key_…)`);
      const rt = await openRuntime(loadConfig(), { migrate: true });
      try {
        const r = await revokeApiKeyAsOperator(await createIdentityDeps(rt), id);
        out.result({ id: r.id, revoked: true }, `revoked API key ${r.id}`);
      } finally {
        await rt.close();
      }
    });
}
