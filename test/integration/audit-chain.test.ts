import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { connect, inOrg, inTransaction } from '../../src/adapters/db/index.js';
import { auditContentHash, isoMicros, recordAudit } from '../../src/app/audit.js';
import {
  AUDIT_V2_TEXT,
  AuditSealer,
  chainHash,
  exportCheckpoints,
  parseCheckpointFile,
  type VerifyOptions,
  verifyChain,
} from '../../src/app/audit-chain.js';
import { createOrg } from '../../src/app/orgs.js';
import { testKeyProvider } from '../helpers/crypto.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { MINUTE, TestClock } from '../helpers/identity.js';

let t: TestDatabase;
const kp = testKeyProvider();

before(async () => {
  t = await createTestDatabase();
});
after(async () => {
  await t.drop();
});

const START = '2026-03-02T09:00:00.000Z';

/** A new org whose chain holds n sealed events (seq i = the i-th event), one checkpoint at the head. */
async function seededChain(n: number, beforeSeal?: (org: string) => Promise<unknown>) {
  const clock = new TestClock(START);
  const org = (await createOrg(t.db, { name: 'Tamper', baseCurrency: 'EUR' })).id;
  // The org.created event is seq 1; add n-1 more, one millisecond apart.
  for (let i = 2; i <= n; i++) {
    clock.advance(1);
    await inOrg(t.db, org, (tx) =>
      recordAudit(tx, {
        orgId: org,
        actor: { kind: 'user', id: 'usr_test' },
        action: 'invoice.created',
        target: { type: 'invoice', id: `inv_${i}` },
        outcome: 'success',
        details: { n: i, nested: { b: 1, a: [1, 'x'] } },
        occurredAt: new Date(Date.now() + i),
      }),
    );
  }
  await beforeSeal?.(org);
  const sealer = new AuditSealer(t.db, { keyProvider: kp, clock, checkpointEvery: 1_000_000 });
  await sealer.sealAll();
  await sealer.checkpoint(org);
  const ids = await chainEvents(org);
  assert.equal(ids.length, n);
  return { org, ids, sealer, clock };
}

/**
 * Verifies twice: with the default pages (small chains: read page after page), and with pages of
 * two, which reads a dense chain in seq ranges on two database backends sharing one snapshot.
 * Both must report exactly the same.
 */
async function verify(db: TestDatabase['db'], org: string | null, opts: VerifyOptions = {}) {
  const whole = await verifyChain(db, org, opts);
  const ranged = await verifyChain(db, org, { ...opts, pageSize: 2 });
  assert.deepEqual(ranged, whole);
  return whole;
}

async function chainEvents(org: string): Promise<string[]> {
  const r = await sql<{
    event_id: string;
  }>`SELECT event_id FROM audit_chain WHERE chain_id = ${org} ORDER BY seq`.execute(t.db);
  return r.rows.map((x) => x.event_id);
}

/** Runs fn as the superuser with the append-only triggers off (what an attacker with the DB would do). */
async function tamper(fn: () => Promise<unknown>) {
  const tables = ['audit_events', 'audit_chain', 'audit_checkpoints'];
  for (const tb of tables) await sql`ALTER TABLE ${sql.table(tb)} DISABLE TRIGGER USER`.execute(t.db);
  try {
    await fn();
  } finally {
    for (const tb of tables) await sql`ALTER TABLE ${sql.table(tb)} ENABLE TRIGGER USER`.execute(t.db);
  }
}

