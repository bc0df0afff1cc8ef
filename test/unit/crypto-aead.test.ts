import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { DecryptError, gcmDecrypt, gcmEncrypt, open, seal } from '../../src/adapters/crypto/aead.js';
import { LocalKeyProvider, masterKeyId, parseKeyFile } from '../../src/adapters/crypto/key-provider.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// AES-256-GCM test cases 13–16 of the GCM specification (McGrew & Viega), as used by NIST's
// CAVP validation: 256-bit keys, 96-bit IVs, with and without AAD.
const K15 = 'feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308';
const P15 =
  'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255';
const C15 =
  '522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad';
const VECTORS = [
  {
    name: 'test case 13 (empty plaintext, zero key)',
    key: '00'.repeat(32),
    iv: '00'.repeat(12),
    pt: '',
    aad: '',
    ct: '',
    tag: '530f8afbc74536b9a963b4f1c4cb738b',
  },
  {
    name: 'test case 14 (one zero block)',
    key: '00'.repeat(32),
    iv: '00'.repeat(12),
    pt: '00'.repeat(16),
    aad: '',
    ct: 'cea7403d4d606b6e074ec5d3baf39d18',
    tag: 'd0d1c8a799996bf0265b98b5d48ab919',
  },
  {
    name: 'test case 15 (four blocks)',
    key: K15,
    iv: 'cafebabefacedbaddecaf888',
    pt: P15,
    aad: '',
    ct: C15,
    tag: 'b094dac5d93471bdec1a502270e3cc6c',
  },
  {
    name: 'test case 16 (partial block, with AAD)',
    key: K15,
    iv: 'cafebabefacedbaddecaf888',
    pt: P15.slice(0, 120),
    aad: 'feedfacedeadbeeffeedfacedeadbeefabaddad2',
    ct: C15.slice(0, 120),
    tag: '76fc6ece0f4e1768cddf8853bb2d551b',
  },
];

describe('AES-256-GCM primitive', () => {
  for (const v of VECTORS) {
    it(`matches the published vector: ${v.name}`, () => {
      const { ciphertext, tag } = gcmEncrypt(hex(v.key), hex(v.iv), hex(v.pt), hex(v.aad));
      assert.equal(ciphertext.toString('hex'), v.ct);
      assert.equal(tag.toString('hex'), v.tag);
      assert.equal(
        gcmDecrypt(hex(v.key), hex(v.iv), hex(v.ct), hex(v.tag), hex(v.aad)).toString('hex'),
        v.pt,
      );
    });
  }

  it('rejects one flipped bit anywhere: ciphertext, tag, nonce or AAD', () => {
    const v = VECTORS[3]!;
    const parts = { key: hex(v.key), iv: hex(v.iv), ct: hex(v.ct), tag: hex(v.tag), aad: hex(v.aad) };
    for (const field of ['ct', 'tag', 'iv', 'aad'] as const) {
      for (const index of [0, parts[field].length - 1]) {
        const copy = { ...parts, [field]: Buffer.from(parts[field]) };
        copy[field][index]! ^= 0x01;
        assert.throws(
          () => gcmDecrypt(copy.key, copy.iv, copy.ct, copy.tag, copy.aad),
          DecryptError,
          `${field}[${index}]`,
        );
      }
    }
    const wrongKey = Buffer.from(parts.key);
    wrongKey[5]! ^= 0x80;
    assert.throws(() => gcmDecrypt(wrongKey, parts.iv, parts.ct, parts.tag, parts.aad), DecryptError);
    assert.throws(
      () => gcmDecrypt(parts.key, parts.iv, parts.ct, parts.tag.subarray(0, 12), parts.aad),
      DecryptError,
    );
  });

  it('seal uses a fresh random nonce every time and open round-trips', () => {
    const key = randomBytes(32);
    const aad = Buffer.from('aad');
    const a = seal(key, Buffer.from('same plaintext'), aad);
    const b = seal(key, Buffer.from('same plaintext'), aad);
    assert.notDeepEqual(a.subarray(0, 12), b.subarray(0, 12));
    assert.equal(open(key, a, aad).toString(), 'same plaintext');
    assert.throws(() => open(key, a.subarray(0, 20), aad), DecryptError);
    assert.throws(() => open(key, a, Buffer.from('other')), DecryptError);
  });

  it('refuses keys that are not 32 bytes', () => {
    assert.throws(
      () => gcmEncrypt(randomBytes(16), randomBytes(12), Buffer.alloc(1), Buffer.alloc(0)),
      /32-byte/,
    );
  });
});

describe('local key provider', () => {
  it('wraps under the active master key and unwraps with the same context only', async () => {
    const kp = new LocalKeyProvider([randomBytes(32)], 'test');
    const key = randomBytes(32);
    const w = await kp.wrap(key, 'kek|org_x|v1');
    assert.equal(w.masterKeyId, kp.activeKeyId());
    assert.deepEqual(await kp.unwrap(w, 'kek|org_x|v1'), key);
    await assert.rejects(kp.unwrap(w, 'kek|org_y|v1'), DecryptError);
    assert.ok(!w.blob.includes(key), 'the wrapped blob does not contain the key');
  });

  it('keeps old versions for unwrapping after a rotation, and refuses unknown master keys', async () => {
    const oldKey = randomBytes(32);
    const kp = new LocalKeyProvider([oldKey], 'test');
    const w = await kp.wrap(randomBytes(32), 'c');
    const newId = kp.addKey(randomBytes(32));
    assert.equal(kp.activeKeyId(), newId);
    assert.notEqual(newId, masterKeyId(oldKey));
    await kp.unwrap(w, 'c');
    kp.dropKey(masterKeyId(oldKey));
    await assert.rejects(kp.unwrap(w, 'c'), /does not hold/);
    assert.throws(() => kp.dropKey(newId), /active/);
  });

  it('master key ids are stable, distinct and reveal nothing of the key', () => {
    const k = randomBytes(32);
    assert.equal(masterKeyId(k), masterKeyId(Buffer.from(k)));
    assert.match(masterKeyId(k), /^mk_[0-9a-f]{16}$/);
    assert.ok(!k.toString('hex').includes(masterKeyId(k).slice(3)));
  });

  it('parses key files strictly', () => {
    const k1 = randomBytes(32).toString('base64');
    const k2 = randomBytes(32).toString('base64');
    assert.equal(parseKeyFile(`# comment\n${k1}\n\n${k2}\n`, 'f').length, 2);
    assert.throws(() => parseKeyFile('# nothing\n', 'f'), /holds no key/);
    assert.throws(() => parseKeyFile(`${randomBytes(16).toString('base64')}\n`, 'f'), /32 bytes/);
    assert.throws(() => parseKeyFile('not base64 at all !!!\n', 'f'), /32 bytes/);
  });
});
