import { createCipheriv, createDecipheriv } from 'node:crypto';
import { randomBytesPooled } from '../../domain/ids.js';

/** AES-256-GCM with 96-bit nonces and 128-bit tags: the one authenticated cipher Billvault uses. */
export const KEY_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;

/** A ciphertext that failed authentication (wrong key, tampered bytes, or wrong AAD). Carries no data. */
export class DecryptError extends Error {
  override name = 'DecryptError';
  constructor(message = 'the ciphertext cannot be decrypted (wrong key, wrong place, or tampered)') {
    super(message);
  }
}

function checkKey(key: Uint8Array): void {
  if (key.length !== KEY_BYTES) throw new Error('AES-256-GCM needs a 32-byte key');
}

/** The raw primitive: encrypts with the given nonce (tests feed NIST vectors through it). */
export function gcmEncrypt(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
): { ciphertext: Buffer; tag: Buffer } {
  checkKey(key);
  if (nonce.length !== NONCE_BYTES) throw new Error('AES-GCM nonce must be 12 bytes');
  const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  c.setAAD(aad);
  const ciphertext = Buffer.concat([c.update(plaintext), c.final()]);
  return { ciphertext, tag: c.getAuthTag() };
}

/** The raw primitive: decrypts and authenticates, or throws DecryptError. */
export function gcmDecrypt(
  key: Uint8Array,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  tag: Uint8Array,
  aad: Uint8Array,
): Buffer {
  checkKey(key);
  if (nonce.length !== NONCE_BYTES || tag.length !== TAG_BYTES) throw new DecryptError();
  try {
    const d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
    d.setAAD(aad);
    d.setAuthTag(tag);
    return Buffer.concat([d.update(ciphertext), d.final()]);
  } catch {
    throw new DecryptError();
  }
}

/** Encrypts under a fresh random nonce; returns nonce ‖ ciphertext ‖ tag. */
export function seal(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  const nonce = randomBytesPooled(NONCE_BYTES);
  const { ciphertext, tag } = gcmEncrypt(key, nonce, plaintext, aad);
  return Buffer.concat([nonce, ciphertext, tag]);
}

/** Opens nonce ‖ ciphertext ‖ tag, or throws DecryptError. */
export function open(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Buffer {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) throw new DecryptError();
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  return gcmDecrypt(
    key,
    buf.subarray(0, NONCE_BYTES),
    buf.subarray(NONCE_BYTES, buf.length - TAG_BYTES),
    buf.subarray(buf.length - TAG_BYTES),
    aad,
  );
}
