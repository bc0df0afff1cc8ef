import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ID_PREFIXES, isId, newId, randomBytesPooled } from '../../src/domain/ids.js';

describe('ids', () => {
  it('carries the type prefix and 160 random bits', () => {
    for (const kind of Object.keys(ID_PREFIXES) as (keyof typeof ID_PREFIXES)[]) {
      const id = newId(kind);
      assert.ok(id.startsWith(`${ID_PREFIXES[kind]}_`), id);
      assert.equal(id.length - ID_PREFIXES[kind].length - 1, 32); // 32 base32 chars = 160 bits
      assert.ok(isId(kind, id));
    }
  });

  it('does not repeat and uses every symbol position', () => {
    const seen = new Set<string>();
    const firstChars = new Set<string>();
    for (let i = 0; i < 20_000; i++) {
      const id = newId('invoice');
      seen.add(id);
      firstChars.add(id[4] ?? '');
    }
    assert.equal(seen.size, 20_000);
    assert.equal(firstChars.size, 32);
  });

  it('rejects malformed or mis-typed ids', () => {
    const inv = newId('invoice');
    assert.equal(isId('customer', inv), false);
    assert.equal(isId('invoice', `${inv}x`), false);
    assert.equal(isId('invoice', inv.toUpperCase()), false);
    assert.equal(isId('invoice', "inv_' OR 1=1 --"), false);
  });
});

describe('randomBytesPooled', () => {
  it('hands out each random byte once, across refills of the batch, as copies the caller owns', () => {
    const seen = new Set<string>();
    // 5,000 draws of 12 bytes span about 15 refills of the 4 KiB batch.
    for (let i = 0; i < 5000; i++) {
      const b = randomBytesPooled(12);
      assert.equal(b.length, 12);
      const hex = Buffer.from(b).toString('hex');
      assert.ok(!seen.has(hex), 'a nonce came out twice');
      seen.add(hex);
    }
    const a = randomBytesPooled(16);
    const copy = Buffer.from(a);
    a.fill(0);
    assert.notDeepEqual(Buffer.from(randomBytesPooled(16)), Buffer.alloc(16));
    assert.notDeepEqual(copy, Buffer.alloc(16));
    const ids = new Set(Array.from({ length: 20000 }, () => newId('invoice')));
    assert.equal(ids.size, 20000);
    assert.throws(() => randomBytesPooled(4097), RangeError);
  });
});
