import { readFileSync } from 'node:fs';
import argon2 from 'argon2';
import { normalizePassword } from '../../domain/password-policy.js';

/** argon2id parameters of DESIGN.md §5: m = 64 MiB, t = 3, p = 1. */
export const ARGON2_DEFAULTS = { memoryCost: 65_536, timeCost: 3, parallelism: 1 } as const;
/** OWASP ASVS floor: nothing below m = 19 MiB, t = 2 is ever accepted as a configuration. */
export const ARGON2_FLOOR = { memoryCost: 19_456, timeCost: 2 } as const;

export interface Argon2Params {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

/** Hashes and checks passwords; the use cases depend on this, never on argon2 itself. */
export interface PasswordHasher {
  hash(password: string): Promise<string>;
  /** Never throws for a malformed stored hash: that is simply a mismatch. */
  verify(storedHash: string, password: string): Promise<boolean>;
  /** True when the stored hash was made with other parameters (rehash on the next login). */
  needsRehash(storedHash: string): boolean;
  /** A hash of a random password with the current parameters: verified against when the account does not exist, so timing matches. */
  dummyHash(): Promise<string>;
  isCommon(lowercased: string): boolean;
  readonly params: Readonly<Argon2Params>;
}

let common: Set<string> | undefined;

/** The bundled list of common and breached passwords (see common-passwords.LICENSE.txt). */
export function commonPasswords(): ReadonlySet<string> {
  if (!common) {
    const text = readFileSync(new URL('./common-passwords.txt', import.meta.url), 'utf8');
    common = new Set(text.split('\n').filter((l) => l.length > 0));
  }
  return common;
}

/** argon2id with the given parameters (default: DESIGN.md §5), refusing anything under the floor. */
export function createPasswordHasher(params: Argon2Params = ARGON2_DEFAULTS): PasswordHasher {
  if (params.memoryCost < ARGON2_FLOOR.memoryCost || params.timeCost < ARGON2_FLOOR.timeCost) {
    throw new Error('argon2 parameters below the OWASP ASVS floor (m=19 MiB, t=2)');
  }
  const options = { type: argon2.argon2id, ...params } as const;
  let dummy: Promise<string> | undefined;
  const list = commonPasswords();
  return {
    params,
    hash: (password) => argon2.hash(normalizePassword(password), options),
    async verify(storedHash, password) {
      try {
        return await argon2.verify(storedHash, normalizePassword(password));
      } catch {
        return false;
      }
    },
    needsRehash(storedHash) {
      // Upgrade only: a hash made with weaker parameters (or another algorithm) is replaced at
      // the next login; a stronger one is never downgraded.
      const m = /^\$argon2id\$v=(\d+)\$([a-z0-9=,]+)\$/.exec(storedHash);
      if (!m) return true;
      const p = Object.fromEntries((m[2] ?? '').split(',').map((kv) => kv.split('=')));
      return Number(m[1]) < 19 || !(Number(p.m) >= params.memoryCost) || !(Number(p.t) >= params.timeCost);
    },
    dummyHash() {
      dummy ??= argon2.hash(globalThis.crypto.randomUUID(), options);
      return dummy;
    },
    isCommon: (lowercased) => list.has(lowercased),
  };
}
