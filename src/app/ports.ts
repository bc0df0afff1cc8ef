import type { RawBuilder } from 'kysely';
import type { Tx } from '../adapters/db/tx.js';

/**
 * Ports: the small interfaces use cases depend on. Composition roots (src/main/) pick the
 * adapters that implement them.
 */

/** Whose data key encrypts a field: an org's own key, or one subject's key inside it (crypto-shredding). */
export interface CipherScope {
  /** null for platform-level secrets that belong to no org (e.g. a user's TOTP secret). */
  orgId: string | null;
  /** A subject with its own data key, destroyed to shred everything about it (e.g. a customer). */
  subject?: { type: 'customer' | 'user' | 'retention'; id: string };
}

/** Where a ciphertext lives; bound into the AAD so it cannot be moved elsewhere. */
export interface FieldRef {
  table: string;
  column: string;
  rowId: string;
}

/** Field-level envelope encryption and blind indexes (implemented in src/adapters/crypto/). */
export interface FieldCipher {
  encrypt(tx: Tx, scope: CipherScope, field: FieldRef, plaintext: string): Promise<string>;
  decrypt(tx: Tx, scope: CipherScope, field: FieldRef, ciphertext: string): Promise<string>;
  /**
   * encrypt, with the key's check left to the statement that writes the ciphertext. When the key
   * has not been checked in this transaction yet, `guard` comes back: an SQL expression the caller
   * must evaluate in the statement that writes the ciphertext (it share-locks the key to the end
   * of the transaction and fails the statement, SQLSTATE BVK01, if the key was retired since it
   * was cached — the check encrypt makes in a round trip of its own). After a failure, hand the
   * error to `guardFailed` so that the retry (inTransaction retries BVK01) takes a fresh key.
   */
  encryptForStatement(
    tx: Tx,
    scope: CipherScope,
    field: FieldRef,
    plaintext: string,
  ): Promise<{ ciphertext: string; guard?: RawBuilder<boolean> }>;
  /** After a failed guard (SQLSTATE BVK01), forgets the cached active keys; any other error is ignored. */
  guardFailed(error: unknown): void;
  /** Keyed, truncated HMAC of the normalised value, for exact-match lookup of encrypted fields. */
  blindIndex(tx: Tx, orgId: string | null, purpose: string, value: string): Promise<string>;
  /** Drops keys cached in this process (after a key was destroyed: erasure, retention purge). */
  forget?(): void;
}

/** Time, injectable so tests can move it (lockouts, session expiry) without sleeping. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
