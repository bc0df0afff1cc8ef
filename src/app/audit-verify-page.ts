import * as nodeCrypto from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { canonicalJson } from './audit.js';

/**
 * One page of `verifyChain`'s work: recompute every content hash and chain hash of a run of
 * chain rows and check their links, exactly as the sequential loop did, so pages can be
 * checked side by side in worker threads while the next page is read.
 *
 * The page arrives as one string built by the database (see verifyRow in audit-chain.ts):
 * rows separated by \x1e, fields by \x1f, NULL written as \x02; the prev hash, org and event
 * content hash as "=" (same as the reference: the previous row's chain hash, the chain's org,
 * the chain row's content hash), "N" (null) or "!" + the value. A row whose free text holds a
 * separator or the null mark comes as \x01 + a JSON array of the raw values instead, so no
 * value can shift a field.
 */

export const SEP_ROW = '\x1e';
export const SEP_FIELD = '\x1f';
export const NUL = '\x02';
export const SAME = '=';
export const JSON_ROW = '\x01';

export interface PageTask {
  chainId: string;
  /** The org of the chain (null for the platform chain). */
  orgId: string | null;
  text: string;
  /** Checkpoint hashes expected at seqs within this page. */
  expect: [number, { hash: string; source: string }[]][];
}

export interface PageProblem {
  seq: number | null;
  kind: string;
  message: string;
  event_id?: string;
}

export interface PageResult {
  rows: number;
  /**
   * The first row's seq and own prev hash: whoever puts the pages together checks them against
   * the previous page's last row (the gap and link checks of that row are left to it).
   */
  firstSeq: number;
  firstPrevHash: string;
  /** Where the first row's link problem belongs in `problems` (after its event problem, if any). */
  firstLinkAt: number;
  lastSeq: number;
  lastHash: string;
  problems: PageProblem[];
}

/**
 * Puts checked pages together in order: the gap and link checks of each page's first row
 * against the previous page's last row, in the place the sequential loop would report them.
 */
export function stitchPages(results: PageResult[], genesis: string) {
  const problems: PageProblem[] = [];
  let expected = 1;
  let prev = genesis;
  let rows = 0;
  for (const r of results) {
    if (r.rows === 0) continue;
    const own = [...r.problems];
    let at = r.firstLinkAt;
    if (r.firstSeq !== expected) {
      own.unshift({
        seq: expected,
        kind: 'gap',
        message:
          r.firstSeq > expected
            ? `seq ${expected}${r.firstSeq - 1 > expected ? `..${r.firstSeq - 1}` : ''} missing from the chain`
            : `seq ${r.firstSeq} out of order`,
      });
      at++;
    }
    if (r.firstPrevHash !== prev)
      own.splice(at, 0, {
        seq: r.firstSeq,
        kind: 'link_broken',
        message: `seq ${r.firstSeq} does not link to the chain hash of seq ${r.firstSeq - 1}`,
      });
    problems.push(...own);
    rows += r.rows;
    expected = r.lastSeq + 1;
    prev = r.lastHash;
  }
  return { problems, rows, lastSeq: expected - 1, lastHash: prev };
}

type Sha = (s: string) => string;
const oneShot = (nodeCrypto as unknown as { hash?: (alg: string, data: string, enc: 'hex') => string }).hash;
/** SHA-256 hex: the one-shot crypto.hash where the runtime has it (Node ≥ 20.12), else createHash. */
const sha256: Sha = oneShot
  ? (s) => oneShot('sha256', s, 'hex')
  : (s) => nodeCrypto.createHash('sha256').update(s).digest('hex');

/** Occurred-at from epoch microseconds, as the content hash encodes it (UTC, six fraction digits). */
function isoFromMicros(us: number): string {
  const ms = Math.floor(us / 1000);
  const micro = us - ms * 1000;
  return `${new Date(ms).toISOString().slice(0, -1)}${String(micro).padStart(3, '0')}Z`;
}

interface Row {
  seq: number;
  eventId: string;
  cContent: string;
  /** null: equal to the previous row's chain hash. */
  prevHash: string | null;
  chainHash: string;
  present: boolean;
  /** undefined: the chain's org. */
  orgId: string | null | undefined;
  occurredAt: string | null;
  f: (string | null)[];
  details: string | null;
  /** undefined: equal to cContent. */
  eContent: string | null | undefined;
}

const FORGED: Row = {
  seq: 0,
  eventId: '',
  cContent: '',
  prevHash: '',
  chainHash: '',
  present: true,
  orgId: undefined,
  occurredAt: null,
  f: [],
  details: null,
  eContent: undefined,
};

const MARKED = /^(=$|!)/;
const MARKED_NULL = /^(=$|N$|!)/;
/** "=": the reference value (undefined), "N": null, "!" + value: that value. */
const marked = (s: string): string | null | undefined =>
  s === SAME ? undefined : s === 'N' ? null : s.slice(1);

const val = (s: string | undefined): string | null => (s === undefined || s === NUL ? null : s);

