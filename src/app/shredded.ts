import { KeyDestroyedError } from '../adapters/crypto/key-store.js';
import type { Tx } from '../adapters/db/index.js';
import type { CipherScope, FieldCipher } from './ports.js';

/**
 * Decrypts a field, or gives null when its data key was destroyed (what an erased customer
 * leaves behind on immutable documents): such reads show nothing instead of failing with a 500.
 */
export async function decryptOrNull(
  cipher: FieldCipher,
  tx: Tx,
  scope: CipherScope,
  table: string,
  column: string,
  rowId: string,
  value: string | null,
): Promise<string | null> {
  if (value === null) return null;
  try {
    return await cipher.decrypt(tx, scope, { table, column, rowId }, value);
  } catch (e) {
    if (e instanceof KeyDestroyedError) return null;
    throw e;
  }
}
