import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { sql } from 'kysely';
import { webhookEndpointsCrypto } from '../adapters/crypto/encrypted-tables.js';
import { APP_ROLE, type Db, inOrg, SCOPE } from '../adapters/db/index.js';
import {
  bareHost,
  type Lookup,
  pinnedLookup,
  resolveTarget,
  SsrfError,
  type SsrfPolicy,
  STRICT_POLICY,
  systemLookup,
} from '../adapters/net/ssrf.js';
import { type Clock, type FieldCipher, systemClock } from './ports.js';
import { signatureHeader } from './webhooks.js';

/**
 * The webhook dispatcher: drains the durable outbox (webhook_deliveries).
 *
 *   1. claim: one short transaction takes due rows with FOR UPDATE SKIP LOCKED, counts the
 *      attempt, stamps a claim token and pushes next_attempt_at out by a lease; so two
 *      dispatchers never send the same row at once, and a dispatcher that dies mid-send
 *      leaves its rows to be picked up again when the lease ends;
 *   2. read each endpoint's URL and secret in its org's own transaction;
 *   3. send OUTSIDE any transaction (DESIGN.md §7), to the address the SSRF guard checked;
 *   4. record the outcome (only while the claim is still ours): succeeded, or failed with the
 *      next attempt after an exponential backoff with jitter, or dead after the last attempt.
 */

export interface DispatcherOptions {
  clock?: Clock;
  ssrf?: SsrfPolicy;
  lookup?: Lookup;
  /** Per request, connect to last byte. */
  timeoutMs?: number;
  /** Rows per claim. */
  batchSize?: number;
  /** Requests in flight at once. */
  concurrency?: number;
  /** Attempts in all before a delivery is dead. */
  maxAttempts?: number;
  /** Delay after the first failed attempt; doubles each time… */
  baseDelayMs?: number;
  /** …up to this. */
  maxDelayMs?: number;
  /** In [0, 1): jitter source (tests pin it). */
  random?: () => number;
  /** Failures worth a log line: ids, status codes and error classes only. */
  onFailure?: (info: {
    delivery: string;
    endpoint: string;
    attempt: number;
    status: string;
    error: string;
  }) => void;
}

export const DEFAULT_RETRY = {
  maxAttempts: 12,
  baseDelayMs: 2 * 60_000,
  maxDelayMs: 24 * 60 * 60_000,
} as const;

/**
 * The wait after failed attempt n (1-based): base × 2^(n−1), capped, times a jitter factor in
 * [0.8, 1.2). Pure. With the defaults: 2 m, 4 m, 8 m … 17 h, 24 h: 12 attempts over ~2.4 days.
 */
export function retryDelayMs(
  attempt: number,
  opts: { baseDelayMs: number; maxDelayMs: number } = DEFAULT_RETRY,
  random: () => number = Math.random,
): number {
  const raw = Math.min(opts.maxDelayMs, opts.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(raw * (0.8 + 0.4 * random()));
}

export interface Claimed {
  org_id: string;
  id: string;
  endpoint_id: string;
  event_id: string;
  payload: string;
  attempts: number;
  claim_token: string;
}

export interface Outcome {
  ok: boolean;
  statusCode: number | null;
  /** Sanitised: a status code or an error class, never a body, a URL or a secret. */
  error: string | null;
}

export interface RunSummary {
  claimed: number;
  succeeded: number;
  failed: number;
  dead: number;
}

const MAX_RESPONSE_BYTES = 64 * 1024;

/** A short, safe description of a network error: its class, never its message. */
export function describeError(e: unknown, timeoutMs: number): string {
  if (e instanceof SsrfError) return `refused by the SSRF guard: ${e.message}`.slice(0, 300);
  const code =
    typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : '';
  if (code === 'BV_TIMEOUT' || code === 'ETIMEDOUT') return `timed out after ${timeoutMs} ms`;
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'connection reset';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'host not found';
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return 'host unreachable';
  if (/CERT|TLS|SSL|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code)) return `TLS error (${code.slice(0, 60)})`;
  if (/^[A-Z0-9_]{2,60}$/.test(code)) return `network error (${code})`;
  return 'network error';
}

