import { createHmac, hkdfSync } from 'node:crypto';
import { type RawBuilder, sql } from 'kysely';
import type { CipherScope, FieldCipher, FieldRef } from '../../app/ports.js';
import { KEY_GUARD_FAILED, sqlState, type Tx, txOrgScope } from '../db/tx.js';
import { DecryptError, open, seal } from './aead.js';
import type { KeyProvider } from './key-provider.js';
import {
  activeDataKey,
  type DataKeyRow,
  getDataKey,
  getKek,
  type KekRow,
  KeyDestroyedError,
  kekContext,
  lockIfActive,
  reserveUsage,
  retireDataKeys,
  subjectOf,
  unwrapDataKey,
} from './key-store.js';

/**
 * Field-level envelope encryption (DESIGN.md §5).
 *
 * Ciphertext format, version 1: `bv1:<data key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`:
 * AES-256-GCM, random 96-bit nonce, 128-bit tag. The AAD binds the format version, the org,
 * the subject, the table, the column, the row id and the key id, so a ciphertext copied to
 * another row, column, table or org fails to decrypt.
 */
export const CIPHERTEXT_PREFIX = 'bv1';
const CIPHERTEXT_PATTERN = /^bv1:(dk_[0-9a-z]{32}):([A-Za-z0-9_-]+)$/;

/** Blind indexes: HMAC-SHA256 truncated to 16 bytes (128 bits), as 32 lowercase hex characters. */
export const BLIND_INDEX_BYTES = 16;

/**
 * A data key is retired after 2^30 encryptions: a quarter of the 2^32 random-nonce bound of
 * NIST SP 800-38D, which leaves room for reservations that a rolled-back transaction lost.
 */
export const DEFAULT_USAGE_LIMIT = 2 ** 30;

export interface FieldCipherOptions {
  /** Encryptions after which a data key is retired automatically (default 2^30). */
  usageLimit?: number;
  /** Encryptions reserved in the database at a time (default 4096): one counter update per block. */
  reserveBlock?: number;
  /** Unwrapped keys kept in memory (LRU, default 10,000). */
  cacheSize?: number;
  /** How long an unwrapped key stays cached (default 60 s). */
  cacheTtlMs?: number;
  /** Monotonic milliseconds, injectable for tests. */
  now?: () => number;
}

/** Where a ciphertext's key is: parsed from its self-describing prefix. */
export function parseCiphertext(value: string): { version: 1; keyId: string; body: Buffer } | undefined {
  const m = CIPHERTEXT_PATTERN.exec(value);
  if (!m) return undefined;
  return { version: 1, keyId: m[1]!, body: Buffer.from(m[2]!, 'base64url') };
}

function fieldAad(scope: CipherScope, field: FieldRef, keyId: string): Buffer {
  return Buffer.from(
    JSON.stringify([
      CIPHERTEXT_PREFIX,
      scope.orgId ?? '',
      scope.subject?.type ?? '',
      scope.subject?.id ?? '',
      field.table,
      field.column,
      field.rowId,
      keyId,
    ]),
    'utf8',
  );
}

/** Normalises a value before blind-indexing, so that lookups match the way people type. */
export function normaliseForIndex(purpose: string, value: string): string {
  let v = value.normalize('NFKC').trim().replace(/\s+/g, ' ').toLowerCase();
  if (purpose === 'tax_id' || purpose === 'phone' || purpose === 'iban') v = v.replace(/[\s\-./()]/g, '');
  return v;
}

class Lru<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(k: string): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }
  set(k: string, v: V): void {
    this.map.delete(k);
    this.map.set(k, v);
    if (this.map.size > this.max) {
      const oldest = this.map.keys().next().value;
      if (oldest !== undefined) this.map.delete(oldest);
    }
  }
  delete(k: string): void {
    this.map.delete(k);
  }
  clear(): void {
    this.map.clear();
  }
  get size(): number {
    return this.map.size;
  }
}

interface CachedKey {
  key: Buffer;
  expires: number;
}

interface ActiveKey {
  id: string;
  /** Encryptions still reserved in the database for this process. */
  budget: number;
}

/** The FieldCipher port plus what administration needs. */
export interface FieldCipherAdmin extends FieldCipher {
  /** Drops every cached key (after a rotation or destruction in this process). */
  forget(): void;
  /** Unwraps an org's (or the platform's) KEK version; used by rotation. */
  unwrapKek(tx: Tx, orgId: string | null, row: KekRow): Promise<Buffer>;
  /** Counters for benchmarks and status. */
  stats(): { cachedKeys: number; encryptions: number; decryptions: number; unwraps: number };
}

