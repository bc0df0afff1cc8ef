import type { Command } from 'commander';
import type pg from 'pg';
import { loadKeyProvider } from '../../adapters/crypto/key-provider.js';
import { migrationStatus } from '../../adapters/db/index.js';
import { createOrg, listOrgsAsOperator } from '../../app/orgs.js';
import { createUserAsOperator } from '../../app/users.js';
import { type Config, loadConfig } from '../../config/config.js';
import { openRuntime } from '../../main/runtime.js';
import { serve } from '../../main/serve.js';
import { createIdentityDeps, isLoopback } from '../../main/server.js';
import { CliError, makeOut } from '../output.js';
import { keyDatabaseProblems, masterKeyProblems } from './keys.js';
import { readNewPassword } from './users.js';

interface GlobalOpts {
  json?: boolean;
}

function globals(cmd: Command): GlobalOpts {
  return cmd.optsWithGlobals() as GlobalOpts;
}

/** serve, migrate, init, doctor. */
export function registerSystemCommands(program: Command): void {
  program
    .command('serve')
    .description('run the HTTP server (migrates the database first)')
    .option('--host <host>', 'address to listen on (env HOST, default 127.0.0.1)')
    .option('--port <port>', 'port to listen on (env PORT, default 3000)')
    .option('--tls-cert <file>', 'PEM certificate: serve HTTPS (env BILLVAULT_TLS_CERT)')
    .option('--tls-key <file>', 'PEM private key (env BILLVAULT_TLS_KEY)')
    .option('--workers <n>', 'server processes sharing the port, 1 to 64 (env BILLVAULT_WORKERS, default 1)')
    .option(
      '--behind-tls-proxy',
      'allow a non-loopback listener without TLS because a TLS proxy sits in front',
    )
    .action(
      async (opts: {
        host?: string;
        port?: string;
        tlsCert?: string;
        tlsKey?: string;
        behindTlsProxy?: boolean;
        workers?: string;
      }) => {
        const config = loadConfig(process.env, {
          HOST: opts.host,
          PORT: opts.port as unknown as number,
          BILLVAULT_TLS_CERT: opts.tlsCert,
          BILLVAULT_TLS_KEY: opts.tlsKey,
          BILLVAULT_BEHIND_TLS_PROXY: opts.behindTlsProxy ? true : undefined,
          BILLVAULT_WORKERS: opts.workers as unknown as number,
        });
        await serve(config);
      },
    );

  program
    .command('migrate')
    .description('apply pending database migrations')
    .action(async (_opts, cmd: Command) => {
      const out = makeOut(Boolean(globals(cmd).json));
      const rt = await openRuntime(loadConfig(), { migrate: true });
      await rt.close();
      out.result(
        { applied: rt.applied, database: rt.database.kind },
        rt.applied.length ? `applied: ${rt.applied.join(', ')}` : 'schema is current',
      );
    });

  program
    .command('init')
    .description('create the first org and its owner')
    .requiredOption('--org-name <name>', 'name of the organisation')
    .requiredOption(
      '--owner-email <email>',
      "owner's email (password from a prompt or BILLVAULT_OWNER_PASSWORD)",
    )
    .option('--currency <code>', 'base currency (ISO 4217)', 'EUR')
    .action(async (opts: { orgName: string; ownerEmail: string; currency: string }, cmd: Command) => {
      const out = makeOut(Boolean(globals(cmd).json));
      const rt = await openRuntime(loadConfig(), { migrate: true });
      try {
        const existing = await listOrgsAsOperator(rt.database.db);
        if (existing.length > 0) throw new CliError(`already initialised (org ${existing[0]?.id} exists)`);
        const identity = await createIdentityDeps(rt);
        // The password is read and checked before anything is created.
        const password = await readNewPassword(identity, 'BILLVAULT_OWNER_PASSWORD', opts.ownerEmail);
        const org = await createOrg(rt.database.db, { name: opts.orgName, baseCurrency: opts.currency });
        const owner = await createUserAsOperator(identity, {
          email: opts.ownerEmail,
          password,
          role: 'owner',
          orgId: org.id,
        });
        await loadKeyProvider(rt.config); // creates the master key file (0600) on a new install
        out.result(
          { org, owner: { id: owner.id, email: opts.ownerEmail.trim().toLowerCase() } },
          `created org ${org.id} (${org.name}, ${org.base_currency}) and its owner ${owner.id}`,
        );
      } finally {
        await rt.close();
      }
    });

  program
    .command('doctor')
    .description('report insecure or broken configuration; exits non-zero on any problem')
    .action(async (_opts, cmd: Command) => {
      const out = makeOut(Boolean(globals(cmd).json));
      const problems: string[] = [];
      const notes: string[] = [];
      const config = loadConfig();
      if (!config.tls && !config.behindTlsProxy && !isLoopback(config.host)) {
        problems.push(`TLS is off on the public address ${config.host}`);
      }
      if (config.devMode) {
        (isLoopback(config.host) ? notes : problems).push(
          'BILLVAULT_DEV_MODE is on: outbound webhooks may call http://localhost services',
        );
      }
      const masterKey = await masterKeyProblems(config);
      problems.push(...masterKey.problems);
      notes.push(...masterKey.notes);
      try {
        const rt = await openRuntime(config, { migrate: false });
        try {
          notes.push(`database: ${rt.database.describe}`);
          const budget = await connectionBudget(rt.database.pool, config);
          (budget.needed > budget.available ? problems : notes).push(budget.message);
          const status = await migrationStatus(rt.database.pool);
          if (status.pending.length > 0)
            problems.push(`schema is outdated: ${status.pending.length} migration(s) pending`);
          else {
            const keys = await keyDatabaseProblems(config, rt.database.db, new Date());
            problems.push(...keys.problems);
            notes.push(...keys.notes);
          }
        } finally {
          await rt.close();
        }
      } catch (e) {
        problems.push(`database: ${(e as Error).message}`);
      }
      out.result(
        { ok: problems.length === 0, problems, notes },
        [...notes, ...(problems.length ? problems.map((p) => `problem: ${p}`) : ['no problems found'])].join(
          '\n',
        ),
      );
      if (problems.length > 0) process.exitCode = 1;
    });
}

/**
 * The connections `serve` may open (each server process its pool, plus the primary's with
 * --workers) against what the server allows non-superusers, less what other sessions use now.
 */
async function connectionBudget(pool: pg.Pool, config: Config) {
  const r = await pool.query<{ max: number; reserved: number; used: number }>(
    `SELECT current_setting('max_connections')::int AS max,
            current_setting('superuser_reserved_connections')::int AS reserved,
            (SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'client backend') AS used`,
  );
  const { max, reserved, used } = r.rows[0] ?? { max: 0, reserved: 0, used: 0 };
  const processes = config.workers > 1 ? config.workers + 1 : 1;
  const needed = processes * config.dbPoolSize;
  // this doctor's own connection is among `used`
  const available = max - reserved - (used - 1);
  const message =
    needed > available
      ? `serve may open ${needed} database connections (${processes} process(es) × BILLVAULT_DB_POOL_SIZE ${config.dbPoolSize}) but the server has ${available} free (max_connections ${max}): lower BILLVAULT_WORKERS or BILLVAULT_DB_POOL_SIZE, or raise max_connections`
      : `database connections: serve may open ${needed} of ${available} free`;
  return { needed, available, message };
}
