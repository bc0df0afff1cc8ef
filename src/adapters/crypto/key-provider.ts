import { createHmac, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../../config/config.js';
import { DecryptError, KEY_BYTES, open, seal } from './aead.js';

/** A key wrapped by the master key: the id of the master key version that wrapped it, and the bytes. */
export interface WrappedKey {
  masterKeyId: string;
  blob: Buffer;
}

/**
 * The root of the key hierarchy: wraps and unwraps key-encryption keys. Callers never see the
 * master key itself, so a KMS (AWS KMS Encrypt/Decrypt, GCP KMS, Vault transit) can replace
 * the local implementation without touching them (docs/key-providers.md).
 */
export interface KeyProvider {
  /** 'local', 'aws-kms', 'vault-transit'…; shown by `keys status` and `doctor`. */
  readonly kind: string;
  /** Where the master key comes from, log-safe (a path or 'BILLVAULT_MASTER_KEY'; never the key). */
  readonly source: string;
  /** The master key version new wraps use. */
  activeKeyId(): string;
  /** Every master key version this provider can unwrap with (the active one included). */
  keyIds(): readonly string[];
  /** Wraps key material under the active master key; `context` is bound in (AAD / encryption context). */
  wrap(key: Uint8Array, context: string): Promise<WrappedKey>;
  /** Unwraps, or throws if the master key version is unknown or the blob or context is wrong. */
  unwrap(wrapped: WrappedKey, context: string): Promise<Buffer>;
}

/** A master key version the provider does not hold: the data cannot be read with this configuration. */
export class UnknownMasterKeyError extends Error {
  override name = 'UnknownMasterKeyError';
  constructor(keyId: string, source: string) {
    super(
      `a key is wrapped under master key ${keyId}, which ${source} does not hold (wrong or replaced master key?)`,
    );
  }
}

/** The public, non-secret id of a master key: a keyed fingerprint, so it reveals nothing about the key. */
export function masterKeyId(key: Uint8Array): string {
  return `mk_${createHmac('sha256', key).update('billvault master key id v1').digest('hex').slice(0, 16)}`;
}

const WRAP_AAD_PREFIX = 'billvault/wrap/v1';

/**
 * The local provider: master key versions held in memory (from the key file or
 * BILLVAULT_MASTER_KEY), AES-256-GCM key wrapping with the master key id and context as AAD.
 * The last key is the active one; earlier ones only unwrap (kept during a master rotation).
 */
export class LocalKeyProvider implements KeyProvider {
  readonly kind = 'local';
  private readonly keys = new Map<string, Buffer>();
  private active: string;

  constructor(
    keys: Uint8Array[],
    readonly source: string,
  ) {
    if (keys.length === 0) throw new Error('the local key provider needs at least one master key');
    let last = '';
    for (const k of keys) {
      if (k.length !== KEY_BYTES) throw new Error('a master key must be exactly 32 bytes');
      last = masterKeyId(k);
      this.keys.set(last, Buffer.from(k));
    }
    this.active = last;
  }

  activeKeyId(): string {
    return this.active;
  }

  keyIds(): readonly string[] {
    return [...this.keys.keys()];
  }

  async wrap(key: Uint8Array, context: string): Promise<WrappedKey> {
    const master = this.keys.get(this.active)!;
    return { masterKeyId: this.active, blob: seal(master, key, aad(this.active, context)) };
  }

  async unwrap(wrapped: WrappedKey, context: string): Promise<Buffer> {
    const master = this.keys.get(wrapped.masterKeyId);
    if (!master) throw new UnknownMasterKeyError(wrapped.masterKeyId, this.source);
    try {
      return open(master, wrapped.blob, aad(wrapped.masterKeyId, context));
    } catch (e) {
      if (e instanceof DecryptError) throw new DecryptError(`a wrapped key failed to unwrap (${context})`);
      throw e;
    }
  }

  /** Adds a new master key version and makes it the active one (rotation). */
  addKey(key: Uint8Array): string {
    if (key.length !== KEY_BYTES) throw new Error('a master key must be exactly 32 bytes');
    const id = masterKeyId(key);
    this.keys.delete(id);
    this.keys.set(id, Buffer.from(key));
    this.active = id;
    return id;
  }

  /** Forgets a retired master key version (never the active one). */
  dropKey(id: string): void {
    if (id === this.active) throw new Error('cannot drop the active master key');
    this.keys.get(id)?.fill(0);
    this.keys.delete(id);
  }

  /** The raw key versions, oldest first, for writing the key file. */
  exportKeys(): Buffer[] {
    return [...this.keys.values()].map((k) => Buffer.from(k));
  }
}

function aad(keyId: string, context: string): Buffer {
  return Buffer.from(JSON.stringify([WRAP_AAD_PREFIX, keyId, context]), 'utf8');
}

/** A master key file: base64 keys, one per line, oldest first; the last is active; '#' starts a comment. */
export function parseKeyFile(text: string, file: string): Buffer[] {
  const keys: Buffer[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const key = /^[A-Za-z0-9+/]{43}=$/.test(line) ? Buffer.from(line, 'base64') : undefined;
    if (!key || key.length !== KEY_BYTES)
      throw new Error(`master key file ${file}: every key line must be base64 of exactly 32 bytes`);
    keys.push(key);
  }
  if (keys.length === 0) throw new Error(`master key file ${file} holds no key`);
  return keys;
}

function keyFileText(keys: Buffer[]): string {
  return [
    '# Billvault master key: keep it secret, keep it backed up apart from the database and its backups.',
    '# One base64 key per line, oldest first; the last line is the active key.',
    ...keys.map((k) => k.toString('base64')),
    '',
  ].join('\n');
}

/** Writes a key file atomically with mode 0600 (a temp file in the same directory, then rename). */
export async function writeKeyFile(file: string, keys: Buffer[]): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(tmp, keyFileText(keys), { mode: 0o600, flag: 'wx' });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}

/** True when anyone other than the owner can read or write the file. */
export async function keyFileTooOpen(file: string): Promise<boolean> {
  return ((await stat(file)).mode & 0o077) !== 0;
}

export interface LoadOptions {
  /** Create the key file (0600, parent 0700) when it does not exist. Default true. */
  create?: boolean;
}

/**
 * The provider the configuration names: BILLVAULT_MASTER_KEY, else the key file (by default
 * ~/.config/billvault/master.key, outside the data dir), created with 0600 when missing.
 * Refuses a key file that others can read.
 */
export async function loadKeyProvider(
  config: Pick<Config, 'masterKey'>,
  opts: LoadOptions = {},
): Promise<LocalKeyProvider> {
  const mk = config.masterKey;
  if (mk.source === 'env') {
    return new LocalKeyProvider([Buffer.from(mk.keyBase64, 'base64')], 'BILLVAULT_MASTER_KEY');
  }
  const file = mk.path;
  if (!existsSync(file)) {
    if (opts.create === false)
      throw new Error(`master key file ${file} does not exist: run billvault keys init`);
    await writeKeyFile(file, [randomBytes(KEY_BYTES)]);
  }
  if (await keyFileTooOpen(file)) {
    throw new Error(`master key file ${file} is readable by other users: chmod 600 it`);
  }
  return new LocalKeyProvider(parseKeyFile(await readFile(file, 'utf8'), file), file);
}
