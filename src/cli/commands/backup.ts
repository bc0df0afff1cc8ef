import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import type { Command } from 'commander';
import { type BackupSecret, backupKeyId, readHeader } from '../../adapters/backup/archive.js';
import { createBackup, restoreBackup, verifyBackup } from '../../adapters/backup/dump.js';
import { migrate } from '../../adapters/db/index.js';
import { fileErasureLog } from '../../adapters/privacy/erasure-log.js';
import { reapplyErasures } from '../../app/privacy.js';
import { loadConfig } from '../../config/config.js';
import { openRuntime } from '../../main/runtime.js';
import { createIdentityDeps } from '../../main/server.js';
import { CliError, makeOut, type Out } from '../output.js';

const MIN_PASSPHRASE = 12;

function json(cmd: Command): boolean {
  return Boolean((cmd.optsWithGlobals() as { json?: boolean }).json);
}

/** Reads a line from the terminal without echoing it. */
async function promptHidden(question: string): Promise<string> {
  if (!process.stdin.isTTY)
    throw new CliError('set BILLVAULT_BACKUP_PASSPHRASE or give --key-file (no terminal to ask on)');
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  const output = rl as unknown as { _writeToOutput: (s: string) => void };
  let asked = false;
  output._writeToOutput = (s: string) => {
    if (!asked) {
      process.stderr.write(s);
      asked = true;
    }
  };
  try {
    return await new Promise<string>((resolve) => rl.question(question, resolve));
  } finally {
    rl.close();
    process.stderr.write('\n');
  }
}

/** Reads a backup key file: base64 of 32 bytes, not readable by others. */
export async function readBackupKeyFile(file: string): Promise<Buffer> {
  if (!existsSync(file)) throw new CliError(`backup key file ${file} does not exist`);
  if (((await stat(file)).mode & 0o077) !== 0)
    throw new CliError(`backup key file ${file} is readable by other users: chmod 600 it`);
  const text =
    (await readFile(file, 'utf8'))
      .split('\n')
      .find((l) => l.trim() && !l.startsWith('#'))
      ?.trim() ?? '';
  if (!/^[A-Za-z0-9+/]{43}=$/.test(text))
    throw new CliError(`backup key file ${file} must hold base64 of exactly 32 bytes`);
  return Buffer.from(text, 'base64');
}

async function secretFor(opts: { keyFile?: string }, creating: boolean): Promise<BackupSecret> {
  if (opts.keyFile) return { kind: 'key_file', key: await readBackupKeyFile(opts.keyFile) };
  let passphrase = process.env.BILLVAULT_BACKUP_PASSPHRASE;
  if (!passphrase) {
    passphrase = await promptHidden('Backup passphrase: ');
    if (creating && (await promptHidden('Repeat the passphrase: ')) !== passphrase)
      throw new CliError('the passphrases differ');
  }
  if (creating && [...passphrase].length < MIN_PASSPHRASE)
    throw new CliError(`the backup passphrase must be at least ${MIN_PASSPHRASE} characters`);
  return { kind: 'passphrase', passphrase };
}

/** The secret an existing archive needs, as its header says. */
async function secretForArchive(file: string, opts: { keyFile?: string }): Promise<BackupSecret> {
  const header = await readHeader(file);
  if (header.kdf.name === 'hkdf-sha256' && !opts.keyFile)
    throw new CliError(`this backup was made with backup key file ${header.kdf.key_id}: give --key-file`);
  return secretFor(opts, false);
}

const mb = (bytes: number) => bytes / (1024 * 1024);

function progress(out: Out) {
  return (name: string, rows: number) => out.info(`  ${name}: ${rows} row(s)`);
}

