import {
  createHash,
  createPrivateKey,
  createPublicKey,
  hash,
  type KeyObject,
  randomBytes,
  sign,
  verify as verifySignature,
} from 'node:crypto';
import { type RawBuilder, sql } from 'kysely';
import type { KeyProvider } from '../adapters/crypto/key-provider.js';
import type { Db } from '../adapters/db/database.js';
import { withReadSnapshot } from '../adapters/db/snapshot.js';
import { type DbOrTx, inOrg, inTransaction, scopeTransaction, type Tx } from '../adapters/db/tx.js';
import { auditContentHash, type CanonicalAuditEvent, canonicalJson, isoMicros } from './audit.js';
import { authorize } from './authz.js';
import type { Ctx } from './context.js';
import { badCursor, type ListPage, type PageParams, pageLimit } from './pagination.js';
import { type Clock, systemClock } from './ports.js';

/**
 * The tamper-evident audit chain (DESIGN.md §5 Audit trail): a sealer links committed audit
 * events into one hash chain per org (plus a "platform" chain for org-less events), signed
 * checkpoints of chain heads, and verification.
 *
 *   content_hash = SHA-256(canonical event)         (computed by the database on insert, in the writer's tx:
 *                                                    v2, migration 0015; v1 events were hashed in JavaScript)
 *   chain_hash   = SHA-256("billvault/audit-chain/v1" | chain | seq | event id | content_hash | prev_hash)
 *   prev_hash of seq 1 = 64 zeros
 *
 * Writers never lock a chain head; the sealer takes a transaction-scoped advisory lock per
 * chain, so two sealers never fork a chain or seal an event twice (audit_chain's unique
 * event_id is the backstop), and one batch is one transaction, so a crash loses nothing.
 */

export const PLATFORM_CHAIN = 'platform';
export const GENESIS_HASH = '0'.repeat(64);