/** One POST, to the checked address, no redirects, a hard deadline, the body read and dropped. */
function post(
  target: Awaited<ReturnType<typeof resolveTarget>>,
  headers: Record<string, string>,
  body: string,
  timeoutMs: number,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const { url } = target;
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request({
      method: 'POST',
      protocol: url.protocol,
      hostname: bareHost(url),
      port: url.port || undefined,
      path: `${url.pathname}${url.search}`,
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      lookup: pinnedLookup(target) as never,
      agent: false,
    });
    const deadline = setTimeout(() => {
      req.destroy(Object.assign(new Error('timeout'), { code: 'BV_TIMEOUT' }));
    }, timeoutMs);
    req.on('error', (e) => {
      clearTimeout(deadline);
      reject(e);
    });
    req.on('response', (res) => {
      let seen = 0;
      const done = () => {
        clearTimeout(deadline);
        resolve(res.statusCode ?? 0);
      };
      res.on('data', (chunk: Buffer) => {
        seen += chunk.length;
        if (seen > MAX_RESPONSE_BYTES) {
          res.destroy();
          done();
        }
      });
      res.on('end', done);
      res.on('error', done);
    });
    req.end(body);
  });
}

export class WebhookDispatcher {
  private readonly clock: Clock;
  private readonly timeoutMs: number;
  /** How long a claim holds a row: every send of a full batch fits in it, with a minute to spare. */
  readonly leaseMs: number;
  /** Set by stop(): a pass in flight finishes its sends but starts no new one. */
  private stopping = false;
  private readonly batchSize: number;
  private readonly concurrency: number;
  private readonly retry: { maxAttempts: number; baseDelayMs: number; maxDelayMs: number };
  private readonly random: () => number;

  constructor(
    private readonly db: Db,
    private readonly cipher: FieldCipher,
    private readonly opts: DispatcherOptions = {},
  ) {
    this.clock = opts.clock ?? systemClock;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.batchSize = opts.batchSize ?? 50;
    this.concurrency = opts.concurrency ?? 8;
    this.leaseMs = Math.ceil(this.batchSize / this.concurrency) * this.timeoutMs + 60_000;
    this.retry = {
      maxAttempts: opts.maxAttempts ?? DEFAULT_RETRY.maxAttempts,
      baseDelayMs: opts.baseDelayMs ?? DEFAULT_RETRY.baseDelayMs,
      maxDelayMs: opts.maxDelayMs ?? DEFAULT_RETRY.maxDelayMs,
    };
    this.random = opts.random ?? Math.random;
  }

  /** Claims up to one batch of due deliveries across orgs, in one short transaction. */
  async claim(now: Date): Promise<Claimed[]> {
    const token = randomBytes(16).toString('hex');
    const lease = new Date(now.getTime() + this.leaseMs);
    return this.db.transaction().execute(async (tx) => {
      await sql`${SCOPE} SELECT set_config('role', ${APP_ROLE}, true), set_config('app.webhook_dispatch', 'on', true)`.execute(
        tx,
      );
      const r = await sql<Claimed>`
        UPDATE webhook_deliveries d
        SET attempts = d.attempts + 1, claim_token = ${token}, next_attempt_at = ${lease},
            last_attempt_at = ${now}, updated_at = ${now}
        FROM (SELECT org_id, id FROM webhook_deliveries
              WHERE status IN ('pending', 'failed') AND next_attempt_at <= ${now}
              ORDER BY next_attempt_at
              LIMIT ${this.batchSize}
              FOR UPDATE SKIP LOCKED) due
        WHERE d.org_id = due.org_id AND d.id = due.id
        RETURNING d.org_id, d.id, d.endpoint_id, d.event_id, d.payload, d.attempts, d.claim_token`.execute(
        tx,
      );
      return r.rows;
    });
  }

