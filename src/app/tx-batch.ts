import { type Db, inOrg, type Tx } from '../adapters/db/index.js';
import { inSharedOrgTransaction, type SharedTx } from '../adapters/db/shared-tx.js';
import { DomainError } from '../domain/errors.js';

/**
 * A use case's transaction in two parts, so that several callers' can share one transaction:
 * the stage reads and checks everything that can refuse the caller (and writes nothing), and
 * leaves exactly one statement to send. One statement per caller, by construction: a shared
 * transaction sends COMMIT right behind its callers' statements without waiting for their
 * answers, so it must know how many there are.
 */
export interface Staged<R, Row = unknown> {
  /**
   * Statements of a shared transaction are sent in this order (the series scope whose number the
   * statement takes): two shared transactions then take their locks in the same order, never
   * crosswise.
   */
  order: string;
  /**
   * The caller's one remaining statement, built on the stage's transaction. `last`: nothing
   * follows it in the transaction (COMMIT may go out with it).
   */
  statement(last: boolean): { execute(): Promise<Row[]> };
  /** The caller's answer from the statement's rows. */
  answer(rows: Row[]): R;
  /** Told of the statement's error before the caller gets it. */
  failed?(e: unknown): void;
}

/** Reads and checks, in the (possibly shared) transaction; returns the statement left to send. */
export type Stage<R, Row = unknown> = (tx: Tx) => Promise<Staged<R, Row>>;

/** Sends a staged caller's statement and makes its answer. */
async function send<R, Row>(staged: Staged<R, Row>, last: boolean): Promise<R> {
  let rows: Row[];
  try {
    rows = await staged.statement(last).execute();
  } catch (e) {
    staged.failed?.(e);
    throw e;
  }
  return staged.answer(rows);
}

export interface BatchingOptions {
  /** Callers at most in one shared transaction (1: every caller has a transaction of its own). */
  maxBatch: number;
  /** Transactions of one org run at once; callers beyond them wait and share the next one. */
  maxInFlight: number;
}

/** The defaults of BILLVAULT_TX_BATCH_MAX and BILLVAULT_TX_BATCH_IN_FLIGHT (src/config/config.ts). */
export const DEFAULT_BATCHING: BatchingOptions = { maxBatch: 16, maxInFlight: 2 };

interface Member {
  stage: Stage<unknown>;
  resolve(value: unknown): void;
  reject(reason: unknown): void;
}

interface OrgQueue {
  /** Transactions running. */
  running: number;
  /** Of them, those still in their stages (reading, and computing here). */
  staging: number;
  waiting: Member[];
}

type Outcome = { ok: true; value: unknown } | { ok: false; reason: unknown };

/** The shared transaction is given up: every caller runs again in a transaction of its own. */
class RunAlone extends Error {}

/**
 * COMMIT was sent but no answer came (the connection failed): the transaction may have committed,
 * so nobody runs again; every caller gets the error, as a caller alone would.
 */
class CommitUnknown extends Error {
  constructor(readonly reason: unknown) {
    super('the shared transaction’s commit went unanswered');
  }
}

/** One caller's use case in a transaction of its own (inOrg, with its retries). */
function alone<R, Row>(db: Db, orgId: string, stage: Stage<R, Row>): Promise<R> {
  return inOrg(db, orgId, async (tx) => send(await stage(tx), true));
}

/**
 * Group commit for an org's writes. Callers whose transactions would otherwise queue on the same
 * locks (an invoice series' counter) and each pay for a transaction of their own (BEGIN, scope,
 * COMMIT, a WAL flush, their round trips and wake-ups) share one: while `maxInFlight`
 * transactions of the org are running, new callers wait, and the next transaction takes up to
 * `maxBatch` of them. A caller that finds a free slot runs at once, alone, as before: batching
 * adds no wait when there is no queue.
 *
 * Each caller's outcome is its own, as if it had run alone:
 * - a stage that refuses its caller (a DomainError) refuses that caller only; the others go on —
 *   unless the transaction has written anything by then (a stage should not write, but a refusal
 *   must never be committed with the others' writes): then every caller runs alone;
 * - any other failure (a statement, a stage's database error) aborts the whole transaction, and
 *   every caller runs again alone, so that each gets its own answer and a caller whose statement
 *   failed takes nobody's work down with it — but only when nothing can have been committed: a
 *   COMMIT that went unanswered (a lost connection) fails every caller with that error, with no
 *   rerun, exactly as it would fail a caller alone;
 * - a caller's promise settles after the commit.
 * The shared transaction is all-or-nothing like any other: numbers taken in it are gap-free.
 */
export class OrgTxBatcher {
  private readonly queues = new Map<string, OrgQueue>();
  /** Counters: transactions run, shared ones, callers in shared ones, callers run alone after a shared one gave up. */
  readonly counts = { transactions: 0, shared: 0, sharedCallers: 0, reruns: 0 };

  constructor(
    private readonly db: Db,
    private readonly opts: BatchingOptions,
  ) {}

  /** Callers of each org whose use case has not yet answered. */
  private readonly unanswered = new Map<string, number>();

  /** How many callers of the org are waiting or in a transaction now. */
  callers(orgId: string): number {
    return this.unanswered.get(orgId) ?? 0;
  }

  run<R, Row>(orgId: string, stage: Stage<R, Row>): Promise<R> {
    this.unanswered.set(orgId, this.callers(orgId) + 1);
    const answered = () => {
      const n = this.callers(orgId) - 1;
      if (n > 0) this.unanswered.set(orgId, n);
      else this.unanswered.delete(orgId);
    };
    const p = this.enqueue(orgId, stage);
    p.then(answered, answered);
    return p;
  }

