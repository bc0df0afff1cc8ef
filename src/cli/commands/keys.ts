import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { registeredTables } from '../../adapters/crypto/encrypted-columns.js';
import '../../adapters/crypto/encrypted-tables.js';
import { createFieldCipher } from '../../adapters/crypto/field-cipher.js';
import {
  type LocalKeyProvider,
  loadKeyProvider,
  masterKeyId,
  parseKeyFile,
  writeKeyFile,
} from '../../adapters/crypto/key-provider.js';
import { migrationStatus } from '../../adapters/db/index.js';
import {
  initKeys,
  type KeyAdminDeps,
  keyStatus,
  newMasterKey,
  overdueKeks,
  reencrypt,
  referencedMasterKeys,
  rotateKek,
  rotateMaster,
  type Scope,
} from '../../app/keys.js';
import { type Config, loadConfig } from '../../config/config.js';
import { openRuntime, type Runtime } from '../../main/runtime.js';
import { CliError, makeOut } from '../output.js';

function json(cmd: Command): boolean {
  return Boolean((cmd.optsWithGlobals() as { json?: boolean }).json);
}

/** Opens the database and the key provider for a key command; the schema must be current. */
async function openKeys(
  config: Config,
  create: boolean,
): Promise<{ rt: Runtime; deps: KeyAdminDeps & { keyProvider: LocalKeyProvider } }> {
  const keyProvider = await loadKeyProvider(config, { create });
  const rt = await openRuntime(config, { migrate: false });
  try {
    const status = await migrationStatus(rt.database.pool);
    if (status.pending.length > 0)
      throw new CliError('the schema is not current: run billvault migrate first');
  } catch (e) {
    await rt.close();
    throw e;
  }
  return {
    rt,
    deps: {
      db: rt.database.db,
      keyProvider,
      cipher: createFieldCipher(keyProvider),
      tables: registeredTables(),
      meta: { requestId: null, ip: null, userAgent: 'billvault-cli' },
    },
  };
}

const scopeName = (s: Scope) => s ?? 'platform';