describe('audit chain: sealing', () => {
  it('an untouched chain verifies, checkpoints included; content hashes are written with the event', async () => {
    const { org } = await seededChain(12);
    const r = await verify(t.db, org, { clock: new TestClock(START) });
    assert.equal(r.ok, true, JSON.stringify(r.problems));
    assert.equal(r.head_seq, 12);
    assert.equal(r.sealed, 12);
    assert.equal(r.checkpoints_checked >= 1, true);
    const missing = await sql<{ n: number }>`SELECT count(*)::int AS n FROM audit_events
      WHERE org_id = ${org} AND content_hash IS NULL`.execute(t.db);
    assert.equal(missing.rows[0]?.n, 0);
  });

  it('a pool of one connection still verifies a long chain (it reads on its one backend)', async () => {
    const { org } = await seededChain(12);
    const one = connect(t.url, 1);
    try {
      const r = await verifyChain(one.db, org, { pageSize: 2, clock: new TestClock(START) });
      assert.equal(r.ok, true, JSON.stringify(r.problems));
      assert.equal(r.sealed, 12);
    } finally {
      await one.db.destroy();
    }
  });

  it('org-less events get their own platform chain', async () => {
    await inTransaction(t.db, {}, (tx) =>
      recordAudit(tx, {
        orgId: null,
        actor: { kind: 'anonymous' },
        action: 'auth.login_failed',
        outcome: 'failed',
      }),
    );
    await new AuditSealer(t.db, { keyProvider: kp }).sealAll();
    const r = await verify(t.db, null);
    assert.equal(r.ok, true, JSON.stringify(r.problems));
    assert.equal(r.chain_id, 'platform');
    assert.equal(r.head_seq >= 1, true);
  });

  it('the application role cannot update, delete or truncate the chain', async () => {
    const { org } = await seededChain(3);
    for (const stmt of [
      sql`UPDATE audit_chain SET sealed_at = now()`,
      sql`DELETE FROM audit_chain`,
      sql`TRUNCATE audit_chain`,
      sql`DELETE FROM audit_checkpoints`,
    ]) {
      await assert.rejects(
        inOrg(t.db, org, (tx) => stmt.execute(tx)),
        /permission denied/,
      );
    }
    await assert.rejects(sql`DELETE FROM audit_chain`.execute(t.db), /append-only/);
  });

  it('two sealers at once never seal an event twice or fork the chain', async () => {
    const org = (await createOrg(t.db, { name: 'Race', baseCurrency: 'EUR' })).id;
    for (let i = 0; i < 120; i++)
      await inOrg(t.db, org, (tx) =>
        recordAudit(tx, {
          orgId: org,
          actor: { kind: 'system', id: 'system' },
          action: 'test.written',
          outcome: 'success',
        }),
      );
    const a = new AuditSealer(t.db, { batchSize: 7, keyProvider: kp, checkpointEvery: 10 });
    const b = new AuditSealer(t.db, { batchSize: 5, keyProvider: kp, checkpointEvery: 10 });
    await Promise.all([a.sealAll(), b.sealAll(), a.sealAll(), b.sealAll()]);
    const r = await sql<{ n: number; d: number; max: number }>`SELECT count(*)::int AS n,
      count(DISTINCT event_id)::int AS d, max(seq)::int AS max FROM audit_chain WHERE chain_id = ${org}`.execute(
      t.db,
    );
    assert.deepEqual(r.rows[0], { n: 121, d: 121, max: 121 });
    const v = await verify(t.db, org);
    assert.equal(v.ok, true, JSON.stringify(v.problems));
  });

  it('events from 16 concurrent writers are all sealed exactly once while sealers run', async () => {
    const org = (await createOrg(t.db, { name: 'Load', baseCurrency: 'EUR' })).id;
    const s1 = new AuditSealer(t.db, { batchSize: 13 });
    const s2 = new AuditSealer(t.db, { batchSize: 50 });
    const errors: unknown[] = [];
    const loops = [s1.start(5, (e) => errors.push(e)), s2.start(7, (e) => errors.push(e))];
    try {
      await Promise.all(
        Array.from({ length: 16 }, async (_, w) => {
          for (let i = 0; i < 20; i++) {
            await inOrg(t.db, org, async (tx) => {
              await recordAudit(tx, {
                orgId: org,
                actor: { kind: 'user', id: `usr_${w}` },
                action: 'test.written',
                outcome: 'success',
                details: { w, i },
              });
              // Some transactions stay open a little: their events commit after later-dated ones.
              if (i % 5 === 0) await sql`SELECT pg_sleep(0.01)`.execute(tx);
            });
          }
        }),
      );
    } finally {
      for (const l of loops) await l.stop();
    }
    assert.deepEqual(errors, []);
    await s1.sealAll();
    const r = await sql<{ n: number; d: number; max: number }>`SELECT count(*)::int AS n,
      count(DISTINCT event_id)::int AS d, max(seq)::int AS max FROM audit_chain WHERE chain_id = ${org}`.execute(
      t.db,
    );
    assert.deepEqual(r.rows[0], { n: 321, d: 321, max: 321 });
    const v = await verify(t.db, org);
    assert.equal(v.ok, true, JSON.stringify(v.problems));
  });
});

