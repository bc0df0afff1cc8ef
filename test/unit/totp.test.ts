import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  base32Decode,
  base32Encode,
  generateTotpSecret,
  hotp,
  otpauthUri,
  totp,
  totpStep,
  verifyTotp,
} from '../../src/adapters/crypto/totp.js';

const seed1 = Buffer.from('12345678901234567890');
const seed256 = Buffer.from('12345678901234567890123456789012');
const seed512 = Buffer.from('1234567890123456789012345678901234567890123456789012345678901234');

describe('RFC 6238 test vectors (Appendix B)', () => {
  const vectors: [number, string, string, string][] = [
    [59, '94287082', '46119246', '90693936'],
    [1111111109, '07081804', '68084774', '25091201'],
    [1111111111, '14050471', '67062674', '99943326'],
    [1234567890, '89005924', '91819424', '93441116'],
    [2000000000, '69279037', '90698825', '38618901'],
    [20000000000, '65353130', '77737706', '47863826'],
  ];
  for (const [time, sha1, sha256, sha512] of vectors) {
    it(`T = ${time}`, () => {
      const at = new Date(time * 1000);
      assert.equal(totp(seed1, at, { digits: 8, algorithm: 'sha1' }), sha1);
      assert.equal(totp(seed256, at, { digits: 8, algorithm: 'sha256' }), sha256);
      assert.equal(totp(seed512, at, { digits: 8, algorithm: 'sha512' }), sha512);
    });
  }
});

describe('RFC 4226 HOTP vectors (Appendix D)', () => {
  it('counters 0..9', () => {
    const expected = [
      '755224',
      '287082',
      '359152',
      '969429',
      '338314',
      '254676',
      '287922',
      '162583',
      '399871',
      '520489',
    ];
    for (const [i, code] of expected.entries()) assert.equal(hotp(seed1, BigInt(i)), code);
  });
});

describe('verification', () => {
  const secret = base32Encode(seed1);
  const now = new Date('2026-03-02T09:00:10Z');

  it('accepts the current code and one step of drift either way, not two', () => {
    const key = base32Decode(secret);
    const step = totpStep(now);
    assert.equal(verifyTotp(secret, hotp(key, step), now, null), step);
    assert.equal(verifyTotp(secret, hotp(key, step - 1n), now, null), step - 1n);
    assert.equal(verifyTotp(secret, hotp(key, step + 1n), now, null), step + 1n);
    assert.equal(verifyTotp(secret, hotp(key, step - 2n), now, null), null);
    assert.equal(verifyTotp(secret, hotp(key, step + 2n), now, null), null);
  });

  it('refuses a replayed code and any code of an earlier step (single use)', () => {
    const key = base32Decode(secret);
    const step = totpStep(now);
    const code = hotp(key, step);
    const used = verifyTotp(secret, code, now, null);
    assert.equal(used, step);
    assert.equal(verifyTotp(secret, code, now, used), null);
    assert.equal(verifyTotp(secret, hotp(key, step - 1n), now, used), null);
    assert.equal(verifyTotp(secret, hotp(key, step + 1n), now, used), step + 1n);
  });

  it('refuses malformed codes', () => {
    for (const bad of ['', '12345', '1234567', 'abcdef', ' 123456', '12345a', '１２３４５６']) {
      assert.equal(verifyTotp(secret, bad, now, null), null, bad);
    }
  });

  it('base32 round-trips and new secrets are 160 bits', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 64 }), (bytes) => {
        assert.deepEqual(new Uint8Array(base32Decode(base32Encode(bytes))), bytes);
      }),
    );
    const s = generateTotpSecret();
    assert.equal(base32Decode(s).length, 20);
    assert.notEqual(generateTotpSecret(), s);
  });

  it('builds the otpauth URI authenticator apps scan', () => {
    const uri = otpauthUri('JBSWY3DPEHPK3PXP', 'ann@example.test', 'Billvault');
    assert.match(uri, /^otpauth:\/\/totp\/Billvault%3Aann%40example\.test\?/);
    const q = new URL(uri).searchParams;
    assert.equal(q.get('secret'), 'JBSWY3DPEHPK3PXP');
    assert.equal(q.get('digits'), '6');
    assert.equal(q.get('period'), '30');
  });
});