/** backup create | verify | restore | keygen. */
export function registerBackupCommands(program: Command): void {
  const backup = program.command('backup').description('encrypted, authenticated backups');

  backup
    .command('keygen')
    .description('write a new random backup key file (0600), an alternative to a passphrase')
    .argument('<file>', 'where to write it (must not exist)')
    .action(async (file: string, _opts, cmd: Command) => {
      const out = makeOut(json(cmd));
      if (existsSync(file)) throw new CliError(`${file} exists; choose a new file`);
      const key = randomBytes(32);
      await writeFile(
        file,
        `# Billvault backup key: keep it apart from the backups\n${key.toString('base64')}\n`,
        {
          mode: 0o600,
          flag: 'wx',
        },
      );
      out.result({ file, key_id: backupKeyId(key) }, `wrote backup key ${backupKeyId(key)} to ${file}`);
    });

  backup
    .command('create')
    .description(
      'write an encrypted backup of the whole database (passphrase: BILLVAULT_BACKUP_PASSPHRASE or prompt)',
    )
    .argument('<file>', 'the archive to write (must not exist)')
    .option('--key-file <file>', 'encrypt with a backup key file instead of a passphrase')
    .action(async (file: string, opts: { keyFile?: string }, cmd: Command) => {
      const out = makeOut(json(cmd));
      if (existsSync(file)) throw new CliError(`${file} exists; backups never overwrite`);
      const secret = await secretFor(opts, true);
      const rt = await openRuntime(loadConfig(), { migrate: false });
      try {
        const started = performance.now();
        const res = await createBackup(rt.database.db, path.resolve(file), secret, {
          kind: rt.database.kind,
          onTable: progress(out),
        });
        const secs = (performance.now() - started) / 1000;
        const rows = res.manifest.tables.reduce((n, t) => n + t.rows, 0);
        out.result(
          {
            file,
            bytes: res.bytesWritten,
            tables: res.manifest.tables.length,
            rows,
            schema_version: res.manifest.schema.version,
            mb_per_s: Number((mb(res.plaintextBytes) / secs).toFixed(2)),
          },
          `backup written to ${file}: ${res.manifest.tables.length} tables, ${rows} rows, ${mb(res.bytesWritten).toFixed(2)} MB (${(mb(res.plaintextBytes) / secs).toFixed(1)} MB/s)`,
        );
      } finally {
        await rt.close();
      }
    });

  backup
    .command('verify')
    .description('decrypt and check a backup completely without restoring it')
    .argument('<file>', 'the archive')
    .option('--key-file <file>', 'the backup key file it was made with')
    .action(async (file: string, opts: { keyFile?: string }, cmd: Command) => {
      const out = makeOut(json(cmd));
      if (!existsSync(file)) throw new CliError(`${file} does not exist`);
      const secret = await secretForArchive(file, opts);
      const m = await verifyBackup(file, secret);
      const rows = m.tables.reduce((n, t) => n + t.rows, 0);
      out.result(
        {
          ok: true,
          created_at: m.created_at,
          source: m.source,
          schema_version: m.schema.version,
          tables: m.tables,
        },
        `backup OK: made ${m.created_at} from ${m.source.kind} PostgreSQL ${m.source.server_version}, schema version ${m.schema.version}, ${m.tables.length} tables, ${rows} rows`,
      );
    });

  backup
    .command('restore')
    .description('verify a backup, then restore it into an empty database in one transaction')
    .argument('<file>', 'the archive')
    .option('--key-file <file>', 'the backup key file it was made with')
    .option('--force', 'embedded store only: move the current data dir aside and restore into a new one')
    .action(async (file: string, opts: { keyFile?: string; force?: boolean }, cmd: Command) => {
      const out = makeOut(json(cmd));
      if (!existsSync(file)) throw new CliError(`${file} does not exist`);
      const config = loadConfig();
      const secret = await secretForArchive(file, opts);
      // Verify before touching anything, so a bad archive never costs the current data dir.
      await verifyBackup(file, secret);
      let movedAside: string | undefined;
      if (opts.force) {
        if (config.databaseUrl)
          throw new CliError(
            '--force works on the embedded store only; point DATABASE_URL at a new, empty database',
          );
        if (existsSync(config.dataDir) && readdirSync(config.dataDir).length > 0) {
          movedAside = `${config.dataDir}.before-restore-${new Date().toISOString().replace(/[:.]/g, '-')}`;
          await rename(config.dataDir, movedAside);
          out.info(`moved the current data dir aside to ${movedAside}`);
        }
      }
      const rt = await openRuntime(config, { migrate: false });
      try {
        const started = performance.now();
        const res = await restoreBackup(rt.database.db, rt.database.pool, path.resolve(file), secret, {
          onTable: progress(out),
        });
        const secs = (performance.now() - started) / 1000;
        const applied = await migrate(rt.database.pool);
        // Erasures made after this backup was taken are applied again (the erasure log lives
        // outside the database), so a restore never brings an erased customer back.
        const erasureLog = fileErasureLog(config.privacy.erasureLog);
        const reErased = (await erasureLog.list()).length
          ? await reapplyErasures(await createIdentityDeps(rt), erasureLog)
          : [];
        if (reErased.length) out.info(`applied ${reErased.length} later erasure(s) again`);
        const size = (await stat(file)).size;
        out.result(
          {
            restored: true,
            rows: res.rowsWritten,
            tables: res.manifest.tables.length,
            schema_version: res.manifest.schema.version,
            migrated_after_restore: applied,
            erasures_reapplied: reErased,
            moved_aside: movedAside ?? null,
            mb_per_s: Number((mb(size) / secs).toFixed(2)),
          },
          `restored ${res.rowsWritten} rows in ${res.manifest.tables.length} tables into ${rt.database.describe}${
            applied.length ? `; then applied ${applied.join(', ')}` : ''
          }`,
        );
      } finally {
        await rt.close();
      }
    });
}