describe('audit chain: tampering is detected with the right sequence number', () => {
  it('a changed field', async () => {
    const { org, ids } = await seededChain(10);
    await tamper(() => sql`UPDATE audit_events SET outcome = 'failed' WHERE id = ${ids[4]}`.execute(t.db));
    const r = await verify(t.db, org);
    assert.equal(r.ok, false);
    assert.equal(r.first_bad_seq, 5);
    assert.equal(r.problems[0]?.kind, 'content_changed');
  });

  it('a changed details value, with the stored content hash recomputed by the attacker', async () => {
    const { org, ids } = await seededChain(10);
    await tamper(() =>
      sql`UPDATE audit_events SET details = '{"n": 99}', content_hash = ${'a'.repeat(64)} WHERE id = ${ids[6]}`.execute(
        t.db,
      ),
    );
    const r = await verify(t.db, org);
    assert.equal(r.first_bad_seq, 7);
    assert.equal(r.problems[0]?.kind, 'content_changed');
  });

  it('a deleted event', async () => {
    const { org, ids } = await seededChain(10);
    await tamper(() => sql`DELETE FROM audit_events WHERE id = ${ids[5]}`.execute(t.db));
    const r = await verify(t.db, org);
    assert.equal(r.first_bad_seq, 6);
    assert.equal(r.problems[0]?.kind, 'event_missing');
  });

  it('a deleted event together with its chain link', async () => {
    const { org, ids } = await seededChain(10);
    await tamper(async () => {
      await sql`DELETE FROM audit_chain WHERE event_id = ${ids[5]}`.execute(t.db);
      await sql`DELETE FROM audit_events WHERE id = ${ids[5]}`.execute(t.db);
    });
    const r = await verify(t.db, org);
    assert.equal(r.first_bad_seq, 6);
    assert.equal(r.problems[0]?.kind, 'gap');
  });

  it('a forged event inserted among sealed ones', async () => {
    const { org, ids } = await seededChain(10);
    await tamper(() =>
      sql`INSERT INTO audit_events (id, org_id, occurred_at, actor_type, actor_id, action, outcome)
        SELECT 'evt_' || repeat('f', 32), org_id, occurred_at - interval '1 microsecond', 'user', 'usr_forger',
          'invoice.voided', 'success'
        FROM audit_events WHERE id = ${ids[4]}`.execute(t.db),
    );
    const clock = new TestClock();
    clock.set(new Date(Date.now() + 2 * MINUTE).toISOString());
    const r = await verify(t.db, org, { clock });
    assert.equal(r.ok, false);
    assert.equal(r.first_bad_seq, 5);
    assert.equal(r.problems[0]?.kind, 'inserted');
  });

  it('a forged event linked into the chain by the attacker (later links recomputed)', async () => {
    const { org, ids } = await seededChain(10);
    // The attacker inserts an event at seq 5 and rebuilds every later link: only the signed checkpoint can tell.
    await tamper(async () => {
      const forged = `evt_${'e'.repeat(32)}`;
      await sql`INSERT INTO audit_events (id, org_id, occurred_at, actor_type, action, outcome)
        VALUES (${forged}, ${org}, now(), 'system', 'invoice.voided', 'success')`.execute(t.db);
      const rows = await sql<{ seq: string; event_id: string; content_hash: string }>`
        SELECT seq::text AS seq, event_id, content_hash FROM audit_chain WHERE chain_id = ${org} ORDER BY seq`.execute(
        t.db,
      );
      await sql`DELETE FROM audit_chain WHERE chain_id = ${org}`.execute(t.db);
      const list = rows.rows.map((r) => ({ event_id: r.event_id, content: r.content_hash }));
      list.splice(4, 0, { event_id: forged, content: 'c'.repeat(64) });
      let prev = '0'.repeat(64);
      for (const [i, e] of list.entries()) {
        const h = chainHash(org, i + 1, e.event_id, e.content, prev);
        await sql`INSERT INTO audit_chain (chain_id, org_id, seq, event_id, content_hash, prev_hash, chain_hash, sealed_at)
          VALUES (${org}, ${org}, ${i + 1}, ${e.event_id}, ${e.content}, ${prev}, ${h}, now())`.execute(t.db);
        prev = h;
      }
    });
    const r = await verify(t.db, org);
    assert.equal(r.first_bad_seq, 5);
    assert.equal(r.problems[0]?.kind, 'content_changed');
    assert.ok(r.problems.some((p) => p.kind === 'checkpoint_mismatch'));
    void ids;
  });

  it('two events swapped', async () => {
    const { org, ids } = await seededChain(10);
    await tamper(async () => {
      const tmp = `evt_${'0'.repeat(32)}`;
      await sql`UPDATE audit_chain SET event_id = ${tmp} WHERE event_id = ${ids[2]}`.execute(t.db);
      await sql`UPDATE audit_chain SET event_id = ${ids[2]} WHERE event_id = ${ids[3]}`.execute(t.db);
      await sql`UPDATE audit_chain SET event_id = ${ids[3]} WHERE event_id = ${tmp}`.execute(t.db);
    });
    const r = await verify(t.db, org);
    assert.equal(r.first_bad_seq, 3);
    const kinds = r.problems.filter((p) => p.seq === 3).map((p) => p.kind);
    assert.ok(kinds.includes('content_changed') || kinds.includes('chain_hash_mismatch'), kinds.join());
  });

  it('two events reordered in time', async () => {
    const { org, ids } = await seededChain(10);
    await tamper(() =>
      sql`UPDATE audit_events a SET occurred_at = b.occurred_at FROM audit_events b
        WHERE (a.id, b.id) IN ((${ids[6]}, ${ids[7]}), (${ids[7]}, ${ids[6]}))`.execute(t.db),
    );
    const r = await verify(t.db, org);
    assert.equal(r.first_bad_seq, 7);
  });

  it('a truncated tail, given an exported checkpoint file', async () => {
    const { org } = await seededChain(10);
    const file = parseCheckpointFile(JSON.stringify(await exportCheckpoints(t.db, [org])));
    await tamper(async () => {
      await sql`DELETE FROM audit_checkpoints WHERE chain_id = ${org} AND seq > 7`.execute(t.db);
      await sql`DELETE FROM audit_events WHERE id IN (SELECT event_id FROM audit_chain WHERE chain_id = ${org} AND seq > 7)`.execute(
        t.db,
      );
      await sql`DELETE FROM audit_chain WHERE chain_id = ${org} AND seq > 7`.execute(t.db);
    });
    const without = await verify(t.db, org);
    assert.equal(without.ok, true, 'a clean cut is invisible without a checkpoint kept outside');
    const r = await verify(t.db, org, { checkpointFile: file });
    assert.equal(r.ok, false);
    assert.equal(r.first_bad_seq, 8);
    assert.equal(r.problems[0]?.kind, 'truncated');
  });

  it('a forged checkpoint signature, and a checkpoint file signed by another key', async () => {
    const { org } = await seededChain(5);
    const file = parseCheckpointFile(JSON.stringify(await exportCheckpoints(t.db, [org])));
    const cp = file.checkpoints.find((c) => c.chain_id === org);
    assert.ok(cp);
    cp.chain_hash = 'b'.repeat(64);
    const r = await verify(t.db, org, { checkpointFile: file });
    assert.equal(r.problems[0]?.kind, 'bad_signature');
    await tamper(() =>
      sql`UPDATE audit_checkpoints SET chain_hash = ${'d'.repeat(64)} WHERE chain_id = ${org}`.execute(t.db),
    );
    const r2 = await verify(t.db, org);
    assert.equal(r2.ok, false);
    assert.equal(r2.first_bad_seq, 5);
  });

  it('an event left unsealed for over a minute is reported', async () => {
    const org = (await createOrg(t.db, { name: 'Stalled', baseCurrency: 'EUR' })).id;
    const clock = new TestClock();
    clock.set(new Date(Date.now() + 2 * MINUTE).toISOString());
    const r = await verify(t.db, org, { clock });
    assert.equal(r.ok, false);
    assert.equal(r.unsealed_overdue, 1);
    assert.equal(r.problems[0]?.kind, 'unsealed');
    assert.equal(r.first_bad_seq, 1);
    const fresh = await verify(t.db, org);
    assert.equal(fresh.ok, true, 'a young unsealed event is not a problem');
  });
});

