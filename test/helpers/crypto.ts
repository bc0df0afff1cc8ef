import { randomBytes } from 'node:crypto';
import {
  createFieldCipher,
  type FieldCipherAdmin,
  type FieldCipherOptions,
} from '../../src/adapters/crypto/field-cipher.js';
import { LocalKeyProvider } from '../../src/adapters/crypto/key-provider.js';

/** A real local key provider with a random in-memory master key (nothing written to disk). */
export function testKeyProvider(): LocalKeyProvider {
  return new LocalKeyProvider([randomBytes(32)], 'test (in-memory master key)');
}

/** The real field cipher on a fresh in-memory master key: for any test that stores encrypted fields. */
export function testCipher(opts: FieldCipherOptions = {}, keyProvider = testKeyProvider()): FieldCipherAdmin {
  return createFieldCipher(keyProvider, opts);
}