/** Occurred-at as text, exactly as the content hash encodes it. */
const OCCURRED_AT = sql<string>`to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
const EVENT_COLUMNS = sql`e.id, e.org_id, ${OCCURRED_AT} AS occurred_at, e.actor_type, e.actor_id, e.session_id,
  e.action, e.target_type, e.target_id, e.outcome, e.request_id, e.ip, e.user_agent, e.details`;

interface EventRow extends CanonicalAuditEvent {
  content_hash: string | null;
}

export function chainIdOf(orgId: string | null): string {
  return orgId ?? PLATFORM_CHAIN;
}

export function chainHash(chainId: string, seq: number, eventId: string, contentHash: string, prev: string) {
  return hash(
    'sha256',
    `billvault/audit-chain/v1|${chainId}|${seq}|${eventId}|${contentHash}|${prev}`,
    'hex',
  );
}

/** Runs fn in a transaction that sees one chain: an org's, or the platform chain. */
export function inChain<T>(
  db: Db,
  orgId: string | null,
  fn: (tx: Tx) => Promise<T>,
  isolation: 'read committed' | 'repeatable read' = 'read committed',
): Promise<T> {
  return inTransaction(db, { orgId, isolation }, async (tx) => {
    await scopeChain(tx, orgId);
    return fn(tx);
  });
}

/** Lets the transaction see the platform chain when it is the one asked for (org chains: RLS by org). */
async function scopeChain(tx: DbOrTx, orgId: string | null): Promise<void> {
  if (orgId === null) await sql`SELECT set_config('app.audit_scope', 'platform', true)`.execute(tx);
}

const orgMatch = (orgId: string | null) =>
  orgId === null ? sql`e.org_id IS NULL` : sql`e.org_id = ${orgId}`;

// ---------------------------------------------------------------------------------------------
// Signing keys and checkpoints
// ---------------------------------------------------------------------------------------------

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

function privateKeyFromSeed(seed: Buffer): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

function rawPublicKey(key: KeyObject): Buffer {
  return createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(-32);
}

export function publicKeyFromRaw(b64: string): KeyObject {
  const spkiPrefix = Buffer.from('302a300506032b6570032100', 'hex');
  return createPublicKey({
    key: Buffer.concat([spkiPrefix, Buffer.from(b64, 'base64')]),
    format: 'der',
    type: 'spki',
  });
}

const signingKeyContext = (id: string) => `audit-signing-key|${id}`;

export interface Checkpoint {
  chain_id: string;
  org_id: string | null;
  seq: number;
  chain_hash: string;
  signed_at: string;
  key_id: string;
  signature: string;
}

export function checkpointMessage(c: Pick<Checkpoint, 'chain_id' | 'seq' | 'chain_hash' | 'signed_at'>) {
  return Buffer.from(
    `billvault/audit-checkpoint/v1\n${c.chain_id}\n${c.seq}\n${c.chain_hash}\n${c.signed_at}`,
  );
}

interface SigningKey {
  id: string;
  key: KeyObject;
}

/** The active checkpoint signing key, created (seed wrapped by the KeyProvider) when there is none. */
async function activeSigningKey(
  tx: Tx,
  kp: KeyProvider,
  cache: Map<string, SigningKey>,
): Promise<SigningKey> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const r = await sql<{ id: string; master_key_id: string; wrapped_seed: Buffer; public_key: string }>`
      SELECT id, master_key_id, wrapped_seed, public_key FROM audit_signing_keys WHERE status = 'active'`.execute(
      tx,
    );
    const row = r.rows[0];
    if (row) {
      const cached = cache.get(row.id);
      if (cached) return cached;
      const seed = await kp.unwrap(
        { masterKeyId: row.master_key_id, blob: row.wrapped_seed },
        signingKeyContext(row.id),
      );
      const key = privateKeyFromSeed(seed);
      seed.fill(0);
      if (rawPublicKey(key).toString('base64') !== row.public_key)
        throw new Error(`audit signing key ${row.id}: the stored public key does not match the wrapped key`);
      const sk = { id: row.id, key };
      cache.set(row.id, sk);
      return sk;
    }
    const seed = randomBytes(32);
    const key = privateKeyFromSeed(seed);
    const pub = rawPublicKey(key);
    const id = `ask_${createHash('sha256').update(pub).digest('hex').slice(0, 16)}`;
    const wrapped = await kp.wrap(seed, signingKeyContext(id));
    seed.fill(0);
    await sql`INSERT INTO audit_signing_keys (id, status, public_key, master_key_id, wrapped_seed)
      VALUES (${id}, 'active', ${pub.toString('base64')}, ${wrapped.masterKeyId}, ${wrapped.blob})
      ON CONFLICT DO NOTHING`.execute(tx);
  }
  throw new Error('could not establish an audit signing key');
}

/**
 * Re-wraps every checkpoint signing seed not under the provider's active master key (master
 * key rotation), inside the caller's platform transaction. Returns how many were re-wrapped.
 */
export async function rewrapSigningKeys(tx: Tx, kp: KeyProvider): Promise<number> {
  const active = kp.activeKeyId();
  const r = await sql<{ id: string; master_key_id: string; wrapped_seed: Buffer; public_key: string }>`
    SELECT id, master_key_id, wrapped_seed, public_key FROM audit_signing_keys
    WHERE master_key_id <> ${active} ORDER BY created_at FOR UPDATE`.execute(tx);
  for (const row of r.rows) {
    const seed = await kp.unwrap(
      { masterKeyId: row.master_key_id, blob: row.wrapped_seed },
      signingKeyContext(row.id),
    );
    const matches = rawPublicKey(privateKeyFromSeed(seed)).toString('base64') === row.public_key;
    if (!matches) {
      seed.fill(0);
      throw new Error(`audit signing key ${row.id}: the stored public key does not match the wrapped key`);
    }
    const wrapped = await kp.wrap(seed, signingKeyContext(row.id));
    seed.fill(0);
    await sql`UPDATE audit_signing_keys SET master_key_id = ${wrapped.masterKeyId}, wrapped_seed = ${wrapped.blob}
      WHERE id = ${row.id}`.execute(tx);
  }
  return r.rows.length;
}

/** Master key ids the signing seeds are wrapped under, with counts. */
export async function signingKeyMasters(tx: Tx): Promise<Map<string, number>> {
  const r = await sql<{ master_key_id: string; n: string }>`
    SELECT master_key_id, count(*)::text AS n FROM audit_signing_keys GROUP BY 1`.execute(tx);
  return new Map(r.rows.map((x) => [x.master_key_id, Number(x.n)]));
}

/** Every signing key's public half (base64 raw 32 bytes), by id. */
export async function signingPublicKeys(db: Db): Promise<Record<string, string>> {
  const r = await sql<{
    id: string;
    public_key: string;
  }>`SELECT id, public_key FROM audit_signing_keys ORDER BY created_at`.execute(db);
  return Object.fromEntries(r.rows.map((k) => [k.id, k.public_key]));
}

/**
 * Checks that every stored public key is the public half of a seed the KeyProvider unwraps:
 * a public key swapped in the database (to accept forged checkpoints) is caught here.
 */
export async function authenticateSigningKeys(db: Db, kp: KeyProvider): Promise<string[]> {
  const r = await sql<{ id: string; master_key_id: string; wrapped_seed: Buffer; public_key: string }>`
    SELECT id, master_key_id, wrapped_seed, public_key FROM audit_signing_keys ORDER BY created_at`.execute(
    db,
  );
  const bad: string[] = [];
  for (const row of r.rows) {
    try {
      const seed = await kp.unwrap(
        { masterKeyId: row.master_key_id, blob: row.wrapped_seed },
        signingKeyContext(row.id),
      );
      const pub = rawPublicKey(privateKeyFromSeed(seed)).toString('base64');
      seed.fill(0);
      if (pub !== row.public_key) bad.push(`${row.id}: the stored public key does not match the wrapped key`);
    } catch (e) {
      bad.push(`${row.id}: cannot be unwrapped (${(e as Error).name})`);
    }
  }
  return bad;
}

// ---------------------------------------------------------------------------------------------
// Sealer
// ---------------------------------------------------------------------------------------------

export interface SealerOptions {
  /** Events per sealing transaction. */
  batchSize?: number;
  /** Sign a checkpoint after this many newly sealed events… */
  checkpointEvery?: number;
  /** …or when this many minutes passed since the last checkpoint and the head moved. */
  checkpointMinutes?: number;
  clock?: Clock;
  /** Holds the checkpoint signing key; without it no checkpoints are signed. */
  keyProvider?: KeyProvider | (() => Promise<KeyProvider>);
}

interface HeadRow {
  seq: string;
  chain_hash: string;
}

/** Links committed, unsealed audit events into their chains. Safe to run in several processes at once. */
export class AuditSealer {
  /** Every event of a transaction with an id below this is sealed (in-memory: restarts rescan). */
  private watermark = '0';
  private readonly batchSize: number;
  private readonly clock: Clock;
  private readonly keys = new Map<string, SigningKey>();
  private kp: KeyProvider | undefined;

  constructor(
    private readonly db: Db,
    private readonly opts: SealerOptions = {},
  ) {
    this.batchSize = opts.batchSize ?? 1000;
    this.clock = opts.clock ?? systemClock;
  }

  private async keyProvider(): Promise<KeyProvider | undefined> {
    if (this.kp) return this.kp;
    const p = this.opts.keyProvider;
    this.kp = typeof p === 'function' ? await p() : p;
    return this.kp;
  }

  /** One pass: seals everything committed so far, in every chain. Returns the number of events sealed. */
  async sealAll(): Promise<number> {
    const wm = this.watermark;
    // Every transaction below xmin has ended: its events are visible to the queries below.
    const snap = await sql<{
      xmin: string;
    }>`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin`.execute(this.db);
    const xmin = snap.rows[0]?.xmin ?? wm;
    // Discovery runs as the owner connection (across orgs), like other operator tasks.
    const pending = (org: ReturnType<typeof sql>) => sql`EXISTS (SELECT 1 FROM audit_events e
        WHERE ${org} AND e.txid >= ${wm}::xid8
          AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = e.id))`;
    const chains = await sql<{ org_id: string | null }>`
      SELECT o.id AS org_id FROM orgs o WHERE ${pending(sql`e.org_id = o.id`)}
      UNION ALL SELECT NULL WHERE ${pending(sql`e.org_id IS NULL`)}`.execute(this.db);
    let total = 0;
    for (const { org_id } of chains.rows) {
      for (;;) {
        const n = await this.sealBatch(org_id, wm);
        total += n;
        if (n < this.batchSize) break;
      }
    }
    this.watermark = xmin;
    return total;
  }

  /** Seals up to one batch of one chain in one transaction; returns how many events it sealed. */
  async sealBatch(orgId: string | null, watermark = '0'): Promise<number> {
    const chainId = chainIdOf(orgId);
    const kp = await this.keyProvider();
    return inChain(this.db, orgId, async (tx) => {
      await sql`SELECT pg_advisory_xact_lock(hashtextextended(${`billvault.audit_chain:${chainId}`}, 0))`.execute(
        tx,
      );
      const head = await sql<HeadRow>`SELECT seq::text AS seq, chain_hash FROM audit_chain AS ac
        WHERE chain_id = ${chainId} ORDER BY ac.seq DESC LIMIT 1`.execute(tx);
      const events = await sql<EventRow>`SELECT ${EVENT_COLUMNS}, e.content_hash FROM audit_events e
        WHERE ${orgMatch(orgId)} AND e.txid >= ${watermark}::xid8
          AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = e.id)
        ORDER BY e.occurred_at, e.id LIMIT ${this.batchSize}`.execute(tx);
      if (events.rows.length === 0) return 0;
      let seq = Number(head.rows[0]?.seq ?? 0);
      let prev = head.rows[0]?.chain_hash ?? GENESIS_HASH;
      const sealedAt = this.clock.now();
      const cols = {
        seq: [] as string[],
        event: [] as string[],
        content: [] as string[],
        prev: [] as string[],
        hash: [] as string[],
      };
      for (const e of events.rows) {
        seq++;
        const content = e.content_hash ?? auditContentHash(e);
        const hash = chainHash(chainId, seq, e.id, content, prev);
        cols.seq.push(String(seq));
        cols.event.push(e.id);
        cols.content.push(content);
        cols.prev.push(prev);
        cols.hash.push(hash);
        prev = hash;
      }
      await sql`INSERT INTO audit_chain (chain_id, org_id, seq, event_id, content_hash, prev_hash, chain_hash, sealed_at)
        SELECT ${chainId}, ${orgId}::text, s, ev, ch, ph, h, ${sealedAt}::timestamptz
        FROM unnest(${cols.seq}::bigint[], ${cols.event}::text[], ${cols.content}::text[], ${cols.prev}::text[], ${cols.hash}::text[])
          AS t(s, ev, ch, ph, h)`.execute(tx);
      if (kp) await this.maybeCheckpoint(tx, kp, chainId, orgId, seq, prev, false);
      return events.rows.length;
    });
  }

  private async maybeCheckpoint(
    tx: Tx,
    kp: KeyProvider,
    chainId: string,
    orgId: string | null,
    seq: number,
    hash: string,
    force: boolean,
  ): Promise<Checkpoint | undefined> {
    const now = this.clock.now();
    const last = await sql<{
      seq: string;
      signed_at: Date;
    }>`SELECT seq::text AS seq, signed_at FROM audit_checkpoints AS ck
      WHERE chain_id = ${chainId} ORDER BY ck.seq DESC LIMIT 1`.execute(tx);
    const lastSeq = Number(last.rows[0]?.seq ?? 0);
    if (seq <= lastSeq) return undefined;
    const every = this.opts.checkpointEvery ?? 1000;
    const minutes = this.opts.checkpointMinutes ?? 10;
    const lastAt = last.rows[0]?.signed_at.getTime() ?? 0;
    if (!force && seq - lastSeq < every && now.getTime() - lastAt < minutes * 60_000) return undefined;
    const sk = await activeSigningKey(tx, kp, this.keys);
    const signedAt = isoMicros(now);
    const cp = {
      chain_id: chainId,
      org_id: orgId,
      seq,
      chain_hash: hash,
      signed_at: signedAt,
      key_id: sk.id,
    };
    const signature = sign(null, checkpointMessage(cp), sk.key).toString('base64');
    await sql`INSERT INTO audit_checkpoints (chain_id, org_id, seq, chain_hash, signed_at, key_id, signature)
      VALUES (${chainId}, ${orgId}, ${seq}, ${hash}, ${now}, ${sk.id}, ${signature})`.execute(tx);
    return { ...cp, signature };
  }

  /** Signs a checkpoint of a chain's current head now (if it moved since the last one). */
  async checkpoint(orgId: string | null): Promise<Checkpoint | undefined> {
    const kp = await this.keyProvider();
    if (!kp) throw new Error('signing a checkpoint needs the key provider');
    const chainId = chainIdOf(orgId);
    return inChain(this.db, orgId, async (tx) => {
      await sql`SELECT pg_advisory_xact_lock(hashtextextended(${`billvault.audit_chain:${chainId}`}, 0))`.execute(
        tx,
      );
      const head = await sql<HeadRow>`SELECT seq::text AS seq, chain_hash FROM audit_chain AS ac
        WHERE chain_id = ${chainId} ORDER BY ac.seq DESC LIMIT 1`.execute(tx);
      const h = head.rows[0];
      if (!h) return undefined;
      return this.maybeCheckpoint(tx, kp, chainId, orgId, Number(h.seq), h.chain_hash, true);
    });
  }

  /** Runs sealAll every intervalMs until stopped; errors go to onError and the loop continues. */
  start(intervalMs: number, onError: (e: unknown) => void): { stop(): Promise<void> } {
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    let running: Promise<void> = Promise.resolve();
    const tick = () => {
      running = this.sealAll()
        .then(
          () => undefined,
          (e) => onError(e),
        )
        .finally(() => {
          if (!stopped) timer = setTimeout(tick, intervalMs);
        });
    };
    timer = setTimeout(tick, intervalMs);
    return {
      async stop() {
        stopped = true;
        if (timer) clearTimeout(timer);
        await running;
      },
    };
  }
}

/** Every chain that has sealed events or events at all: org ids, null for the platform chain. */
export async function listChainsAsOperator(db: Db): Promise<(string | null)[]> {
  const r = await sql<{ org_id: string | null }>`
    SELECT id AS org_id FROM orgs
    UNION ALL SELECT NULL WHERE EXISTS (SELECT 1 FROM audit_events WHERE org_id IS NULL)
      OR EXISTS (SELECT 1 FROM audit_chain WHERE chain_id = 'platform')`.execute(db);
  return r.rows.map((x) => x.org_id);
}

/** The stored checkpoints of a chain, oldest first. */
export async function listCheckpoints(db: Db, orgId: string | null): Promise<Checkpoint[]> {
  return inChain(db, orgId, async (tx) => {
    const r = await sql<
      Omit<Checkpoint, 'seq'> & { seq: string }
    >`SELECT chain_id, org_id, seq::text AS seq, chain_hash,
        to_char(signed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS signed_at, key_id, signature
      FROM audit_checkpoints ck WHERE chain_id = ${chainIdOf(orgId)} ORDER BY ck.seq`.execute(tx);
    return r.rows.map((c) => ({ ...c, seq: Number(c.seq) }));
  });
}

export interface CheckpointFile {
  format: 'billvault.audit-checkpoints.v1';
  exported_at: string;
  public_keys: Record<string, string>;
  checkpoints: Checkpoint[];
}

export async function exportCheckpoints(db: Db, orgIds: (string | null)[], clock: Clock = systemClock) {
  const checkpoints: Checkpoint[] = [];
  for (const o of orgIds) checkpoints.push(...(await listCheckpoints(db, o)));
  const file: CheckpointFile = {
    format: 'billvault.audit-checkpoints.v1',
    exported_at: clock.now().toISOString(),
    public_keys: await signingPublicKeys(db),
    checkpoints,
  };
  return file;
}

/** Parses an exported checkpoint file; throws on anything that is not one. */
export function parseCheckpointFile(text: string): CheckpointFile {
  const v = JSON.parse(text) as Partial<CheckpointFile> | null;
  if (v?.format !== 'billvault.audit-checkpoints.v1' || !Array.isArray(v.checkpoints) || !v.public_keys)
    throw new Error('not a Billvault audit checkpoint file');
  for (const c of v.checkpoints) {
    if (
      typeof c.chain_id !== 'string' ||
      typeof c.seq !== 'number' ||
      typeof c.chain_hash !== 'string' ||
      typeof c.signed_at !== 'string' ||
      typeof c.key_id !== 'string' ||
      typeof c.signature !== 'string'
    )
      throw new Error('the checkpoint file holds a malformed checkpoint');
  }
  return v as CheckpointFile;
}

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

export type ProblemKind =
  | 'gap'
  | 'event_missing'
  | 'wrong_chain'
  | 'content_changed'
  | 'link_broken'
  | 'chain_hash_mismatch'
  | 'inserted'
  | 'unsealed'
  | 'checkpoint_mismatch'
  | 'bad_signature'
  | 'unknown_key'
  | 'truncated';

export interface Problem {
  seq: number | null;
  kind: ProblemKind;
  message: string;
  event_id?: string;
}

export interface ChainReport {
  chain_id: string;
  org_id: string | null;
  ok: boolean;
  sealed: number;
  head_seq: number;
  head_hash: string;
  checkpoints_checked: number;
  unsealed_overdue: number;
  first_bad_seq: number | null;
  problems: Problem[];
}

export interface VerifyOptions {
  clock?: Clock;
  /** Unsealed events older than this are reported (default one minute). */
  unsealedAfterMs?: number;
  /** Checkpoints kept outside the database, with their public keys. */
  checkpointFile?: CheckpointFile;
  /** Rows per page read. */
  pageSize?: number;
  /** At most this many problems are listed (all are counted into ok/first_bad_seq). */
  maxProblems?: number;
}

/**
 * The text a v2 content hash covers (migration 0015), printed by the database from the row
 * aliased e as it is now: the same expression as 0015's insert trigger. Every function is
 * schema-qualified, so nothing a database role can create in another schema stands in for one.
 */
export const AUDIT_V2_TEXT = sql<string>`ARRAY['billvault/audit-event/v2', e.id, e.org_id,
  pg_catalog.to_char(pg_catalog.timezone('UTC', e.occurred_at), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
  e.actor_type, e.actor_id, e.session_id, e.action, e.target_type, e.target_id,
  e.outcome, e.request_id, e.ip, e.user_agent, e.details::text]::text`;

/** A v1 row's columns as one JSON object (its details parsed again, as v1's canonical JSON needs). */
const V1_COLUMNS_SQL = sql`pg_catalog.jsonb_build_object('id', e.id, 'org_id', e.org_id, 'occurred_at', ${OCCURRED_AT},
  'actor_type', e.actor_type, 'actor_id', e.actor_id, 'session_id', e.session_id, 'action', e.action,
  'target_type', e.target_type, 'target_id', e.target_id, 'outcome', e.outcome, 'request_id', e.request_id,
  'ip', e.ip, 'user_agent', e.user_agent, 'details', e.details)`;

/**
 * The fields verification reads per chain row, by binary COPY. Fields 8–22 are the v3 encoding
 * (migration 0016) exactly: binary COPY sends each as a 4-byte length (-1 for NULL) and its
 * bytes, which is how 0016 defines field(), so a v3 event is hashed as one slice of what arrives.
 * v2 and v1 events (written before 0016) come with their own encoding's text in field 7.
 */
const VERIFY_FIELDS = 23;
const V3_FIRST = 8;
const V3_LAST = 22;
const VERIFY_SELECT = `c.seq, c.event_id, c.content_hash, c.prev_hash, c.chain_hash,
  CASE WHEN e.id IS NULL THEN 'missing'
       WHEN e.org_id IS DISTINCT FROM NULLIF(pg_catalog.current_setting('app.org_id'), '') THEN 'wrong_chain'
       WHEN e.content_hash IS NOT NULL AND e.content_hash <> c.content_hash THEN 'stored_hash_differs'
  END,
  e.hash_version,
  CASE WHEN e.hash_version = 2 THEN %V2% WHEN e.hash_version = 1 THEN (%V1%)::text END,
  'billvault/audit-event/v3'::text, e.id, e.org_id, e.occurred_at, e.actor_type, e.actor_id,
  e.session_id, e.action, e.target_type, e.target_id, e.outcome, e.request_id, e.ip, e.user_agent,
  e.details::text`;

/** Binary COPY's 11-byte signature. */
const COPY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/**
 * The COPY statement for one read of the chain: the rows with after < seq (≤ until), in seq
 * order, at most limit. COPY takes no bind parameters: the chain and org come from the
 * transaction's settings (set with parameters), and the bounds are integers checked here.
 */
function verifyCopySql(db: Db, after: number, until: number | null, limit: number | null): string {
  for (const n of [after, until ?? 0, limit ?? 0]) {
    if (!Number.isSafeInteger(n) || n < 0) throw new Error('verify: bad page bound');
  }
  const plain = (q: RawBuilder<unknown>) => {
    const c = q.compile(db);
    if (c.parameters.length) throw new Error('verify: expression has parameters');
    return c.sql;
  };
  const select = VERIFY_SELECT.replace('%V2%', plain(AUDIT_V2_TEXT)).replace('%V1%', plain(V1_COLUMNS_SQL));
  return `COPY (SELECT ${select}
    FROM audit_chain c LEFT JOIN audit_events e ON e.id = c.event_id
    WHERE c.chain_id = pg_catalog.current_setting('app.verify_chain') AND c.seq > ${after}
      ${until === null ? '' : `AND c.seq <= ${until}`}
    ORDER BY c.seq ${limit === null ? '' : `LIMIT ${limit}`}) TO STDOUT (FORMAT binary)`;
}

const HEX_SHA256 = 64;

/**
 * Checks a chain as binary COPY results of VERIFY_SELECT arrive, in seq order: each event
 * hashed as it is now by its own version's encoding, every link, every chain hash, and the
 * checkpoints expected at a seq. The hot path compares bytes in place (hashes are hex text in
 * the rows), so a million rows make few objects; strings are made only for what is reported.
 */
class ChainWalker {
  expected = 1;
  sealed = 0;
  last = 0;
  /** Rows whose event exists and belongs to this chain's org. */
  present = 0;
  /** The stored chain hash of the last row read (hex bytes). */
  private prev = Buffer.from(GENESIS_HASH, 'latin1');
  private prevLen = HEX_SHA256;
  /** "billvault/audit-chain/v1|<chain>|" then, per row, the rest of chainHash's input. */
  private input: Buffer;
  private readonly prefixLen: number;
  private readonly start = new Int32Array(VERIFY_FIELDS);
  private readonly size = new Int32Array(VERIFY_FIELDS);

  constructor(
    chainId: string,
    private readonly expect: Map<number, { hash: string; source: string }[]>,
    private readonly report: (p: Problem) => void,
  ) {
    const prefix = Buffer.from(`billvault/audit-chain/v1|${chainId}|`, 'utf8');
    this.prefixLen = prefix.length;
    this.input = Buffer.alloc(prefix.length + 512);
    prefix.copy(this.input);
  }

  /** The stored chain hash of the last row read. */
  head(): string {
    return this.prev.toString('utf8', 0, this.prevLen);
  }

  /** True when the hex digest equals field i of buf. (Loops: Buffer's own compare and copy cost
   * more in call overhead than these 64 bytes take.) */
  private same(buf: Buffer, i: number, digestHex: string): boolean {
    if (this.size[i] !== HEX_SHA256) return false;
    const at = this.start[i] as number;
    for (let k = 0; k < HEX_SHA256; k++) if (buf[at + k] !== digestHex.charCodeAt(k)) return false;
    return true;
  }

  private text(buf: Buffer, i: number): string | null {
    const n = this.size[i] as number;
    const at = this.start[i] as number;
    return n < 0 ? null : buf.toString('utf8', at, at + n);
  }

  /** The content hash of the row's event as it is now, by its version's encoding (null: none). */
  private contentNow(buf: Buffer): string | null {
    const { start, size } = this;
    const version = size[6] === 2 ? buf.readInt16BE(start[6] as number) : null;
    if (version === 3) {
      const end = (start[V3_LAST] as number) + Math.max(0, size[V3_LAST] as number);
      return hash('sha256', buf.subarray((start[V3_FIRST] as number) - 4, end), 'hex');
    }
    const legacy = start[7] as number;
    if ((size[7] as number) < 0) return null;
    if (version === 2) return hash('sha256', buf.subarray(legacy, legacy + (size[7] as number)), 'hex');
    if (version === 1)
      return auditContentHash(JSON.parse(this.text(buf, 7) as string) as CanonicalAuditEvent);
    return null;
  }

  /** chainHash() of the row: its input built from the fields' bytes in place. */
  private chainHashOf(buf: Buffer, seq: number): string {
    const { start, size } = this;
    let need = this.prefixLen + 20;
    for (let i = 1; i <= 3; i++) need += 1 + Math.max(0, size[i] as number);
    if (need > this.input.length) {
      const grown = Buffer.alloc(need * 2);
      this.input.copy(grown, 0, 0, this.prefixLen);
      this.input = grown;
    }
    const input = this.input;
    let o = this.prefixLen;
    // seq in decimal
    let digits = 1;
    for (let v = seq; v >= 10; v = Math.floor(v / 10)) digits++;
    for (let k = digits - 1, v = seq; k >= 0; k--, v = Math.floor(v / 10)) input[o + k] = 0x30 + (v % 10);
    o += digits;
    // | event id | content hash | prev hash
    for (let i = 1; i <= 3; i++) {
      input[o++] = 0x7c;
      const n = size[i] as number;
      const from = start[i] as number;
      for (let k = 0; k < n; k++) input[o + k] = buf[from + k] as number;
      if (n > 0) o += n;
    }
    return hash('sha256', input.subarray(0, o), 'hex');
  }

  /** True when the row's prev hash is the last row's stored chain hash. */
  private linksToPrev(buf: Buffer): boolean {
    if (this.size[3] !== this.prevLen) return false;
    const at = this.start[3] as number;
    for (let k = 0; k < this.prevLen; k++) if (buf[at + k] !== this.prev[k]) return false;
    return true;
  }

  /**
   * Reads one COPY result; resolves with how many rows it held. It gives the event loop a turn
   * every few thousand rows, so the other backend's rows keep streaming in meanwhile: a
   * backend whose socket is not read stops sending.
   */
  async walk(buf: Buffer): Promise<number> {
    if (buf.length < 19 || !buf.subarray(0, 11).equals(COPY_SIGNATURE))
      throw new Error('verify: not binary COPY data');
    const before = this.sealed;
    for (let o = 19 + buf.readInt32BE(15); o >= 0; ) {
      o = this.rows(buf, o, 2048);
      if (o >= 0) await new Promise(setImmediate);
    }
    return this.sealed - before;
  }

  /** Reads up to max rows from offset o; returns where it stopped, or -1 at the trailer. */
  private rows(buf: Buffer, from: number, max: number): number {
    const { start, size, report } = this;
    let o = from;
    for (let rows = 0; rows < max; rows++) {
      const n = buf.readInt16BE(o);
      o += 2;
      if (n === -1) return -1;
      if (n !== VERIFY_FIELDS) throw new Error(`verify: ${n} fields in a COPY row`);
      for (let i = 0; i < VERIFY_FIELDS; i++) {
        const len = buf.readInt32BE(o);
        o += 4;
        start[i] = o;
        size[i] = len;
        if (len > 0) o += len;
      }
      if (o > buf.length || size[0] !== 8) throw new Error('verify: truncated COPY row');
      const seq = buf.readUInt32BE(start[0] as number) * 2 ** 32 + buf.readUInt32BE((start[0] as number) + 4);
      this.sealed++;
      if (seq !== this.expected) {
        const expected = this.expected;
        report({
          seq: expected,
          kind: 'gap',
          message:
            seq > expected
              ? `seq ${expected}${seq - 1 > expected ? `..${seq - 1}` : ''} missing from the chain`
              : `seq ${seq} out of order`,
        });
      }
      const state = (size[5] as number) < 0 ? null : this.text(buf, 5);
      if (state === 'missing') {
        report({
          seq,
          kind: 'event_missing',
          message: `the event sealed at seq ${seq} is missing`,
          event_id: this.text(buf, 1) ?? '',
        });
      } else if (state === 'wrong_chain') {
        report({
          seq,
          kind: 'wrong_chain',
          message: `the event at seq ${seq} belongs to another chain`,
          event_id: this.text(buf, 1) ?? '',
        });
      } else {
        this.present++;
        // the row as it is now must hash to what the chain sealed (and to what it stores itself)
        const now = this.contentNow(buf);
        if (now === null || !this.same(buf, 2, now) || state === 'stored_hash_differs') {
          report({
            seq,
            kind: 'content_changed',
            message: `the event at seq ${seq} was changed after it was written`,
            event_id: this.text(buf, 1) ?? '',
          });
        }
      }
      if (!this.linksToPrev(buf)) {
        report({
          seq,
          kind: 'link_broken',
          message: `seq ${seq} does not link to the chain hash of seq ${seq - 1}`,
        });
      }
      const chain = this.chainHashOf(buf, seq);
      if (!this.same(buf, 4, chain)) {
        report({
          seq,
          kind: 'chain_hash_mismatch',
          message: `the chain hash at seq ${seq} does not match its contents`,
        });
      }
      const cps = this.expect.get(seq);
      for (const cp of cps ?? []) {
        if (cp.hash !== chain)
          report({
            seq,
            kind: 'checkpoint_mismatch',
            message: `the chain at seq ${seq} differs from the ${cp.source}`,
          });
      }
      // the next row links to this one's stored chain hash
      const len = Math.max(0, size[4] as number);
      if (len > this.prev.length) this.prev = Buffer.alloc(len);
      for (let k = 0, from = start[4] as number; k < len; k++) this.prev[k] = buf[from + k] as number;
      this.prevLen = len;
      this.expected = seq + 1;
      this.last = seq;
    }
    return o;
  }
}

/** Scopes a verification session: the app role, the org's rows, and which chain to read. */
async function scopeVerifier(conn: Db, orgId: string | null): Promise<void> {
  await scopeTransaction(conn, orgId);
  await scopeChain(conn, orgId);
  // Each page is a nested loop from the chain's index to the event by id. Left to itself the
  // planner sometimes hashes the whole event table per page, or starts a parallel worker per
  // page; the two backends are this reader's parallelism, and compiling each page (JIT) costs
  // more than it saves. Transaction-local settings.
  await sql`SELECT set_config('app.verify_chain', ${chainIdOf(orgId)}, true),
    set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true),
    set_config('max_parallel_workers_per_gather', '0', true), set_config('jit', 'off', true)`.execute(conn);
}

/**
 * Recomputes one chain: every event's content hash, every link and chain hash, every stored
 * (and exported) checkpoint's signature and hash; reports unsealed events older than a minute.
 * Reads in one repeatable-read snapshot, on a client of its own from the pool (binary COPY is
 * not something the query builder does), with a second client sharing the snapshot when the
 * pool can spare one.
 */
export async function verifyChain(
  db: Db,
  orgId: string | null,
  opts: VerifyOptions = {},
): Promise<ChainReport> {
  const chainId = chainIdOf(orgId);
  const clock = opts.clock ?? systemClock;
  const pageSize = opts.pageSize ?? 20_000;
  const maxProblems = opts.maxProblems ?? 50;
  const problems: Problem[] = [];
  const report = (p: Problem) => {
    problems.push(p);
  };
  return withReadSnapshot(
    db,
    (session) => scopeVerifier(session, orgId),
    async (main, openTwin) => {
      const tx = main.db;
      const cps = await sql<Omit<Checkpoint, 'seq'> & { seq: string; public_key: string | null }>`
        SELECT c.chain_id, c.org_id, c.seq::text AS seq, c.chain_hash,
          to_char(c.signed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS signed_at, c.key_id, c.signature,
          k.public_key
        FROM audit_checkpoints c LEFT JOIN audit_signing_keys k ON k.id = c.key_id
        WHERE c.chain_id = ${chainId} ORDER BY c.seq`.execute(tx);
      // Checkpoints by seq: the stored ones, then those from the file (trusted keys from the file).
      const expect = new Map<number, { hash: string; source: string }[]>();
      const addExpect = (seq: number, hash: string, source: string) => {
        const list = expect.get(seq) ?? [];
        list.push({ hash, source });
        expect.set(seq, list);
      };
      let checkpointsChecked = 0;
      for (const c of cps.rows) {
        const seq = Number(c.seq);
        checkpointsChecked++;
        if (!c.public_key) {
          report({
            seq,
            kind: 'unknown_key',
            message: `checkpoint at seq ${seq} names unknown key ${c.key_id}`,
          });
        } else if (!checkSignature({ ...c, seq }, c.public_key)) {
          report({ seq, kind: 'bad_signature', message: `checkpoint at seq ${seq} has a bad signature` });
        }
        addExpect(seq, c.chain_hash, 'stored checkpoint');
      }
      let fileMaxSeq = 0;
      for (const c of opts.checkpointFile?.checkpoints ?? []) {
        if (c.chain_id !== chainId) continue;
        checkpointsChecked++;
        const pub = opts.checkpointFile?.public_keys[c.key_id];
        if (!pub) {
          report({
            seq: c.seq,
            kind: 'unknown_key',
            message: `exported checkpoint at seq ${c.seq} names unknown key ${c.key_id}`,
          });
          continue;
        }
        if (!checkSignature(c, pub)) {
          report({
            seq: c.seq,
            kind: 'bad_signature',
            message: `exported checkpoint at seq ${c.seq} has a bad signature`,
          });
          continue;
        }
        addExpect(c.seq, c.chain_hash, 'exported checkpoint');
        fileMaxSeq = Math.max(fileMaxSeq, c.seq);
      }

      // The database sends each event's fields as they are now; this process hashes them, and
      // recomputes every chain hash and link.
      const walker = new ChainWalker(chainId, expect, report);
      // Dense chains (the normal case) are read in seq ranges, two reads in flight, on two
      // database backends sharing this snapshot when the pool spares a second connection; a chain
      // with large holes is read page after page.
      const extent = await sql<{
        n: string;
        max: string | null;
      }>`SELECT count(*)::text AS n, max(seq)::text AS max
        FROM audit_chain WHERE chain_id = ${chainId}`.execute(tx);
      const count = Number(extent.rows[0]?.n ?? 0);
      const maxSeq = Number(extent.rows[0]?.max ?? 0);
      const threshold = new Date(clock.now().getTime() - (opts.unsealedAfterMs ?? 60_000));
      // Counted while the chain is read (queued on the first session after its first page).
      const countOlder = () => {
        const q = sql<{ old: string; young_sealed: string }>`SELECT
          (SELECT count(*) FROM audit_events e WHERE ${orgMatch(orgId)} AND e.occurred_at < ${threshold})::text AS old,
          (SELECT count(*) FROM audit_events e WHERE ${orgMatch(orgId)} AND e.occurred_at >= ${threshold}
            AND EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = e.id AND c.chain_id = ${chainId}))::text AS young_sealed`.execute(
          tx,
        );
        q.catch(() => undefined);
        return q;
      };
      let olderThan: ReturnType<typeof countOlder>;
      if (maxSeq <= count + pageSize) {
        const twin = count > 2 * pageSize ? await openTwin() : null;
        const readers = twin ? [main, twin] : [main];
        const pages = Math.ceil(maxSeq / pageSize);
        const fetch = (k: number) =>
          (readers[k % readers.length] ?? main).copyOut(
            verifyCopySql(tx, k * pageSize, (k + 1) * pageSize, null),
          );
        const inFlight = [pages > 0 ? fetch(0) : null, pages > 1 ? fetch(1) : null];
        olderThan = countOlder();
        // Settle both reads even when one fails, so no rejection is left unhandled.
        inFlight[1]?.catch(() => undefined);
        for (let k = 0; k < pages; k++) {
          const page = (await inFlight[k % 2]) as Buffer;
          if (k + 2 < pages) {
            const next = fetch(k + 2);
            next.catch(() => undefined);
            inFlight[k % 2] = next;
          }
          await walker.walk(page);
        }
      } else {
        olderThan = countOlder();
        for (let from = 0; ; ) {
          const page = await main.copyOut(verifyCopySql(tx, from, null, pageSize));
          if ((await walker.walk(page)) < pageSize) break;
          from = walker.last;
        }
      }
      const headSeq = walker.last;
      // A checkpoint beyond the head: the tail was cut off.
      const maxCheckpoint = Math.max(fileMaxSeq, ...cps.rows.map((c) => Number(c.seq)));
      if (maxCheckpoint > headSeq) {
        report({
          seq: headSeq + 1,
          kind: 'truncated',
          message: `the chain ends at seq ${headSeq} but a checkpoint vouches for seq ${maxCheckpoint}: seq ${headSeq + 1}..${maxCheckpoint} were removed`,
        });
      }

      // Unsealed events: older than the threshold is a problem (a forged insert, or a stalled sealer).
      // Counted without an anti-join over the whole log: the org's events older than the threshold,
      // less those the walk found sealed in this chain (event ids are unique in audit_chain, so each
      // present row is one distinct event) that are not younger than the threshold.
      const older = (await olderThan).rows[0];
      const counted = Number(older?.old ?? 0) - (walker.present - Number(older?.young_sealed ?? 0));
      // (Below zero only if an event were sealed twice, which audit_chain's unique key forbids: then list.)
      const overdue =
        counted !== 0
          ? await sql<{ id: string }>`
        SELECT e.id FROM audit_events e
        WHERE ${orgMatch(orgId)} AND e.occurred_at < ${threshold}
          AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = e.id AND c.chain_id = ${chainId})
        ORDER BY e.occurred_at, e.id LIMIT 20`.execute(tx)
          : { rows: [] };
      const unsealedOverdue = counted < 0 ? overdue.rows.length : counted;
      for (const u of overdue.rows) {
        // Where it claims to belong: before the first sealed event dated after it (compared in the
        // database, to the microsecond: a JavaScript Date would cut the time to milliseconds).
        const at = await sql<{ seq: string | null }>`SELECT min(c.seq)::text AS seq FROM audit_chain c
          JOIN audit_events e ON e.id = c.event_id
          WHERE c.chain_id = ${chainId}
            AND (e.occurred_at, e.id) > (SELECT u.occurred_at, u.id FROM audit_events u WHERE u.id = ${u.id})`.execute(
          tx,
        );
        const seq = at.rows[0]?.seq ? Number(at.rows[0].seq) : headSeq + 1;
        report({
          seq,
          kind: seq <= headSeq ? 'inserted' : 'unsealed',
          message:
            seq <= headSeq
              ? `event ${u.id} is not in the chain but is dated before the event sealed at seq ${seq} (inserted?)`
              : `event ${u.id} has been waiting to be sealed for over ${Math.round((opts.unsealedAfterMs ?? 60_000) / 1000)} s`,
          event_id: u.id,
        });
      }

      const sorted = [...problems].sort(
        (a, b) => (a.seq ?? Number.MAX_SAFE_INTEGER) - (b.seq ?? Number.MAX_SAFE_INTEGER),
      );
      return {
        chain_id: chainId,
        org_id: orgId,
        ok: problems.length === 0,
        sealed: walker.sealed,
        head_seq: headSeq,
        head_hash: walker.head(),
        checkpoints_checked: checkpointsChecked,
        unsealed_overdue: unsealedOverdue,
        first_bad_seq: sorted[0]?.seq ?? null,
        problems: sorted.slice(0, maxProblems),
      };
    },
  );
}

function checkSignature(
  c: Pick<Checkpoint, 'chain_id' | 'seq' | 'chain_hash' | 'signed_at' | 'signature'>,
  publicKey: string,
) {
  try {
    return verifySignature(
      null,
      checkpointMessage(c),
      publicKeyFromRaw(publicKey),
      Buffer.from(c.signature, 'base64'),
    );
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Reading the log (auditors)
// ---------------------------------------------------------------------------------------------

export interface AuditFilter {
  actor_id?: string;
  actor_type?: string;
  action?: string;
  target_type?: string;
  target_id?: string;
  /** Inclusive lower bound on occurred_at. */
  from?: Date;
  /** Exclusive upper bound on occurred_at. */
  to?: Date;
}

export interface AuditEventView {
  id: string;
  object: 'audit_event';
  org_id: string | null;
  occurred_at: string;
  actor: { type: string; id: string | null; session_id: string | null };
  action: string;
  target: { type: string; id: string | null } | null;
  outcome: string;
  request_id: string | null;
  ip: string | null;
  user_agent: string | null;
  details: unknown;
  content_hash: string;
  /** Its place in the chain; null until the sealer links it. */
  seq: number | null;
}

interface ListedRow extends EventRow {
  seq: string | null;
}

/** A keyset cursor: the event's time as exact text (microseconds), and its id. */
interface Cursor {
  at: string;
  id: string;
}

function eventView(r: ListedRow): AuditEventView {
  return {
    id: r.id,
    object: 'audit_event',
    org_id: r.org_id,
    occurred_at: r.occurred_at,
    actor: { type: r.actor_type, id: r.actor_id, session_id: r.session_id },
    action: r.action,
    target: r.target_type ? { type: r.target_type, id: r.target_id } : null,
    outcome: r.outcome,
    request_id: r.request_id,
    ip: r.ip,
    user_agent: r.user_agent,
    details: r.details,
    content_hash: r.content_hash ?? auditContentHash(r),
    seq: r.seq === null ? null : Number(r.seq),
  };
}

function filterSql(f: AuditFilter) {
  const parts = [sql`true`];
  if (f.actor_id) parts.push(sql`e.actor_id = ${f.actor_id}`);
  if (f.actor_type) parts.push(sql`e.actor_type = ${f.actor_type}`);
  if (f.action) parts.push(sql`e.action = ${f.action}`);
  if (f.target_type) parts.push(sql`e.target_type = ${f.target_type}`);
  if (f.target_id) parts.push(sql`e.target_id = ${f.target_id}`);
  if (f.from) parts.push(sql`e.occurred_at >= ${f.from}`);
  if (f.to) parts.push(sql`e.occurred_at < ${f.to}`);
  return sql.join(parts, sql` AND `);
}

/**
 * One page of a chain's events (an org's, in a transaction that sees only it), keyset on
 * (occurred_at, id): newest first for the API, oldest first for exports.
 */
export async function pageAuditEvents(
  tx: Tx,
  orgId: string | null,
  f: AuditFilter,
  page: { limit: number; after?: Cursor; order: 'asc' | 'desc' },
): Promise<{ rows: AuditEventView[]; last?: Cursor; has_more: boolean }> {
  const dir = page.order === 'asc' ? sql`ASC` : sql`DESC`;
  const cursor = page.after
    ? page.order === 'asc'
      ? sql`(e.occurred_at, e.id) > (${page.after.at}::timestamptz, ${page.after.id})`
      : sql`(e.occurred_at, e.id) < (${page.after.at}::timestamptz, ${page.after.id})`
    : sql`true`;
  const r = await sql<ListedRow>`SELECT ${EVENT_COLUMNS}, e.content_hash, c.seq::text AS seq
    FROM audit_events e LEFT JOIN audit_chain c ON c.event_id = e.id
    WHERE ${orgMatch(orgId)} AND ${filterSql(f)} AND ${cursor}
    ORDER BY e.occurred_at ${dir}, e.id ${dir} LIMIT ${page.limit + 1}`.execute(tx);
  const rows = r.rows.slice(0, page.limit);
  const lastRow = rows.at(-1);
  return {
    rows: rows.map(eventView),
    ...(lastRow ? { last: { at: lastRow.occurred_at, id: lastRow.id } } : {}),
    has_more: r.rows.length > page.limit,
  };
}

/** `GET /v1/audit_events`: the caller's org's events, newest first, filtered (audit:read). */
export async function listAuditEvents(
  db: Db,
  ctx: Ctx,
  f: AuditFilter & PageParams,
): Promise<ListPage<AuditEventView>> {
  const limit = pageLimit(f);
  return inOrg(db, ctx.actor.orgId, async (tx) => {
    await authorize(tx, ctx, 'audit:read');
    let after: Cursor | undefined;
    if (f.starting_after) {
      const c = await sql<Cursor>`SELECT ${OCCURRED_AT} AS at, e.id FROM audit_events e
        WHERE ${orgMatch(ctx.actor.orgId)} AND ${filterSql(f)} AND e.id = ${f.starting_after}`.execute(tx);
      if (!c.rows[0]) throw badCursor();
      after = c.rows[0];
    }
    const page = await pageAuditEvents(tx, ctx.actor.orgId, f, {
      limit,
      order: 'desc',
      ...(after ? { after } : {}),
    });
    return { object: 'list', data: page.rows, has_more: page.has_more };
  });
}

/** `GET /v1/audit/verify`: verifies the caller's org chain (audit:read). */
export async function verifyOrgAudit(db: Db, ctx: Ctx, opts: VerifyOptions = {}): Promise<ChainReport> {
  await inOrg(db, ctx.actor.orgId, (tx) => authorize(tx, ctx, 'audit:read'));
  return verifyChain(db, ctx.actor.orgId, opts);
}

/** Streams a chain's events oldest first, page by page (for exports). */
export async function* exportAuditEvents(
  db: Db,
  orgId: string | null,
  f: AuditFilter,
  pageSize = 5000,
): AsyncGenerator<AuditEventView> {
  let after: Cursor | undefined;
  for (;;) {
    const page = await inChain(db, orgId, (tx) =>
      pageAuditEvents(tx, orgId, f, { limit: pageSize, order: 'asc', ...(after ? { after } : {}) }),
    );
    yield* page.rows;
    if (!page.has_more || !page.last) return;
    after = page.last;
  }
}

export const CSV_COLUMNS = [
  'id',
  'org_id',
  'occurred_at',
  'actor_type',
  'actor_id',
  'session_id',
  'action',
  'target_type',
  'target_id',
  'outcome',
  'request_id',
  'ip',
  'user_agent',
  'details',
  'content_hash',
  'seq',
] as const;

/** One CSV cell: quoted when needed; a leading = + - @ (or tab/CR) is neutralised (formula injection). */
export function csvCell(value: string | number | null): string {
  if (value === null) return '';
  let s = String(value);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export function csvRow(e: AuditEventView): string {
  const cells: (string | number | null)[] = [
    e.id,
    e.org_id,
    e.occurred_at,
    e.actor.type,
    e.actor.id,
    e.actor.session_id,
    e.action,
    e.target?.type ?? null,
    e.target?.id ?? null,
    e.outcome,
    e.request_id,
    e.ip,
    e.user_agent,
    canonicalJson(e.details),
    e.content_hash,
    e.seq,
  ];
  return cells.map(csvCell).join(',');
}