describe('audit chain: the v3 content hash (computed by the database on insert)', () => {
  /** Events whose columns hold what could confuse an encoding: delimiters, quotes, NULL spelled out, empty strings. */
  const HOSTILE: { actorId: string | undefined; userAgent: string; details: Record<string, unknown> }[] = [
    { actorId: 'NULL', userAgent: '', details: { a: 'x,y', b: '{"q": "\\\\"}', c: null } },
    { actorId: undefined, userAgent: 'NULL', details: { a: 'x', 'b,c': [1, 2.5, 'ü€😀'] } },
    { actorId: '', userAgent: ' spaced\ttabs\nnew line ', details: { null: 'NULL', z: { y: { x: true } } } },
    { actorId: 'a"b\\c{d}e', userAgent: '{}', details: {} },
  ];

  async function hostileChain() {
    const org = (await createOrg(t.db, { name: 'Hostile', baseCurrency: 'EUR' })).id;
    for (const [i, h] of HOSTILE.entries()) {
      await inOrg(t.db, org, (tx) =>
        recordAudit(tx, {
          orgId: org,
          actor: h.actorId === undefined ? { kind: 'anonymous' } : { kind: 'user', id: h.actorId },
          action: 'invoice.created',
          target: { type: 'invoice', id: `inv_${i}` },
          outcome: 'success',
          meta: { requestId: `req_${i}`, ip: '192.0.2.1', userAgent: h.userAgent },
          details: h.details,
          occurredAt: new Date(Date.now() + i),
        }),
      );
    }
    await new AuditSealer(t.db, { keyProvider: kp }).sealAll();
    return { org, ids: await chainEvents(org) };
  }

  /**
   * The v3 encoding rebuilt here from migration 0016's description alone, from the columns as
   * text: field(x) = 4-byte big-endian length then the UTF-8 bytes (NULL: ff ff ff ff), the
   * time as 8 bytes of microseconds since 2000-01-01 UTC, details as jsonb's text.
   */
  function v3Encoding(cols: (string | null)[], occurredAt: string): Buffer {
    const field = (b: Buffer | null) => {
      const len = Buffer.alloc(4);
      len.writeInt32BE(b ? b.length : -1);
      return b ? Buffer.concat([len, b]) : len;
    };
    const [whole, micros] = occurredAt.replace('Z', '').split('.');
    const ms = Date.parse(`${whole}Z`) - Date.UTC(2000, 0, 1);
    const time = Buffer.alloc(8);
    time.writeBigInt64BE(BigInt(ms) * 1000n + BigInt(micros ?? '0'));
    const text = cols.map((c) => field(c === null ? null : Buffer.from(c, 'utf8')));
    return Buffer.concat([
      field(Buffer.from('billvault/audit-event/v3')),
      ...text.slice(0, 2),
      field(time),
      ...text.slice(2),
    ]);
  }

  it('every event written now is hashed by the database (v3) as 0016 documents it, and verifies, whatever its columns hold', async () => {
    const { org } = await hostileChain();
    const rows = await sql<{
      hash_version: number;
      content_hash: string | null;
      at: string;
      cols: (string | null)[];
    }>`
      SELECT hash_version, content_hash,
        to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at,
        ARRAY[id, org_id, actor_type, actor_id, session_id, action, target_type, target_id, outcome,
          request_id, ip, user_agent, details::text] AS cols
      FROM audit_events WHERE org_id = ${org}`.execute(t.db);
    assert.equal(rows.rows.length, HOSTILE.length + 1);
    for (const r of rows.rows) {
      assert.equal(r.hash_version, 3);
      assert.equal(r.content_hash, createHash('sha256').update(v3Encoding(r.cols, r.at)).digest('hex'));
    }
    const v = await verify(t.db, org);
    assert.equal(v.ok, true, JSON.stringify(v.problems));
  });

  it('an event from before 0016 (v2) still verifies, and a change to it is caught', async () => {
    // The event at seq 3 hashed as 0015's trigger did, before it was sealed.
    const { org, ids } = await seededChain(6, (org) =>
      tamper(() =>
        sql`UPDATE audit_events e SET hash_version = 2,
            content_hash = encode(sha256(convert_to(${AUDIT_V2_TEXT}, 'UTF8')), 'hex')
          WHERE e.org_id = ${org} AND e.target_id = 'inv_3'`.execute(t.db),
      ),
    );
    const [, , third, fourth] = ids;
    const v = await sql<{
      v: number;
    }>`SELECT hash_version AS v FROM audit_events WHERE id = ${third}`.execute(t.db);
    assert.equal(v.rows[0]?.v, 2);
    const ok = await verify(t.db, org);
    assert.equal(ok.ok, true, JSON.stringify(ok.problems));
    await tamper(() => sql`UPDATE audit_events SET ip = '203.0.113.9' WHERE id = ${third}`.execute(t.db));
    const bad = await verify(t.db, org);
    assert.equal(bad.first_bad_seq, 3);
    assert.equal(bad.problems[0]?.kind, 'content_changed');
    // A v3 event passed off as v2 (or v1) is hashed by that encoding, and differs.
    for (const v of [2, 1]) {
      await tamper(() => sql`UPDATE audit_events SET hash_version = ${v} WHERE id = ${fourth}`.execute(t.db));
      const r = await verify(t.db, org);
      assert.deepEqual(
        r.problems.map((p) => [p.seq, p.kind]),
        [
          [3, 'content_changed'],
          [4, 'content_changed'],
        ],
      );
    }
  });

  it('a value that only moves between columns, or turns from NULL into the text NULL or empty, is caught', async () => {
    const edits = [
      sql`UPDATE audit_events SET actor_id = NULL WHERE actor_id = 'NULL'`,
      sql`UPDATE audit_events SET actor_id = NULL WHERE actor_id = ''`,
      sql`UPDATE audit_events SET user_agent = NULL WHERE user_agent = 'NULL'`,
      sql`UPDATE audit_events SET actor_id = 'NULL' WHERE actor_id IS NULL AND action = 'invoice.created'`,
      sql`UPDATE audit_events SET request_id = target_id, target_id = request_id WHERE target_id = 'inv_3'`,
      sql`UPDATE audit_events SET details = '{"a": "x", "b,c": [1, 2.5, "ü€"]}' WHERE target_id = 'inv_1'`,
      sql`UPDATE audit_events SET occurred_at = occurred_at + interval '1 microsecond' WHERE target_id = 'inv_2'`,
    ];
    for (const edit of edits) {
      const { org } = await hostileChain();
      await tamper(() => sql`${edit} AND org_id = ${org}`.execute(t.db));
      const r = await verify(t.db, org);
      assert.equal(r.ok, false, edit.compile(t.db).sql);
      assert.equal(r.problems[0]?.kind, 'content_changed', edit.compile(t.db).sql);
    }
  });

  it('events hashed as v1 before 0015 still verify', async () => {
    // A v1 event: hashed in JavaScript by the writer, as before migration 0015.
    const legacy = (await createOrg(t.db, { name: 'Legacy', baseCurrency: 'EUR' })).id;
    const e = {
      id: 'evt_0123456789abcdefghijklmnopqrstuv',
      org_id: legacy,
      occurred_at: isoMicros(new Date(Date.now() + 5)),
      actor_type: 'system',
      actor_id: null,
      session_id: null,
      action: 'invoice.created',
      target_type: null,
      target_id: null,
      outcome: 'success',
      request_id: null,
      ip: null,
      user_agent: null,
      details: { b: [1, { d: 'x', c: null }], a: 'é' },
    };
    await sql`INSERT INTO audit_events (id, org_id, occurred_at, actor_type, action, outcome, details, content_hash)
      VALUES (${e.id}, ${legacy}, ${e.occurred_at}::timestamptz, 'system', 'invoice.created', 'success',
        ${JSON.stringify(e.details)}::jsonb, ${auditContentHash(e)})`.execute(t.db);
    await new AuditSealer(t.db, { keyProvider: kp }).sealAll();
    const versions = await sql<{
      v: number;
    }>`SELECT hash_version AS v FROM audit_events WHERE id = ${e.id}`.execute(t.db);
    assert.equal(versions.rows[0]?.v, 1);
    const ok = await verify(t.db, legacy);
    assert.equal(ok.ok, true, JSON.stringify(ok.problems));
    await tamper(() => sql`UPDATE audit_events SET details = '{"a": "e"}' WHERE id = ${e.id}`.execute(t.db));
    const bad = await verify(t.db, legacy);
    assert.equal(bad.problems[0]?.kind, 'content_changed');
  });
});
