import { createHash, hkdfSync, randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { open as openFile, rename, rm } from 'node:fs/promises';
import argon2 from 'argon2';
import { DecryptError, gcmDecrypt, gcmEncrypt, TAG_BYTES } from '../crypto/aead.js';

/**
 * The encrypted backup container: a plaintext header (authenticated, never secret), then the
 * payload in AES-256-GCM chunks (the STREAM construction of Hoang, Reyhanitabar, Rogaway and
 * Vizár): nonce = 7-byte random prefix ‖ 32-bit chunk counter ‖ last-chunk flag, AAD = SHA-256
 * of the magic and header. Reordering, dropping, truncating or appending chunks, or editing
 * the header, all fail authentication.
 *
 *   "BVBACKUP" ‖ u32 header length ‖ header JSON ‖ { u32 plaintext length ‖ ciphertext ‖ tag }*
 *
 * The key comes from a passphrase (argon2id, 64 MiB, t=3) or a backup key file (HKDF-SHA256),
 * never from the master key: a backup is restorable on a new machine with the passphrase and
 * the master key file, and neither alone suffices for the encrypted fields inside.
 */
export const MAGIC = Buffer.from('BVBACKUP', 'ascii');
export const ARCHIVE_VERSION = 1;
const CHUNK_SIZE = 1024 * 1024;
const MAX_CHUNK = 16 * 1024 * 1024;
const MAX_HEADER = 64 * 1024;

export type BackupSecret = { kind: 'passphrase'; passphrase: string } | { kind: 'key_file'; key: Buffer };

type KdfHeader =
  | { name: 'argon2id'; memory_kib: number; iterations: number; parallelism: number; salt: string }
  | { name: 'hkdf-sha256'; salt: string; key_id: string };

export interface ArchiveHeader {
  format: 'billvault-backup';
  archive_version: number;
  cipher: 'AES-256-GCM';
  chunk_size: number;
  nonce_prefix: string;
  kdf: KdfHeader;
}

/** Something is wrong with the archive (wrong secret, corruption, truncation, tampering). */
export class BackupFormatError extends Error {
  override name = 'BackupFormatError';
}

const ARGON = { memory_kib: 65536, iterations: 3, parallelism: 1 };

/** A backup key file's public id (so `verify` can say which key file an archive needs). */
export function backupKeyId(key: Buffer): string {
  return `bk_${createHash('sha256').update('billvault backup key id v1').update(key).digest('hex').slice(0, 16)}`;
}

async function deriveKey(secret: BackupSecret, kdf: KdfHeader): Promise<Buffer> {
  const salt = Buffer.from(kdf.salt, 'base64');
  if (kdf.name === 'argon2id') {
    if (secret.kind !== 'passphrase')
      throw new BackupFormatError('this backup was encrypted with a passphrase');
    const sane = (v: unknown, min: number, max: number) =>
      Number.isInteger(v) && Number(v) >= min && Number(v) <= max;
    if (
      !sane(kdf.memory_kib, 19 * 1024, 1024 * 1024) ||
      !sane(kdf.iterations, 1, 20) ||
      !sane(kdf.parallelism, 1, 8) ||
      salt.length < 16
    )
      throw new BackupFormatError('the backup header is damaged (key-derivation parameters)');
    try {
      return await argon2.hash(secret.passphrase, {
        type: argon2.argon2id,
        raw: true,
        salt,
        memoryCost: kdf.memory_kib,
        timeCost: kdf.iterations,
        parallelism: kdf.parallelism,
        hashLength: 32,
      });
    } catch {
      throw new BackupFormatError('the backup header is damaged (key derivation failed)');
    }
  }
  if (secret.kind !== 'key_file')
    throw new BackupFormatError('this backup was encrypted with a backup key file');
  if (backupKeyId(secret.key) !== kdf.key_id)
    throw new BackupFormatError(`this backup needs the backup key file ${kdf.key_id}`);
  return Buffer.from(hkdfSync('sha256', secret.key, salt, 'billvault backup v1', 32));
}

function nonce(prefix: Buffer, counter: number, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  prefix.copy(n, 0, 0, 7);
  n.writeUInt32BE(counter, 7);
  n[11] = last ? 1 : 0;
  return n;
}

function headerAad(headerBytes: Buffer): Buffer {
  return createHash('sha256').update(MAGIC).update(headerBytes).digest();
}

/** Writes an archive to a temporary file, renamed into place only when complete (mode 0600). */
export class ArchiveWriter {
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private counter = 0;
  private position = 0;
  bytesIn = 0;

  private constructor(
    private readonly fh: FileHandle,
    private readonly tmp: string,
    private readonly target: string,
    private readonly key: Buffer,
    private readonly prefix: Buffer,
    private readonly aad: Buffer,
  ) {}

  static async create(target: string, secret: BackupSecret): Promise<ArchiveWriter> {
    const salt = randomBytes(16);
    const kdf: KdfHeader =
      secret.kind === 'passphrase'
        ? { name: 'argon2id', ...ARGON, salt: salt.toString('base64') }
        : { name: 'hkdf-sha256', salt: salt.toString('base64'), key_id: backupKeyId(secret.key) };
    const key = await deriveKey(secret, kdf);
    const prefix = randomBytes(7);
    const header: ArchiveHeader = {
      format: 'billvault-backup',
      archive_version: ARCHIVE_VERSION,
      cipher: 'AES-256-GCM',
      chunk_size: CHUNK_SIZE,
      nonce_prefix: prefix.toString('base64'),
      kdf,
    };
    const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
    const tmp = `${target}.${randomBytes(6).toString('hex')}.partial`;
    const fh = await openFile(tmp, 'wx', 0o600);
    const w = new ArchiveWriter(fh, tmp, target, key, prefix, headerAad(headerBytes));
    const len = Buffer.alloc(4);
    len.writeUInt32BE(headerBytes.length);
    await w.raw(Buffer.concat([MAGIC, len, headerBytes]));
    return w;
  }

  private async raw(buf: Buffer): Promise<void> {
    let off = 0;
    while (off < buf.length) {
      const { bytesWritten } = await this.fh.write(buf, off, buf.length - off, this.position);
      off += bytesWritten;
      this.position += bytesWritten;
    }
  }

  private async flushChunk(data: Buffer, last: boolean): Promise<void> {
    const { ciphertext, tag } = gcmEncrypt(
      this.key,
      nonce(this.prefix, this.counter++, last),
      data,
      this.aad,
    );
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    await this.raw(Buffer.concat([len, ciphertext, tag]));
  }

  /** Appends plaintext; full chunks are encrypted and written as they fill. */
  async write(data: Buffer | string): Promise<void> {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    this.bytesIn += buf.length;
    this.buffered.push(buf);
    this.bufferedBytes += buf.length;
    while (this.bufferedBytes >= CHUNK_SIZE) {
      const all = Buffer.concat(this.buffered);
      await this.flushChunk(all.subarray(0, CHUNK_SIZE), false);
      const rest = all.subarray(CHUNK_SIZE);
      this.buffered = rest.length ? [rest] : [];
      this.bufferedBytes = rest.length;
    }
  }

  /** Writes the final chunk, syncs, and moves the archive into place. Returns its size in bytes. */
  async finish(): Promise<number> {
    await this.flushChunk(Buffer.concat(this.buffered), true);
    this.buffered = [];
    await this.fh.sync();
    await this.fh.close();
    await rename(this.tmp, this.target);
    this.key.fill(0);
    return this.position;
  }

  /** Abandons the archive: the partial file is removed, nothing is left at the target. */
  async abort(): Promise<void> {
    await this.fh.close().catch(() => {});
    await rm(this.tmp, { force: true });
    this.key.fill(0);
  }
}

async function readExactly(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let off = 0;
  while (off < length) {
    const { bytesRead } = await fh.read(buf, off, length - off, position + off);
    if (bytesRead === 0) throw new BackupFormatError('the backup is truncated');
    off += bytesRead;
  }
  return buf;
}

/** Reads and checks the plaintext header (no secret needed). */
export async function readHeader(file: string): Promise<ArchiveHeader> {
  const fh = await openFile(file, 'r');
  try {
    return (await parseHeader(fh)).header;
  } finally {
    await fh.close();
  }
}

async function parseHeader(fh: FileHandle): Promise<{ header: ArchiveHeader; aad: Buffer; offset: number }> {
  const start = await readExactly(fh, 0, 12).catch(() => {
    throw new BackupFormatError('not a Billvault backup (too short)');
  });
  if (!start.subarray(0, 8).equals(MAGIC)) throw new BackupFormatError('not a Billvault backup (bad magic)');
  const len = start.readUInt32BE(8);
  if (len === 0 || len > MAX_HEADER) throw new BackupFormatError('the backup header is damaged');
  const headerBytes = await readExactly(fh, 12, len);
  let header: ArchiveHeader;
  try {
    header = JSON.parse(headerBytes.toString('utf8')) as ArchiveHeader;
  } catch {
    throw new BackupFormatError('the backup header is damaged');
  }
  if (header.format !== 'billvault-backup' || header.archive_version !== ARCHIVE_VERSION)
    throw new BackupFormatError(`unsupported backup archive version ${String(header.archive_version)}`);
  if (Buffer.from(header.nonce_prefix ?? '', 'base64').length !== 7)
    throw new BackupFormatError('the backup header is damaged');
  return { header, aad: headerAad(headerBytes), offset: 12 + len };
}

/**
 * Decrypts an archive chunk by chunk. Every chunk is authenticated before it is yielded; the
 * stream must end with the flagged last chunk and nothing after it.
 */
export async function* readArchive(
  file: string,
  secret: BackupSecret,
  onBytes?: (bytesRead: number, total: number) => void,
): AsyncGenerator<Buffer> {
  const fh = await openFile(file, 'r');
  try {
    const size = (await fh.stat()).size;
    const { header, aad, offset } = await parseHeader(fh);
    const key = await deriveKey(secret, header.kdf);
    const prefix = Buffer.from(header.nonce_prefix, 'base64');
    let position = offset;
    let counter = 0;
    for (;;) {
      if (position >= size) throw new BackupFormatError('the backup is truncated (no final chunk)');
      const len = (await readExactly(fh, position, 4)).readUInt32BE(0);
      if (len > MAX_CHUNK) throw new BackupFormatError('the backup is damaged (chunk length)');
      const body = await readExactly(fh, position + 4, len + TAG_BYTES);
      position += 4 + len + TAG_BYTES;
      const last = position === size;
      let plain: Buffer;
      try {
        plain = gcmDecrypt(key, nonce(prefix, counter, last), body.subarray(0, len), body.subarray(len), aad);
      } catch (e) {
        if (!(e instanceof DecryptError)) throw e;
        throw new BackupFormatError(
          counter === 0
            ? 'the backup cannot be decrypted: wrong passphrase or key file, or the archive is damaged'
            : `the backup is damaged or was tampered with (chunk ${counter} fails authentication)`,
        );
      }
      counter++;
      onBytes?.(position, size);
      yield plain;
      if (last) break;
    }
    key.fill(0);
  } finally {
    await fh.close();
  }
}