function parseRow(line: string): Row {
  if (line.startsWith(JSON_ROW)) {
    const a = JSON.parse(line.slice(1)) as (string | number | boolean | null)[];
    const str = (i: number) => (a[i] === null || a[i] === undefined ? null : String(a[i]));
    const us = a[7] === null ? null : Number(a[7]);
    return {
      seq: Number(a[0]),
      eventId: String(a[1]),
      cContent: String(a[2]),
      prevHash: String(a[3]),
      chainHash: String(a[4]),
      present: a[5] === true,
      orgId: str(6),
      occurredAt: us === null ? null : isoFromMicros(us),
      f: [8, 9, 10, 11, 12, 13, 14, 15, 16, 17].map(str),
      details: a[18] === null ? null : JSON.stringify(a[18]),
      eContent: str(19),
    };
  }
  const p = line.split(SEP_FIELD);
  // Constrained columns (ids, hashes, action, outcome) never hold a separator; one that does
  // was forged: its row cannot be read field by field, and is reported as changed.
  const prevMark = p[3] ?? '';
  const orgMark = p[6] ?? '';
  const contentMark = p[19] ?? '';
  if (
    p.length !== 20 ||
    !MARKED.test(prevMark) ||
    !MARKED_NULL.test(orgMark) ||
    !MARKED_NULL.test(contentMark)
  )
    return { ...FORGED, seq: Number(p[0]), eventId: p[1] ?? '' };
  const us = val(p[7]);
  return {
    seq: Number(p[0]),
    eventId: p[1] ?? '',
    cContent: p[2] ?? '',
    prevHash: prevMark === SAME ? null : prevMark.slice(1),
    chainHash: p[4] ?? '',
    present: p[5] === '1',
    orgId: marked(orgMark),
    occurredAt: us === null ? null : isoFromMicros(Number(us)),
    f: [
      val(p[8]),
      val(p[9]),
      val(p[10]),
      val(p[11]),
      val(p[12]),
      val(p[13]),
      val(p[14]),
      val(p[15]),
      val(p[16]),
      val(p[17]),
    ],
    details: val(p[18]),
    eContent: marked(contentMark),
  };
}

/** The content hash of an event row (auditContentHash over the same canonical encoding). */
function contentHash(r: Row, orgId: string | null): string {
  const [actorType, actorId, sessionId, action, targetType, targetId, outcome, requestId, ip, userAgent] =
    r.f;
  const head = JSON.stringify([
    'billvault/audit-event/v1',
    r.eventId,
    orgId,
    r.occurredAt,
    actorType,
    actorId,
    sessionId,
    action,
    targetType,
    targetId,
    outcome,
    requestId,
    ip,
    userAgent,
  ]);
  const details = r.details === null ? null : (JSON.parse(r.details) as unknown);
  return sha256(`${head.slice(0, -1)},${canonicalJson(details)}]`);
}

/** Checks one page; the same checks, in the same order, as the sequential loop of verifyChain. */
export function checkPage(task: PageTask): PageResult {
  const { chainId } = task;
  const expect = new Map(task.expect);
  const problems: PageProblem[] = [];
  const report = (p: PageProblem) => {
    problems.push(p);
  };
  let expected = 0;
  let prev = '';
  let rows = 0;
  let lastSeq = 0;
  let firstSeq = 0;
  let firstPrevHash = '';
  let firstLinkAt = 0;
  if (task.text.length > 0) {
    for (const line of task.text.split(SEP_ROW)) {
      const r = parseRow(line);
      const seq = r.seq;
      rows++;
      const first = rows === 1;
      if (first) {
        // The previous page's last row is not known here: take this row's own prev hash.
        firstSeq = seq;
        firstPrevHash = r.prevHash ?? '';
        expected = seq;
        prev = firstPrevHash;
      }
      if (seq !== expected) {
        report({
          seq: expected,
          kind: 'gap',
          message:
            seq > expected
              ? `seq ${expected}${seq - 1 > expected ? `..${seq - 1}` : ''} missing from the chain`
              : `seq ${seq} out of order`,
        });
      }
      // The row's own prev_hash (sent only when it differs from the previous row's chain hash).
      const prevHash = r.prevHash ?? prev;
      const orgId = r.orgId === undefined ? task.orgId : r.orgId;
      if (!r.present) {
        report({
          seq,
          kind: 'event_missing',
          message: `the event sealed at seq ${seq} is missing`,
          event_id: r.eventId,
        });
      } else if ((orgId ?? 'platform') !== chainId) {
        report({
          seq,
          kind: 'wrong_chain',
          message: `the event at seq ${seq} belongs to another chain`,
          event_id: r.eventId,
        });
      } else {
        const content = contentHash(r, orgId);
        const eContent = r.eContent === undefined ? r.cContent : r.eContent;
        if (content !== r.cContent || (eContent !== null && eContent !== content)) {
          report({
            seq,
            kind: 'content_changed',
            message: `the event at seq ${seq} was changed after it was written`,
            event_id: r.eventId,
          });
        }
      }
      if (first) firstLinkAt = problems.length;
      if (prevHash !== prev) {
        report({
          seq,
          kind: 'link_broken',
          message: `seq ${seq} does not link to the chain hash of seq ${seq - 1}`,
        });
      }
      const hash = sha256(
        `billvault/audit-chain/v1|${chainId}|${seq}|${r.eventId}|${r.cContent}|${prevHash}`,
      );
      if (hash !== r.chainHash) {
        report({
          seq,
          kind: 'chain_hash_mismatch',
          message: `the chain hash at seq ${seq} does not match its contents`,
        });
      }
      for (const cp of expect.get(seq) ?? []) {
        if (cp.hash !== hash)
          report({
            seq,
            kind: 'checkpoint_mismatch',
            message: `the chain at seq ${seq} differs from the ${cp.source}`,
          });
      }
      prev = r.chainHash;
      expected = seq + 1;
      lastSeq = seq;
    }
  }
  return { rows, firstSeq, firstPrevHash, firstLinkAt, lastSeq, lastHash: prev, problems };
}

/** Worker entry: answers page tasks on the parent port. */
export function serveWorker(): void {
  parentPort?.on('message', (msg: { id: number; task: PageTask }) => {
    try {
      parentPort?.postMessage({ id: msg.id, result: checkPage(msg.task) });
    } catch (e) {
      parentPort?.postMessage({ id: msg.id, error: (e as Error).message });
    }
  });
}
