import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * RFC 6238 TOTP on RFC 4226 HOTP, with node:crypto: 30-second steps, 6 digits, one step of
 * drift either way, and single use (a code for a step at or before the last accepted step is
 * refused, so a code can never be replayed, nor an older one used after a newer one).
 */
export const TOTP_STEP_SECONDS = 30;
export const TOTP_DIGITS = 6;
export const TOTP_DRIFT_STEPS = 1;

export type HmacAlgorithm = 'sha1' | 'sha256' | 'sha512';

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 without padding (the form authenticator apps expect). */
export function base32Encode(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += B32[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += B32[(buffer << (5 - bits)) & 31];
  return out;
}

export function base32Decode(text: string): Buffer {
  const clean = text.replace(/[\s=]/g, '').toUpperCase();
  const out: number[] = [];
  let buffer = 0;
  let bits = 0;
  for (const ch of clean) {
    const v = B32.indexOf(ch);
    if (v === -1) throw new Error('invalid base32');
    buffer = (buffer << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out.push((buffer >>> (bits - 8)) & 255);
      bits -= 8;
    }
    buffer &= (1 << bits) - 1;
  }
  return Buffer.from(out);
}

/** RFC 4226 HOTP value for a counter. */
export function hotp(
  key: Uint8Array,
  counter: bigint,
  digits = TOTP_DIGITS,
  algorithm: HmacAlgorithm = 'sha1',
): string {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(counter);
  const mac = createHmac(algorithm, key).update(msg).digest();
  const offset = (mac[mac.length - 1] ?? 0) & 0x0f;
  const bin =
    (((mac[offset] ?? 0) & 0x7f) << 24) |
    ((mac[offset + 1] ?? 0) << 16) |
    ((mac[offset + 2] ?? 0) << 8) |
    (mac[offset + 3] ?? 0);
  return String(bin % 10 ** digits).padStart(digits, '0');
}

/** The time step (counter) of an instant. */
export function totpStep(at: Date, stepSeconds = TOTP_STEP_SECONDS): bigint {
  return BigInt(Math.floor(at.getTime() / 1000 / stepSeconds));
}

/** RFC 6238 TOTP value at an instant. */
export function totp(
  key: Uint8Array,
  at: Date,
  opts: { digits?: number; algorithm?: HmacAlgorithm; stepSeconds?: number } = {},
): string {
  return hotp(key, totpStep(at, opts.stepSeconds), opts.digits ?? TOTP_DIGITS, opts.algorithm ?? 'sha1');
}

/** A new 160-bit secret, base32 (RFC 4226 recommends at least 160 bits). */
export function generateTotpSecret(): string {
  return base32Encode(randomBytes(20));
}

/**
 * Checks a code at `now` within ±1 step; returns the matched step, or null. Steps at or
 * before `lastUsedStep` never match (single use).
 */
export function verifyTotp(
  secret: string,
  code: string,
  now: Date,
  lastUsedStep: bigint | null,
): bigint | null {
  if (!/^\d{6}$/.test(code)) return null;
  const key = base32Decode(secret);
  const current = totpStep(now);
  let matched: bigint | null = null;
  for (let d = -TOTP_DRIFT_STEPS; d <= TOTP_DRIFT_STEPS; d++) {
    const step = current + BigInt(d);
    // Compare every candidate in constant time so timing does not reveal which step matched.
    const ok = timingSafeEqual(Buffer.from(hotp(key, step)), Buffer.from(code));
    if (ok && (lastUsedStep === null || step > lastUsedStep) && matched === null) matched = step;
  }
  return matched;
}

/** The otpauth:// URI authenticator apps scan (shown once, at enrolment). */
export function otpauthUri(secret: string, account: string, issuer: string): string {
  const label = encodeURIComponent(`${issuer}:${account}`);
  const params = new URLSearchParams({
    secret,
    issuer,
    algorithm: 'SHA1',
    digits: String(TOTP_DIGITS),
    period: String(TOTP_STEP_SECONDS),
  });
  return `otpauth://totp/${label}?${params.toString()}`;
}

/** The TOTP port the identity use cases take. */
export function createTotp(issuer = 'Billvault') {
  return {
    generateSecret: generateTotpSecret,
    verify: verifyTotp,
    uri: (secret: string, account: string) => otpauthUri(secret, account, issuer),
  };
}