/** keys init | rotate | reencrypt | status. */
export function registerKeyCommands(program: Command): void {
  const keys = program.command('keys').description('master key, key-encryption keys and data keys');

  keys
    .command('init')
    .description('create the master key file (0600) if missing and a KEK for the platform and every org')
    .action(async (_opts, cmd: Command) => {
      const out = makeOut(json(cmd));
      const config = loadConfig();
      const existed = config.masterKey.source === 'env' || existsSync(config.masterKey.path);
      const { rt, deps } = await openKeys(config, true);
      try {
        const keks = await initKeys(deps);
        out.result(
          {
            master_key: {
              source: deps.keyProvider.source,
              created: !existed,
              id: deps.keyProvider.activeKeyId(),
            },
            keks: keks.map((k) => ({ scope: scopeName(k.scope), version: k.version })),
          },
          [
            existed
              ? `master key: ${deps.keyProvider.source} (${deps.keyProvider.activeKeyId()})`
              : `created master key file ${deps.keyProvider.source} (mode 0600): back it up apart from the database`,
            ...keks.map((k) => `KEK ${scopeName(k.scope)}: version ${k.version} active`),
          ].join('\n'),
        );
      } finally {
        await rt.close();
      }
    });

  keys
    .command('rotate')
    .description(
      'rotate the master key (--master) or one KEK (--org ID | --platform); online, no data re-encryption',
    )
    .option('--master', 'new master key version; every KEK is re-wrapped, the old master key is destroyed')
    .option('--org <id>', 'new KEK version for this org; its data keys are re-wrapped')
    .option('--platform', 'new platform KEK version')
    .option(
      '--new-key-out <file>',
      'with BILLVAULT_MASTER_KEY: write the new master key here (0600); then set BILLVAULT_MASTER_KEY from it',
    )
    .action(
      async (
        opts: { master?: boolean; org?: string; platform?: boolean; newKeyOut?: string },
        cmd: Command,
      ) => {
        const out = makeOut(json(cmd));
        const chosen = [opts.master, opts.org !== undefined, opts.platform].filter(Boolean).length;
        if (chosen !== 1) throw new CliError('give exactly one of --master, --org ID, --platform');
        const config = loadConfig();
        const { rt, deps } = await openKeys(config, false);
        try {
          if (opts.master) {
            let persist: (keys: Buffer[]) => Promise<void>;
            if (config.masterKey.source === 'file') {
              const file = config.masterKey.path;
              persist = (k) => writeKeyFile(file, k);
            } else {
              if (!opts.newKeyOut)
                throw new CliError('the master key comes from BILLVAULT_MASTER_KEY: give --new-key-out FILE');
              const target = opts.newKeyOut;
              if (existsSync(target)) throw new CliError(`${target} exists; choose a new file`);
              let written = false;
              persist = async (k) => {
                if (written) return;
                await writeKeyFile(target, [k.at(-1)!]);
                written = true;
              };
            }
            const res = await rotateMaster(deps, persist, newMasterKey());
            out.result(
              {
                master_key_id: res.masterKeyId,
                rewrapped_keks: res.rewrapped,
                destroyed_master_keys: res.dropped,
              },
              [
                `new master key ${res.masterKeyId}; ${res.rewrapped} KEK(s) re-wrapped; destroyed: ${res.dropped.join(', ') || 'none'}`,
                ...(config.masterKey.source === 'env'
                  ? [`now set BILLVAULT_MASTER_KEY to the key in ${opts.newKeyOut} and delete that file`]
                  : []),
              ].join('\n'),
            );
          } else {
            const scope: Scope = opts.platform ? null : opts.org!;
            if (scope !== null) {
              const found = await deps.db
                .selectFrom('orgs')
                .select('id')
                .where('id', '=', scope)
                .executeTakeFirst();
              if (!found) throw new CliError(`no org ${scope}`);
            }
            const res = await rotateKek(deps, scope);
            out.result(
              {
                scope: scopeName(scope),
                version: res.newVersion,
                rewrapped_data_keys: res.rewrapped,
                destroyed_versions: res.destroyedVersions,
              },
              `KEK ${scopeName(scope)}: version ${res.newVersion} active; ${res.rewrapped} data key(s) re-wrapped; destroyed version(s): ${res.destroyedVersions.join(', ') || 'none'}`,
            );
          }
        } finally {
          await rt.close();
        }
      },
    );

  keys
    .command('reencrypt')
    .description(
      'move all encrypted data to new data keys in batches; Ctrl-C stops safely, run again to resume',
    )
    .option('--org <id>', 'only this org')
    .option('--batch-size <n>', 'rows per transaction', '200')
    .action(async (opts: { org?: string; batchSize: string }, cmd: Command) => {
      const out = makeOut(json(cmd));
      const batchSize = Number(opts.batchSize);
      if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000)
        throw new CliError('--batch-size must be a whole number from 1 to 10000');
      const { rt, deps } = await openKeys(loadConfig(), false);
      const controller = new AbortController();
      let interrupts = 0;
      // Other SIGINT listeners (the embedded server's exit hook) would end the process at once;
      // while batches run, the first Ctrl-C only asks to stop, the second hands over to them.
      const others = process.listeners('SIGINT');
      process.removeAllListeners('SIGINT');
      const onSigint = () => {
        interrupts++;
        if (interrupts > 1) {
          if (others.length === 0) process.exit(130);
          for (const l of others) l('SIGINT');
          return;
        }
        process.stderr.write('\nstopping after the current batch (Ctrl-C again to abort now)…\n');
        controller.abort();
      };
      process.on('SIGINT', onSigint);
      const bar =
        out.json || !process.stderr.isTTY
          ? undefined
          : new SingleBar({ stream: process.stderr, format: ' {scope} [{bar}] {value}/{total}' });
      try {
        const res = await reencrypt(deps, {
          ...(opts.org ? { orgId: opts.org } : {}),
          batchSize,
          signal: controller.signal,
          onPlan: (scope, total) => {
            bar?.stop();
            bar?.start(total, 0, { scope: scopeName(scope) });
          },
          onProgress: (p) => bar?.update(p.done, { scope: scopeName(p.scope) }),
        });
        bar?.stop();
        out.result(
          {
            interrupted: res.interrupted,
            retired_keys: res.retiredKeys,
            reencrypted: res.reencrypted,
            destroyed_keys: res.destroyedKeys,
            kept_keys: res.keptKeys,
          },
          res.interrupted
            ? `interrupted after ${res.reencrypted} value(s); run billvault keys reencrypt again to resume`
            : `re-encrypted ${res.reencrypted} value(s); destroyed ${res.destroyedKeys} retired data key(s)${
                res.keptKeys.length
                  ? `; kept ${res.keptKeys.length} still referenced outside the registered tables`
                  : ''
              }`,
        );
        if (res.interrupted) process.exitCode = 130;
      } finally {
        bar?.stop();
        process.off('SIGINT', onSigint);
        for (const l of others) process.on('SIGINT', l);
        await rt.close();
      }
    });

  keys
    .command('status')
    .description('master key versions, KEK and data key versions, and how many values each protects')
    .option('--org <id>', 'only this org')
    .action(async (opts: { org?: string }, cmd: Command) => {
      const out = makeOut(json(cmd));
      const { rt, deps } = await openKeys(loadConfig(), false);
      try {
        const st = await keyStatus(deps, opts.org);
        const lines = [
          `master key: ${st.provider.kind} ${st.provider.source}; active ${st.provider.active_master_key_id}` +
            (st.provider.master_key_ids.length > 1
              ? ` (also holds ${st.provider.master_key_ids.length - 1} older)`
              : ''),
          ...Object.entries(st.master_keys_referenced).map(([id, n]) => `  ${id}: wraps ${n} KEK(s)`),
        ];
        for (const s of st.scopes) {
          lines.push(`${scopeName(s.scope)}:`);
          for (const k of s.keks)
            lines.push(
              `  KEK v${k.version} ${k.status} (${k.master_key_id}, ${k.created_at.slice(0, 10)}): ${k.data_keys} data key(s)`,
            );
          for (const d of s.data_keys) lines.push(`  ${d.purpose} keys ${d.status}: ${d.count}`);
          lines.push(
            `  values: ${s.values.active} under active keys, ${s.values.decrypt_only} under retired keys, ${s.values.destroyed} shredded`,
          );
        }
        out.result(st, lines.join('\n'));
      } finally {
        await rt.close();
      }
    });
}