/** Builds the field cipher on a key provider; keys are looked up (and created) in the caller's transaction. */
export function createFieldCipher(keyProvider: KeyProvider, opts: FieldCipherOptions = {}): FieldCipherAdmin {
  const usageLimit = BigInt(opts.usageLimit ?? DEFAULT_USAGE_LIMIT);
  const block = opts.reserveBlock ?? 4096;
  const ttl = opts.cacheTtlMs ?? 60_000;
  const now = opts.now ?? (() => performance.now());
  const keys = new Lru<CachedKey>(opts.cacheSize ?? 50_000);
  const kekByVersion = new Lru<CachedKey>(1000);
  const keks = new Lru<CachedKey>(1000);
  const active = new Lru<ActiveKey>(opts.cacheSize ?? 50_000);
  const checked = new WeakMap<Tx, Set<string>>();
  const txOrgs = new WeakMap<Tx, string>();

  /**
   * Keys of an org are used only inside that org's transaction: the in-memory cache must not
   * become a way around Row-Level Security when a caller passes the wrong scope.
   */
  async function assertTxOrg(tx: Tx, orgId: string | null): Promise<void> {
    if (orgId === null) return;
    let txOrg = txOrgs.get(tx) ?? txOrgScope(tx);
    if (txOrg === undefined) {
      const r = await sql<{ org: string | null }>`SELECT current_setting('app.org_id', true) AS org`.execute(
        tx,
      );
      txOrg = r.rows[0]?.org ?? '';
      txOrgs.set(tx, txOrg);
    }
    if (txOrg !== orgId) throw new DecryptError("the key scope does not match the transaction's org");
  }
  const counters = { encryptions: 0, decryptions: 0, unwraps: 0 };

  const orgKey = (orgId: string | null) => orgId ?? '-';

  async function unwrapKek(_tx: Tx, orgId: string | null, row: KekRow): Promise<Buffer> {
    const ck = `${orgKey(orgId)}|${row.version}|${row.master_key_id}`;
    const hit = keks.get(ck);
    if (hit && hit.expires > now()) return hit.key;
    if (!row.wrapped_key) throw new KeyDestroyedError();
    const key = await keyProvider.unwrap(
      { masterKeyId: row.master_key_id, blob: row.wrapped_key },
      kekContext(orgId, row.version),
    );
    counters.unwraps++;
    keks.set(ck, { key, expires: now() + ttl });
    return key;
  }

  /** A KEK version's material: versions never change, so one lookup serves every data key under it. */
  async function kekForVersion(tx: Tx, orgId: string | null, version: number): Promise<Buffer> {
    const ck = `${orgKey(orgId)}|v${version}`;
    const hit = kekByVersion.get(ck);
    if (hit && hit.expires > now()) return hit.key;
    const kekRow = await getKek(tx, orgId, version);
    if (!kekRow) throw new DecryptError();
    const key = await unwrapKek(tx, orgId, kekRow);
    kekByVersion.set(ck, { key, expires: now() + ttl });
    return key;
  }

  /** A data key's material: from the cache, else from its row (read here unless the caller has it). */
  async function dataKeyById(tx: Tx, orgId: string | null, id: string, known?: DataKeyRow): Promise<Buffer> {
    const ck = `${orgKey(orgId)}|${id}`;
    const hit = keys.get(ck);
    if (hit && hit.expires > now()) return hit.key;
    const row = known ?? (await getDataKey(tx, orgId, id));
    if (!row) throw new DecryptError();
    if (row.status === 'destroyed' || !row.wrapped_key) {
      keys.delete(ck);
      throw new KeyDestroyedError();
    }
    const key = unwrapDataKey(await kekForVersion(tx, orgId, row.kek_version), orgId, row);
    counters.unwraps++;
    keys.set(ck, { key, expires: now() + ttl });
    return key;
  }

  function markChecked(tx: Tx, id: string): void {
    let set = checked.get(tx);
    if (!set) {
      set = new Set();
      checked.set(tx, set);
    }
    set.add(id);
  }

  /** Reserves the next block on a cached key; false when it is no longer active, 'retired' when it hit the limit. */
  async function reserveBlock(
    tx: Tx,
    orgId: string | null,
    entry: { id: string; budget: number },
    ak: string,
  ): Promise<boolean | 'retired'> {
    const total = await reserveUsage(tx, orgId, entry.id, block);
    if (total === undefined) {
      active.delete(ak);
      return false;
    }
    if (total > usageLimit) {
      // Retire it; the subject's next key is created on the next pass.
      // No waiting here: other writers may hold the key; it stays decryptable, and
      // destruction (after re-encryption) waits for them.
      await retireDataKeys(tx, orgId, { ids: [entry.id] }, { waitForWriters: false });
      active.delete(ak);
      return 'retired';
    }
    entry.budget = block;
    return true;
  }

  /** The subject's active data key for this transaction, with one encryption's budget taken. */
  async function takeActiveKey(
    tx: Tx,
    scope: CipherScope,
    inStatement: boolean,
  ): Promise<{ id: string; key: Buffer; guard?: RawBuilder<boolean> }> {
    const orgId = scope.orgId;
    const subject = subjectOf(orgId, scope.subject);
    const ak = `${orgKey(orgId)}|${subject.type}|${subject.id}`;
    for (let attempt = 0; attempt < 4; attempt++) {
      let entry = active.get(ak);
      if (inStatement && orgId !== null && entry && entry.budget > 0 && !checked.get(tx)?.has(entry.id)) {
        // The check that lockIfActive makes, left to the statement that writes the ciphertext
        // (migration 0018). Not marked checked: a plain encrypt later in the transaction checks.
        entry.budget--;
        const guard = sql<boolean>`billvault_data_key_guard(${orgId}, ${entry.id})`;
        return { id: entry.id, key: await dataKeyById(tx, orgId, entry.id), guard };
      }
      if (entry && !checked.get(tx)?.has(entry.id)) {
        // First use in this transaction: lock the key (a reservation's UPDATE locks it too, so a
        // transaction never holds a share lock it would later have to upgrade).
        const ok =
          entry.budget > 0
            ? await lockIfActive(tx, orgId, entry.id)
            : await reserveBlock(tx, orgId, entry, ak);
        if (ok === 'retired') continue;
        if (ok) markChecked(tx, entry.id);
        else {
          active.delete(ak);
          entry = undefined;
        }
      }
      if (!entry) {
        // Found or created, the key comes back locked with one block reserved for us.
        const { row, material } = await activeDataKey(
          tx,
          keyProvider,
          orgId,
          'data',
          subject,
          (k) => unwrapKek(tx, orgId, k),
          block,
        );
        if (material) keys.set(`${orgKey(orgId)}|${row.id}`, { key: material, expires: now() + ttl });
        else await dataKeyById(tx, orgId, row.id, row);
        if (row.usage_count > usageLimit) {
          await retireDataKeys(tx, orgId, { ids: [row.id] }, { waitForWriters: false });
          continue;
        }
        markChecked(tx, row.id);
        entry = { id: row.id, budget: block };
        active.set(ak, entry);
      }
      if (entry.budget <= 0) {
        const ok = await reserveBlock(tx, orgId, entry, ak);
        if (ok !== true) continue;
      }
      entry.budget--;
      return { id: entry.id, key: await dataKeyById(tx, orgId, entry.id) };
    }
    throw new Error('could not obtain an active data key');
  }

  /** encrypt and encryptForStatement: the key's check made here, or left to the caller's statement. */
  async function encryptUnder(
    tx: Tx,
    scope: CipherScope,
    field: FieldRef,
    plaintext: string,
    inStatement: boolean,
  ): Promise<{ ciphertext: string; guard?: RawBuilder<boolean> }> {
    await assertTxOrg(tx, scope.orgId);
    const { id, key, guard } = await takeActiveKey(tx, scope, inStatement);
    const sealed = seal(key, Buffer.from(plaintext, 'utf8'), fieldAad(scope, field, id));
    counters.encryptions++;
    const ciphertext = `${CIPHERTEXT_PREFIX}:${id}:${sealed.toString('base64url')}`;
    return guard ? { ciphertext, guard } : { ciphertext };
  }

  const cipher: FieldCipherAdmin = {
    async encrypt(tx, scope, field, plaintext) {
      return (await encryptUnder(tx, scope, field, plaintext, false)).ciphertext;
    },

    encryptForStatement: (tx, scope, field, plaintext) => encryptUnder(tx, scope, field, plaintext, true),

    guardFailed(error) {
      // A retired key is rare (usage limit, rotation, erasure): start again from the database.
      if (sqlState(error) === KEY_GUARD_FAILED) active.clear();
    },

    async decrypt(tx, scope, field, ciphertext) {
      const parsed = parseCiphertext(ciphertext);
      if (!parsed) throw new DecryptError('the value is not a Billvault ciphertext');
      await assertTxOrg(tx, scope.orgId);
      const key = await dataKeyById(tx, scope.orgId, parsed.keyId);
      const plain = open(key, parsed.body, fieldAad(scope, field, parsed.keyId));
      counters.decryptions++;
      return plain.toString('utf8');
    },

    async blindIndex(tx, orgId, purpose, value) {
      await assertTxOrg(tx, orgId);
      const subject = subjectOf(orgId);
      const ck = `${orgKey(orgId)}|bidx|${purpose}`;
      let hit = keys.get(ck);
      if (!hit || hit.expires <= now()) {
        const { row } = await activeDataKey(
          tx,
          keyProvider,
          orgId,
          'blind_index',
          subject,
          (k) => unwrapKek(tx, orgId, k),
          0,
        );
        const root = await dataKeyById(tx, orgId, row.id, row);
        const derived = Buffer.from(
          hkdfSync(
            'sha256',
            root,
            Buffer.from('billvault blind index v1'),
            `${orgId ?? 'platform'}|${purpose}`,
            32,
          ),
        );
        hit = { key: derived, expires: now() + ttl };
        keys.set(ck, hit);
      }
      return createHmac('sha256', hit.key)
        .update(normaliseForIndex(purpose, value), 'utf8')
        .digest()
        .subarray(0, BLIND_INDEX_BYTES)
        .toString('hex');
    },

    forget() {
      keys.clear();
      kekByVersion.clear();
      keks.clear();
      active.clear();
    },

    unwrapKek,

    stats() {
      return { cachedKeys: keys.size, ...counters };
    },
  };
  return cipher;
}