  /** One pass: claim, send, record. Returns what happened (for tests, benchmarks and logs). */
  async runOnce(now: Date = this.clock.now()): Promise<RunSummary> {
    const summary: RunSummary = { claimed: 0, succeeded: 0, failed: 0, dead: 0 };
    const claimed = await this.claim(now);
    summary.claimed = claimed.length;
    if (claimed.length === 0) return summary;
    const byOrg = new Map<string, Claimed[]>();
    for (const c of claimed) byOrg.set(c.org_id, [...(byOrg.get(c.org_id) ?? []), c]);

    const results: { row: Claimed; outcome: Outcome; giveUp: boolean }[] = [];
    const jobs: { row: Claimed; run: () => Promise<void> }[] = [];
    for (const [orgId, rows] of byOrg) {
      let endpoints: Map<string, { url: string; secret: string }> | undefined;
      try {
        endpoints = await this.endpoints(orgId, [...new Set(rows.map((r) => r.endpoint_id))]);
      } catch {
        // e.g. the org's key is unavailable: these rows fail (and retry later); other orgs go on
        endpoints = undefined;
      }
      for (const row of rows) {
        jobs.push({
          row,
          run: async () => {
            if (!endpoints) {
              const error = 'could not read the endpoint (key unavailable)';
              results.push({ row, outcome: { ok: false, statusCode: null, error }, giveUp: false });
              return;
            }
            const ep = endpoints.get(row.endpoint_id);
            const outcome: Outcome = ep
              ? await this.send(row, ep.url, ep.secret, now)
              : { ok: false, statusCode: null, error: 'endpoint disabled or deleted' };
            results.push({ row, outcome, giveUp: !ep });
          },
        });
      }
    }
    let next = 0;
    const unsent: Claimed[] = [];
    const worker = async () => {
      while (next < jobs.length) {
        const job = jobs[next++];
        if (!job) continue;
        // stopping: start nothing new; the claim is handed back untouched below
        if (this.stopping) unsent.push(job.row);
        else await job.run();
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, jobs.length) }, worker));
    if (unsent.length > 0) await this.release(unsent, now);
    // One short transaction per org records every outcome of the pass.
    for (const orgId of byOrg.keys()) {
      const mine = results.filter((r) => r.row.org_id === orgId);
      const recorded = await this.record(orgId, mine, now);
      for (const { row, outcome } of mine) {
        const status = recorded.get(row.id);
        if (status === 'succeeded') summary.succeeded++;
        else if (status === 'failed') summary.failed++;
        else if (status === 'dead') summary.dead++;
        if (status && status !== 'succeeded') {
          this.opts.onFailure?.({
            delivery: row.id,
            endpoint: row.endpoint_id,
            attempt: row.attempts,
            status,
            error: outcome.error ?? '',
          });
        }
      }
    }
    return summary;
  }

  /** The live, enabled endpoints among ids, with their URL and secret in clear (in memory only). */
  private async endpoints(
    orgId: string,
    ids: string[],
  ): Promise<Map<string, { url: string; secret: string }>> {
    return inOrg(this.db, orgId, async (tx) => {
      const rows = await tx
        .selectFrom('webhook_endpoints')
        .select(['id', 'url_enc', 'secret_enc'])
        .where('id', 'in', ids)
        .where('enabled', '=', true)
        .where('deleted_at', 'is', null)
        .execute();
      const out = new Map<string, { url: string; secret: string }>();
      for (const r of rows) {
        const plain = await webhookEndpointsCrypto.open(this.cipher, tx, { orgId }, r.id, r);
        if (plain.url && plain.secret) out.set(r.id, { url: plain.url, secret: plain.secret });
      }
      return out;
    });
  }

  /** A slow resolver counts against the same timeout as the request. */
  private withDeadline<T>(p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(Object.assign(new Error('timeout'), { code: 'BV_TIMEOUT' })),
        this.timeoutMs,
      );
    });
    return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
  }

  /** Hands claimed rows back as they were (no attempt made): due again at once, for any dispatcher. */
  private async release(rows: Claimed[], now: Date): Promise<void> {
    for (const orgId of new Set(rows.map((r) => r.org_id))) {
      const mine = rows.filter((r) => r.org_id === orgId);
      await inOrg(this.db, orgId, (tx) =>
        sql`UPDATE webhook_deliveries d
            SET attempts = d.attempts - 1, claim_token = NULL, next_attempt_at = ${now}, updated_at = ${now}
            FROM unnest(${mine.map((r) => r.id)}::text[], ${mine.map((r) => r.claim_token)}::text[]) AS v(id, token)
            WHERE d.org_id = ${orgId} AND d.id = v.id AND d.claim_token = v.token AND d.attempts > 0`.execute(
          tx,
        ),
      );
    }
  }

  /** Checks the URL again (DNS may have changed), signs and sends. Never throws. */
  async send(
    row: Pick<Claimed, 'id' | 'event_id' | 'payload'>,
    url: string,
    secret: string,
    now: Date,
  ): Promise<Outcome> {
    try {
      const target = await this.withDeadline(
        resolveTarget(url, this.opts.ssrf ?? STRICT_POLICY, this.opts.lookup ?? systemLookup),
      );
      const t = Math.floor(now.getTime() / 1000);
      const code = await post(
        target,
        {
          'content-type': 'application/json',
          'user-agent': 'Billvault-Webhooks/1',
          'billvault-event-id': row.event_id,
          'billvault-delivery-id': row.id,
          'billvault-signature': signatureHeader(secret, t, row.payload),
        },
        row.payload,
        this.timeoutMs,
      );
      if (code >= 200 && code < 300) return { ok: true, statusCode: code, error: null };
      const valid = code >= 100 && code <= 599 ? code : null;
      return {
        ok: false,
        statusCode: valid,
        error: code >= 300 && code < 400 ? `HTTP ${code} (redirects are not followed)` : `HTTP ${code}`,
      };
    } catch (e) {
      return { ok: false, statusCode: null, error: describeError(e, this.timeoutMs) };
    }
  }

  /**
   * Writes the outcomes of one org's deliveries in one statement, each only while its claim
   * is still ours; returns the new status of every row written (a lost claim is left out).
   */
  private async record(
    orgId: string,
    results: { row: Claimed; outcome: Outcome; giveUp: boolean }[],
    now: Date,
  ): Promise<Map<string, 'succeeded' | 'failed' | 'dead'>> {
    const cols = {
      id: [] as string[],
      token: [] as string[],
      status: [] as string[],
      next: [] as string[],
      code: [] as (number | null)[],
      error: [] as (string | null)[],
    };
    for (const { row, outcome, giveUp } of results) {
      const status = outcome.ok
        ? 'succeeded'
        : giveUp || row.attempts >= this.retry.maxAttempts
          ? 'dead'
          : 'failed';
      const next =
        status === 'failed'
          ? now.getTime() + retryDelayMs(row.attempts, this.retry, this.random)
          : now.getTime();
      cols.id.push(row.id);
      cols.token.push(row.claim_token);
      cols.status.push(status);
      cols.next.push(new Date(next).toISOString());
      cols.code.push(outcome.statusCode);
      cols.error.push(outcome.error?.slice(0, 300) ?? null);
    }
    if (cols.id.length === 0) return new Map();
    const r = await inOrg(this.db, orgId, (tx) =>
      sql<{ id: string; status: 'succeeded' | 'failed' | 'dead' }>`
        UPDATE webhook_deliveries d
        SET status = v.status, next_attempt_at = v.next, claim_token = NULL, last_status_code = v.code,
            last_error = v.error, delivered_at = CASE WHEN v.status = 'succeeded' THEN ${now}::timestamptz ELSE d.delivered_at END,
            updated_at = ${now}
        FROM unnest(${cols.id}::text[], ${cols.token}::text[], ${cols.status}::text[], ${cols.next}::timestamptz[],
                    ${cols.code}::int[], ${cols.error}::text[]) AS v(id, token, status, next, code, error)
        WHERE d.org_id = ${orgId} AND d.id = v.id AND d.claim_token = v.token
        RETURNING d.id, d.status`.execute(tx),
    );
    return new Map(r.rows.map((x) => [x.id, x.status]));
  }

  /** Runs a pass every intervalMs until stopped; stop() waits for the pass in flight. */
  start(intervalMs: number, onError: (e: unknown) => void): { stop(): Promise<void> } {
    let stopped = false;
    this.stopping = false;
    let timer: NodeJS.Timeout | undefined;
    let running: Promise<void> = Promise.resolve();
    const tick = () => {
      running = (async () => {
        try {
          // drain: keep claiming while full batches come back
          for (;;) {
            const s = await this.runOnce();
            if (stopped || s.claimed < this.batchSize) break;
          }
        } catch (e) {
          onError(e);
        }
      })().finally(() => {
        if (!stopped) timer = setTimeout(tick, intervalMs);
      });
    };
    timer = setTimeout(tick, intervalMs);
    return {
      stop: async () => {
        stopped = true;
        this.stopping = true;
        if (timer) clearTimeout(timer);
        await running;
      },
    };
  }
}