/** For `doctor`: the master key's configuration problems, without opening the database. */
export async function masterKeyProblems(config: Config): Promise<{ problems: string[]; notes: string[] }> {
  const problems: string[] = [];
  const notes: string[] = [];
  if (config.masterKey.source === 'env') {
    notes.push(
      `master key: BILLVAULT_MASTER_KEY (${masterKeyId(Buffer.from(config.masterKey.keyBase64, 'base64'))})`,
    );
    return { problems, notes };
  }
  const file = config.masterKey.path;
  if (!existsSync(file)) {
    problems.push(`master key file ${file} is missing: run billvault keys init`);
    return { problems, notes };
  }
  const { stat } = await import('node:fs/promises');
  const mode = (await stat(file)).mode & 0o777;
  if (mode & 0o077)
    problems.push(
      `master key file ${file} is readable by other users (mode ${mode.toString(8)}): chmod 600 it`,
    );
  const dataDir = config.dataDir.endsWith('/') ? config.dataDir : `${config.dataDir}/`;
  if (file.startsWith(dataDir))
    problems.push(
      `master key file ${file} is inside the data dir: a copy of the data dir would carry its key`,
    );
  try {
    const keys = parseKeyFile(await readFile(file, 'utf8'), file);
    notes.push(`master key: ${file} (${masterKeyId(keys.at(-1)!)})`);
    if (keys.length > 1)
      problems.push(
        `master key file holds ${keys.length} versions: a rotation did not finish (run billvault keys rotate --master)`,
      );
  } catch (e) {
    problems.push((e as Error).message);
  }
  return { problems, notes };
}

/** For `doctor`, with the database open: KEKs overdue for rotation, KEKs under a master key we lack. */
export async function keyDatabaseProblems(
  config: Config,
  db: KeyAdminDeps['db'],
  now: Date,
): Promise<{ problems: string[]; notes: string[] }> {
  const problems: string[] = [];
  const notes: string[] = [];
  for (const k of await overdueKeks({ db }, now))
    problems.push(
      `KEK ${scopeName(k.scope)} v${k.version} is ${k.age_days} days old: rotate it (billvault keys rotate)`,
    );
  if (config.masterKey.source === 'env' || existsSync(config.masterKey.path)) {
    try {
      const kp = await loadKeyProvider(config, { create: false });
      const deps = { db, keyProvider: kp, cipher: createFieldCipher(kp), tables: registeredTables() };
      const known = new Set(kp.keyIds());
      for (const [id, n] of await referencedMasterKeys(deps))
        if (!known.has(id))
          problems.push(`${n} KEK(s) are wrapped under master key ${id}, which is not configured`);
      notes.push(`keys: ${(await referencedMasterKeys(deps)).size} master key version(s) in use`);
    } catch (e) {
      problems.push(`master key: ${(e as Error).message}`);
    }
  }
  return { problems, notes };
}
