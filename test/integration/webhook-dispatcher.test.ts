/**
 * The webhook dispatcher against real HTTP receivers on loopback (dev mode) and the real
 * database: signatures, retries with backoff, dead letters, restart, two dispatchers at once,
 * and the SSRF guard at delivery time. Time is injected (runOnce(now)); nothing sleeps on it.
 */
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { sql } from 'kysely';
import { inOrg } from '../../src/adapters/db/index.js';
import { type Lookup, parseAllowList, type SsrfPolicy, STRICT_POLICY } from '../../src/adapters/net/ssrf.js';
import { systemCtx } from '../../src/app/context.js';
import { createOrg } from '../../src/app/orgs.js';
import { systemClock } from '../../src/app/ports.js';
import { type DispatcherOptions, WebhookDispatcher } from '../../src/app/webhook-dispatcher.js';
import { createWebhookEndpoint, emitEvent, type WebhookDeps } from '../../src/app/webhooks.js';
import { testCipher } from '../helpers/crypto.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const DEV: SsrfPolicy = { devMode: true, allow: parseAllowList('') };
const MINUTE = 60_000;

interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A real HTTP receiver on loopback; `reply` decides each response. */
class Receiver {
  readonly got: Received[] = [];
  reply: (r: Received) => { status: number; body?: string; headers?: Record<string, string> } | 'hang' =
    () => ({
      status: 200,
    });
  private server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      const r = { path: req.url ?? '', headers: req.headers, body };
      this.got.push(r);
      const out = this.reply(r);
      if (out === 'hang') return; // never answers
      res.writeHead(out.status, { 'content-type': 'text/plain', ...out.headers });
      res.end(out.body ?? '');
    });
  });
  port = 0;
  async start() {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }
  url(path = '/hook') {
    return `http://127.0.0.1:${this.port}${path}`;
  }
  async stop() {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

let t: TestDatabase;
let deps: WebhookDeps;
let org: string;
let rx: Receiver;
const cipher = testCipher();

async function endpoint(url: string, events = ['*'], lookup?: Lookup) {
  return createWebhookEndpoint({ ...deps, ...(lookup ? { lookup } : {}) }, systemCtx(org), {
    url,
    enabled_events: events,
  });
}

async function emit(n = 1, at = new Date()): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    ids.push(
      await inOrg(t.db, org, (tx) =>
        emitEvent(
          tx,
          org,
          'invoice.paid',
          { id: `inv_${String(i).padStart(32, '0')}`, object: 'invoice', total: 1000 + i },
          at,
        ),
      ),
    );
  }
  return ids;
}

interface Row {
  id: string;
  event_id: string;
  status: string;
  attempts: number;
  next_attempt_at: Date;
  last_status_code: number | null;
  last_error: string | null;
  delivered_at: Date | null;
  payload: string;
}
const rows = async () =>
  (
    await sql<Row>`SELECT id, event_id, status, attempts, next_attempt_at, last_status_code, last_error, delivered_at, payload
      FROM webhook_deliveries ORDER BY created_at, id`.execute(t.db)
  ).rows;

const dispatcher = (opts: DispatcherOptions = {}) =>
  new WebhookDispatcher(t.db, cipher, { ssrf: DEV, random: () => 0.5, timeoutMs: 2000, ...opts });

/** What a receiver does: checks the signature with its secret, 5-minute tolerance. */
function verify(secret: string, header: string | undefined, body: string, nowSec: number): boolean {
  const parts = Object.fromEntries((header ?? '').split(',').map((p) => p.split('=') as [string, string]));
  const ts = Number(parts.t);
  if (!Number.isInteger(ts) || Math.abs(nowSec - ts) > 300 || !parts.v1) return false;
  const want = createHmac('sha256', secret).update(`${parts.t}.${body}`).digest();
  const got = Buffer.from(parts.v1, 'hex');
  return got.length === want.length && timingSafeEqual(got, want);
}

before(async () => {
  t = await createTestDatabase();
  deps = { db: t.db, cipher, clock: systemClock, ssrf: DEV };
  org = (await createOrg(t.db, { name: 'Dispatch', baseCurrency: 'EUR' })).id;
});
after(async () => {
  await t.drop();
});
beforeEach(async () => {
  rx = await new Receiver().start();
  await sql`TRUNCATE webhook_deliveries`.execute(t.db);
  await sql`UPDATE webhook_endpoints SET enabled = false`.execute(t.db);
});
afterEach(async () => {
  await rx.stop();
});