  private enqueue<R, Row>(orgId: string, stage: Stage<R, Row>): Promise<R> {
    if (this.opts.maxBatch <= 1) {
      this.counts.transactions++;
      return alone(this.db, orgId, stage);
    }
    let q = this.queues.get(orgId);
    if (!q) {
      q = { running: 0, staging: 0, waiting: [] };
      this.queues.set(orgId, q);
    }
    const queue = q;
    const p = new Promise<R>((resolve, reject) =>
      queue.waiting.push({
        stage: stage as Stage<unknown>,
        resolve: resolve as (v: unknown) => void,
        reject,
      }),
    );
    this.pump(orgId, queue);
    return p;
  }

  /**
   * Starts the next transaction when a slot is free and no other transaction of the org is still
   * in its stages: the stages are this process's work, the writes the database's, so one
   * transaction's stages run while the one before it writes, and the callers who arrive in the
   * meantime wait to share the next.
   */
  private pump(orgId: string, q: OrgQueue): void {
    while (q.running < Math.max(1, this.opts.maxInFlight) && q.staging === 0 && q.waiting.length) {
      const members = q.waiting.splice(0, this.opts.maxBatch);
      q.running++;
      q.staging++;
      let staged = false;
      const onStaged = () => {
        if (staged) return;
        staged = true;
        q.staging--;
        this.pump(orgId, q);
      };
      void this.execute(orgId, members, onStaged).finally(() => {
        q.running--;
        onStaged();
        if (q.running === 0 && q.waiting.length === 0) this.queues.delete(orgId);
        else this.pump(orgId, q);
      });
    }
  }

  private async execute(orgId: string, members: Member[], onStaged: () => void): Promise<void> {
    let outcomes: Outcome[] | undefined;
    this.counts.transactions++;
    if (members.length > 1) {
      this.counts.shared++;
      this.counts.sharedCallers += members.length;
      try {
        outcomes = await inSharedOrgTransaction(this.db, orgId, (shared) =>
          shareTransaction(shared, members, onStaged),
        );
      } catch (e) {
        if (e instanceof CommitUnknown) {
          for (const m of members) m.reject(e.reason);
          return;
        }
        outcomes = undefined;
      }
    }
    if (outcomes) {
      outcomes.forEach((o, i) => {
        const m = members[i] as Member;
        if (o.ok) m.resolve(o.value);
        else m.reject(o.reason);
      });
      return;
    }
    if (members.length > 1) this.counts.reruns += members.length;
    await Promise.all(
      members.map((m) =>
        alone(this.db, orgId, async (tx) => {
          const staged = await m.stage(tx);
          onStaged();
          return staged;
        }).then(m.resolve, m.reject),
      ),
    );
  }
}

/** The callers' stages, then their writes, in one transaction (see OrgTxBatcher). */
async function shareTransaction(
  shared: SharedTx,
  members: Member[],
  onStaged: () => void,
): Promise<Outcome[]> {
  const { tx } = shared;
  // (every stage's first read leaves in one write with BEGIN: see inSharedOrgTransaction)
  const staged = await Promise.allSettled(members.map((m) => m.stage(tx)));
  onStaged();
  const refused = staged.filter((s) => s.status === 'rejected');
  // A database error has aborted the transaction (every caller's statements with it).
  if (refused.some((s) => !(s.reason instanceof DomainError))) throw new RunAlone();
  // A refused caller's writes must not be committed with the others'.
  if (refused.length && (await shared.hasWritten())) throw new RunAlone();
  const ready = staged.flatMap((s, i) => (s.status === 'fulfilled' ? [{ i, staged: s.value }] : []));
  ready.sort((a, b) =>
    a.staged.order < b.staged.order ? -1 : a.staged.order > b.staged.order ? 1 : a.i - b.i,
  );
  // The writes and COMMIT leave together: the series' counter is locked from the first write to
  // the commit, inside the server, never across a round trip through this process.
  shared.together();
  const committed = shared.commitAfter(ready.length);
  const written = await Promise.allSettled(ready.map((r) => send(r.staged, false)));
  let didCommit: boolean;
  try {
    didCommit = await committed;
  } catch (e) {
    throw new CommitUnknown(e);
  }
  // Nothing was committed (a statement failed, and the server rolled back at COMMIT).
  if (!didCommit) throw new RunAlone();
  // Committed: each caller's answer is its own, whatever became of the others'.
  const outcomes: Outcome[] = staged.map((s) =>
    s.status === 'rejected' ? { ok: false, reason: s.reason } : { ok: true, value: undefined },
  );
  ready.forEach((r, k) => {
    const w = written[k] as PromiseSettledResult<unknown>;
    outcomes[r.i] = w.status === 'fulfilled' ? { ok: true, value: w.value } : { ok: false, reason: w.reason };
  });
  return outcomes;
}

const batchers = new WeakMap<Db, OrgTxBatcher>();

/** Sets how this database handle's org transactions are batched (DEFAULT_BATCHING otherwise). */
export function configureBatching(db: Db, opts: BatchingOptions): void {
  batchers.set(db, new OrgTxBatcher(db, opts));
}

/** The batcher of a database handle's org transactions (its counters tell benchmarks and tests what it did). */
export function batcherOf(db: Db): OrgTxBatcher {
  let b = batchers.get(db);
  if (!b) {
    b = new OrgTxBatcher(db, DEFAULT_BATCHING);
    batchers.set(db, b);
  }
  return b;
}

/** Runs a staged use case in an org transaction, shared with other callers' when they queue. */
export function runStaged<R, Row>(db: Db, orgId: string, stage: Stage<R, Row>): Promise<R> {
  return batcherOf(db).run(orgId, stage);
}
