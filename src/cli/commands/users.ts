import type { Command } from 'commander';
import { assertAcceptablePassword, passwordContext } from '../../app/auth.js';
import { listOrgsAsOperator } from '../../app/orgs.js';
import type { IdentityDeps } from '../../app/sessions.js';
import { createUserAsOperator, disableUserAsOperator, unlockUserAsOperator } from '../../app/users.js';
import { loadConfig } from '../../config/config.js';
import { isRole, ROLES } from '../../domain/permissions.js';
import { openRuntime, type Runtime } from '../../main/runtime.js';
import { createIdentityDeps } from '../../main/server.js';
import { CliError, makeOut } from '../output.js';

function json(cmd: Command): boolean {
  return Boolean((cmd.optsWithGlobals() as { json?: boolean }).json);
}

/**
 * Reads a secret from the environment, or from the terminal without echoing it. Never from a
 * command-line flag (flags end up in shell history and `ps`).
 */
export async function readSecret(envName: string, prompt: string): Promise<string> {
  const fromEnv = process.env[envName];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const stdin = process.stdin;
  if (!stdin.isTTY) throw new CliError(`no terminal to prompt for the password: set ${envName}`);
  // Echo goes off before the prompt appears, so nothing typed (or pasted) early is echoed.
  stdin.setRawMode(true);
  process.stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let value = '';
    stdin.resume();
    stdin.setEncoding('utf8');
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.removeListener('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new CliError('cancelled'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/** Asks for a new password twice (or takes it from the environment) and checks the policy first. */
export async function readNewPassword(deps: IdentityDeps, envName: string, email: string): Promise<string> {
  const fromEnv = process.env[envName];
  const password = await readSecret(envName, `Password for ${email}: `);
  if (fromEnv === undefined || fromEnv === '') {
    const again = await readSecret(envName, 'Repeat the password: ');
    if (again !== password) throw new CliError('the passwords do not match');
  }
  assertAcceptablePassword(deps, password, passwordContext(email.toLowerCase()));
  return password;
}

/** The org named by --org, or the only org of the installation. */
export async function resolveOrg(rt: Runtime, org: string | undefined): Promise<string> {
  const orgs = await listOrgsAsOperator(rt.database.db);
  if (org) {
    if (!orgs.some((o) => o.id === org)) throw new CliError(`no org ${org}`);
    return org;
  }
  if (orgs.length === 0) throw new CliError('no org yet: run billvault init first');
  if (orgs.length > 1) throw new CliError(`${orgs.length} orgs exist: choose one with --org`);
  return orgs[0]?.id ?? '';
}

/** user create | disable | unlock. */
export function registerUserCommands(program: Command): void {
  const user = program.command('user').description('manage user accounts');

  user
    .command('create')
    .description('create a user with a role in an org (password from a prompt or BILLVAULT_USER_PASSWORD)')
    .requiredOption('--email <email>', 'email address (the login)')
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`)
    .option('--org <id>', 'org id (default: the only org)')
    .action(async (opts: { email: string; role: string; org?: string }, cmd: Command) => {
      const out = makeOut(json(cmd));
      if (!isRole(opts.role)) throw new CliError(`unknown role "${opts.role}" (one of ${ROLES.join(', ')})`);
      const rt = await openRuntime(loadConfig(), { migrate: true });
      try {
        const deps = await createIdentityDeps(rt);
        const orgId = await resolveOrg(rt, opts.org);
        const password = await readNewPassword(deps, 'BILLVAULT_USER_PASSWORD', opts.email);
        const r = await createUserAsOperator(deps, { email: opts.email, password, role: opts.role, orgId });
        out.result(
          { id: r.id },
          r.created
            ? `created user ${r.id} (${opts.role} in ${orgId})`
            : `added user ${r.id} to ${orgId} as ${opts.role}`,
        );
      } finally {
        await rt.close();
      }
    });

  user
    .command('disable')
    .description('disable a user everywhere: their sessions and API keys stop working at once')
    .requiredOption('--email <email>', 'email address')
    .action(async (opts: { email: string }, cmd: Command) => {
      const out = makeOut(json(cmd));
      const rt = await openRuntime(loadConfig(), { migrate: true });
      try {
        const r = await disableUserAsOperator(await createIdentityDeps(rt), opts.email);
        out.result(
          {
            id: r.id,
            disabled: true,
            sessions_revoked: r.sessions_revoked,
            api_keys_revoked: r.api_keys_revoked,
          },
          `disabled user ${r.id} (${r.sessions_revoked} sessions and ${r.api_keys_revoked} API keys revoked)`,
        );
      } finally {
        await rt.close();
      }
    });

  user
    .command('unlock')
    .description('lift a lockout after too many failed sign-ins')
    .requiredOption('--email <email>', 'email address')
    .action(async (opts: { email: string }, cmd: Command) => {
      const out = makeOut(json(cmd));
      const rt = await openRuntime(loadConfig(), { migrate: true });
      try {
        const r = await unlockUserAsOperator(await createIdentityDeps(rt), opts.email);
        out.result({ id: r.id, unlocked: true }, `unlocked user ${r.id}`);
      } finally {
        await rt.close();
      }
    });
}