describe('webhook dispatcher', () => {
  it('signs each delivery so a receiver holding the secret can verify it', async () => {
    const ep = await endpoint(rx.url('/hooks/billvault?tenant=7'));
    const [eventId] = await emit(1);
    const now = new Date();
    const s = await dispatcher().runOnce(now);
    assert.deepEqual(s, { claimed: 1, succeeded: 1, failed: 0, dead: 0 });
    assert.equal(rx.got.length, 1);
    const got = rx.got[0] as Received;
    assert.equal(got.path, '/hooks/billvault?tenant=7');
    assert.equal(got.headers['content-type'], 'application/json');
    assert.equal(got.headers['billvault-event-id'], eventId);
    const nowSec = Math.floor(now.getTime() / 1000);
    assert.ok(
      verify(ep.secret, got.headers['billvault-signature'] as string, got.body, nowSec),
      'signature verifies',
    );
    assert.match(got.headers['billvault-signature'] as string, new RegExp(`^t=${nowSec},v1=[0-9a-f]{64}$`));
    // a tampered body, another secret or a stale timestamp do not verify
    assert.ok(
      !verify(
        ep.secret,
        got.headers['billvault-signature'] as string,
        got.body.replace('1000', '1001'),
        nowSec,
      ),
    );
    assert.ok(!verify(`${ep.secret}x`, got.headers['billvault-signature'] as string, got.body, nowSec));
    assert.ok(!verify(ep.secret, got.headers['billvault-signature'] as string, got.body, nowSec + 301));
    const event = JSON.parse(got.body);
    assert.equal(event.id, eventId);
    assert.equal(event.type, 'invoice.paid');
    assert.equal(event.data.object.total, 1000);
    const [row] = await rows();
    assert.equal(row?.status, 'succeeded');
    assert.equal(row?.attempts, 1);
    assert.equal(row?.last_status_code, 200);
    assert.equal(row?.delivered_at?.getTime(), now.getTime());
    assert.ok(!JSON.stringify(got.headers).includes(ep.secret));
  });

  it('retries after 500s with exponential backoff, then succeeds; the same bytes every time', async () => {
    await endpoint(rx.url());
    await emit(1);
    let calls = 0;
    rx.reply = () =>
      ++calls <= 2 ? { status: 500, body: 'internal error at /srv/secret-path' } : { status: 204 };
    const d = dispatcher();
    const t0 = new Date();
    assert.equal((await d.runOnce(t0)).failed, 1);
    let [row] = await rows();
    assert.equal(row?.status, 'failed');
    assert.equal(row?.last_status_code, 500);
    assert.equal(row?.last_error, 'HTTP 500', 'the response body is not kept');
    assert.equal(row?.next_attempt_at.getTime(), t0.getTime() + 2 * MINUTE); // base 2 min, jitter pinned at 1.0×
    // not due yet: nothing is sent
    assert.equal((await d.runOnce(new Date(t0.getTime() + MINUTE))).claimed, 0);
    const t1 = new Date(t0.getTime() + 2 * MINUTE);
    assert.equal((await d.runOnce(t1)).failed, 1);
    [row] = await rows();
    assert.equal(row?.attempts, 2);
    assert.equal(row?.next_attempt_at.getTime(), t1.getTime() + 4 * MINUTE);
    assert.equal((await d.runOnce(new Date(t1.getTime() + 3 * MINUTE))).claimed, 0);
    const t2 = new Date(t1.getTime() + 4 * MINUTE);
    assert.equal((await d.runOnce(t2)).succeeded, 1);
    [row] = await rows();
    assert.equal(row?.status, 'succeeded');
    assert.equal(row?.attempts, 3);
    assert.equal(row?.last_status_code, 204);
    assert.equal(row?.last_error, null);
    assert.equal(rx.got.length, 3);
    assert.equal(new Set(rx.got.map((g) => g.body)).size, 1);
    assert.equal(new Set(rx.got.map((g) => g.headers['billvault-event-id'])).size, 1);
    assert.equal(
      (await d.runOnce(new Date(t2.getTime() + 60 * MINUTE))).claimed,
      0,
      'a delivered event is not sent again',
    );
  });

  it('gives up after the last attempt (dead), on errors of every kind, and keeps errors free of secrets', async () => {
    const ep = await endpoint(rx.url());
    await emit(1);
    rx.reply = () => ({ status: 503 });
    const failures: unknown[] = [];
    const d = dispatcher({ maxAttempts: 3, onFailure: (f) => failures.push(f) });
    let now = new Date();
    for (let i = 0; i < 3; i++) {
      await d.runOnce(now);
      now = new Date(now.getTime() + 24 * 60 * MINUTE);
    }
    const [row] = await rows();
    assert.equal(row?.status, 'dead');
    assert.equal(row?.attempts, 3);
    assert.equal((await d.runOnce(new Date(now.getTime() + 30 * 24 * 60 * MINUTE))).claimed, 0);
    assert.equal(rx.got.length, 3);
    assert.equal(failures.length, 3);
    const logged = JSON.stringify(failures);
    assert.ok(
      !logged.includes(ep.secret) && !logged.includes('127.0.0.1') && !logged.includes('/hook'),
      logged,
    );

    // connection refused
    await sql`TRUNCATE webhook_deliveries`.execute(t.db);
    await sql`UPDATE webhook_endpoints SET enabled = false`.execute(t.db);
    const closed = new Receiver();
    await closed.start();
    const closedUrl = closed.url();
    await closed.stop();
    await endpoint(closedUrl);
    await emit(1);
    await d.runOnce(new Date());
    const [refused] = await rows();
    assert.equal(refused?.status, 'failed');
    assert.equal(refused?.last_error, 'connection refused');
    assert.equal(refused?.last_status_code, null);
  });

  it('times out a receiver that never answers, and does not follow redirects', async () => {
    await endpoint(rx.url('/slow'));
    await endpoint(rx.url('/moved'));
    await emit(1);
    rx.reply = (r) =>
      r.path === '/slow' ? 'hang' : { status: 302, headers: { location: rx.url('/elsewhere') } };
    const s = await dispatcher({ timeoutMs: 300 }).runOnce(new Date());
    assert.equal(s.failed, 2);
    const errors = (await rows()).map((r) => r.last_error).sort();
    assert.deepEqual(errors, ['HTTP 302 (redirects are not followed)', 'timed out after 300 ms']);
    assert.ok(!rx.got.some((g) => g.path === '/elsewhere'), 'the redirect was not followed');
  });

  it('survives a restart: a claim left by a dead dispatcher is sent by a new one after its lease', async () => {
    await endpoint(rx.url());
    const ids = await emit(3);
    const t0 = new Date();
    // dispatcher A claims and "crashes" before sending
    const a = dispatcher();
    assert.equal((await a.claim(t0)).length, 3);
    // B starts (a new process): the rows are leased, so it leaves them alone for now…
    const b = dispatcher();
    assert.equal((await b.runOnce(new Date(t0.getTime() + 30_000))).claimed, 0);
    assert.equal(rx.got.length, 0);
    // …and sends them once the lease has run out
    const s = await b.runOnce(new Date(t0.getTime() + a.leaseMs + 1000));
    assert.equal(s.succeeded, 3);
    assert.deepEqual(rx.got.map((g) => g.headers['billvault-event-id']).sort(), [...ids].sort());
    for (const r of await rows()) {
      assert.equal(r.status, 'succeeded');
      assert.equal(r.attempts, 2, 'the lost attempt counts');
    }
    // rows that were only pending when the process stopped are picked up by a fresh dispatcher
    await emit(2);
    assert.equal((await dispatcher().runOnce(new Date(Date.now() + 1000))).succeeded, 2);
  });

  it('two dispatchers at once never send the same delivery twice', async () => {
    await endpoint(rx.url());
    const ids = await emit(40);
    rx.reply = () => ({ status: 200 });
    const a = dispatcher({ batchSize: 7, concurrency: 3 });
    const b = dispatcher({ batchSize: 7, concurrency: 3 });
    const now = new Date(Date.now() + 1000);
    const drain = async (d: WebhookDispatcher) => {
      let total = 0;
      for (;;) {
        const s = await d.runOnce(now);
        total += s.succeeded;
        if (s.claimed === 0) return total;
      }
    };
    const [na, nb] = await Promise.all([drain(a), drain(b)]);
    assert.equal(na + nb, 40);
    assert.ok(na > 0 && nb > 0, `both dispatchers worked (${na} + ${nb})`);
    const seen = rx.got.map((g) => g.headers['billvault-event-id'] as string);
    assert.equal(seen.length, 40, 'each delivery sent exactly once');
    assert.deepEqual([...new Set(seen)].sort(), [...ids].sort());
  });

  it('checks the URL again at delivery time and connects to the address it checked (no DNS rebinding)', async () => {
    // registered in dev mode; the server now runs strict: loopback is refused, nothing is sent
    await endpoint(rx.url());
    await emit(1);
    await dispatcher({ ssrf: STRICT_POLICY }).runOnce(new Date());
    let [row] = await rows();
    assert.equal(row?.status, 'failed');
    assert.match(row?.last_error ?? '', /^refused by the SSRF guard: Only https URLs are allowed/);
    assert.equal(rx.got.length, 0);

    // a name whose resolution changes between registration and delivery: refused at delivery
    await sql`TRUNCATE webhook_deliveries`.execute(t.db);
    await sql`UPDATE webhook_endpoints SET enabled = false`.execute(t.db);
    const host = 'rebind.billvault.test';
    const answers: Record<string, string[]> = { [host]: ['127.0.0.1'] };
    const lookup: Lookup = async (h) => (answers[h] ?? []).map((address) => ({ address, family: 4 }));
    const url = `http://${host}:${rx.port}/pinned`;
    await endpoint(url, ['*'], lookup);
    await emit(1);
    // the name resolves only through the guard's lookup: a delivery that arrives proves the
    // connection went to the address the guard checked, not to a second resolution
    assert.equal((await dispatcher({ lookup }).runOnce(new Date())).succeeded, 1);
    assert.equal(rx.got[0]?.path, '/pinned');
    assert.equal(rx.got[0]?.headers.host, `${host}:${rx.port}`);
    answers[host] = ['169.254.169.254'];
    await emit(1, new Date(Date.now() + 1000));
    await dispatcher({ lookup }).runOnce(new Date(Date.now() + 2000));
    [row] = (await rows()).filter((r) => r.status !== 'succeeded');
    assert.equal(row?.status, 'failed');
    assert.match(
      row?.last_error ?? '',
      /SSRF guard: The host rebind\.billvault\.test resolves to a private, link-local or reserved address/,
    );
    assert.equal(rx.got.length, 1);
  });

  it('a disabled or deleted endpoint receives nothing; its waiting deliveries are given up', async () => {
    const ep = await endpoint(rx.url());
    await emit(2);
    await sql`UPDATE webhook_endpoints SET enabled = false WHERE id = ${ep.id}`.execute(t.db);
    const s = await dispatcher().runOnce(new Date(Date.now() + 1000));
    assert.equal(s.dead, 2);
    assert.equal(rx.got.length, 0);
    for (const r of await rows()) assert.equal(r.last_error, 'endpoint disabled or deleted');
    // and an org's events reach only endpoints enabled at the time of the event
    await emit(1);
    assert.equal((await rows()).filter((r) => r.status === 'pending').length, 0);
  });

  it('stopping lets the send in flight finish and hands the unsent claims back untouched', async () => {
    await endpoint(rx.url());
    await emit(4);
    let release: () => void = () => {};
    const firstArrived = new Promise<void>((r) => {
      release = r;
    });
    rx.reply = () => {
      release();
      return { status: 200 };
    };
    const d = dispatcher({ concurrency: 1 });
    const running = d.start(10, (e) => assert.fail(String(e)));
    await firstArrived;
    await running.stop();
    const all = await rows();
    assert.equal(rx.got.length, 1);
    assert.deepEqual(all.map((r) => r.status).sort(), ['pending', 'pending', 'pending', 'succeeded']);
    for (const r of all.filter((x) => x.status === 'pending'))
      assert.equal(r.attempts, 0, 'no attempt was made');
    // a new dispatcher sends them at once
    assert.equal((await dispatcher().runOnce(new Date(Date.now() + 1000))).succeeded, 3);
  });

  it("an org whose endpoint cannot be decrypted fails alone; other orgs' deliveries go out", async () => {
    await endpoint(rx.url('/a'));
    await emit(1);
    const other = (await createOrg(t.db, { name: 'Other key', baseCurrency: 'EUR' })).id;
    const foreign = testCipher(); // another master key: org A's key cannot be unwrapped with it
    await createWebhookEndpoint({ ...deps, cipher: foreign }, systemCtx(other), {
      url: rx.url('/b'),
      enabled_events: ['*'],
    });
    await inOrg(t.db, other, (tx) => emitEvent(tx, other, 'invoice.voided', { id: 'inv_y' }, new Date()));
    const s = await new WebhookDispatcher(t.db, foreign, { ssrf: DEV, random: () => 0.5 }).runOnce(
      new Date(Date.now() + 1000),
    );
    assert.deepEqual({ succeeded: s.succeeded, failed: s.failed }, { succeeded: 1, failed: 1 });
    assert.deepEqual(
      rx.got.map((g) => g.path),
      ['/b'],
    );
    const failed = (await rows()).find((r) => r.status === 'failed');
    assert.equal(failed?.last_error, 'could not read the endpoint (key unavailable)');
  });

  it('the application role cannot claim deliveries without the dispatcher setting (RLS)', async () => {
    await endpoint(rx.url());
    await emit(1);
    const n = await t.db.transaction().execute(async (tx) => {
      await sql`SELECT set_config('role', 'billvault_app', true)`.execute(tx);
      return sql<{ n: bigint }>`SELECT count(*) AS n FROM webhook_deliveries`.execute(tx);
    });
    assert.equal(Number(n.rows[0]?.n), 0);
    // nor read endpoints (URLs and secrets) with it
    const e = await t.db.transaction().execute(async (tx) => {
      await sql`SELECT set_config('role', 'billvault_app', true), set_config('app.webhook_dispatch', 'on', true)`.execute(
        tx,
      );
      return sql<{ n: bigint }>`SELECT count(*) AS n FROM webhook_endpoints`.execute(tx);
    });
    assert.equal(Number(e.rows[0]?.n), 0);
  });
});
