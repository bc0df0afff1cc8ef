// A load generator on its own thread: 16 keep-alive HTTP clients driving the API while the server
// keeps the main thread's event loop to itself, as a server does when its clients are elsewhere.
// Plain JavaScript: a worker thread does not get tsx's loader. Started by `drive` (bench/http.ts);
// each client repeats its flow of requests for a while.
//
// Like autocannon, each client is one raw keep-alive socket writing pre-built HTTP/1.1 requests
// and reading the answers itself: the generator shares the machine's two cores with the server and
// the database, and node:http's client (agent, streams, parser objects per request) cost it about
// three times the CPU, which the server then did not have.
import net from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';

const CRLF2 = Buffer.from('\r\n\r\n');

/**
 * One HTTP/1.1 connection answering requests in order. Responses must carry Content-Length (the
 * API's JSON answers do); anything else is reported as an error rather than guessed at.
 */
function connection(port) {
  const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
  /** @type {{ resolve: (r: { status: number, body: Buffer }) => void, reject: (e: Error) => void }[]} */
  const waiting = [];
  let buf = Buffer.alloc(0);
  const fail = (e) => {
    for (const w of waiting.splice(0)) w.reject(e);
  };
  socket.on('error', fail);
  socket.on('close', () => fail(new Error('connection closed by the server')));
  socket.on('data', (chunk) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    for (;;) {
      const end = buf.indexOf(CRLF2);
      if (end < 0) return;
      const head = buf.toString('latin1', 0, end);
      const status = Number(head.slice(9, 12));
      const m = /\r\ncontent-length: *(\d+)/i.exec(head);
      if (!m) {
        fail(new Error(`response without Content-Length: ${head.split('\r\n')[0]}`));
        socket.destroy();
        return;
      }
      const total = end + 4 + Number(m[1]);
      if (buf.length < total) return;
      const body = buf.subarray(end + 4, total);
      buf = buf.length === total ? Buffer.alloc(0) : buf.subarray(total);
      waiting.shift()?.resolve({ status, body });
    }
  });
  return {
    /** @param {Buffer} request */
    send(request) {
      return new Promise((resolve, reject) => {
        waiting.push({ resolve, reject });
        socket.write(request);
      });
    },
    close: () => socket.destroy(),
  };
}

/** @param {import('./http.ts').LoadStep} step @param {string} auth @param {string | undefined} id */
function request(step, auth, id) {
  const body = step.body ? Buffer.from(step.body) : undefined;
  const path = id === undefined ? step.path : step.path.replace('{id}', id);
  const head =
    `${step.method} ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: ${auth}\r\n` +
    (body ? `content-type: application/json\r\ncontent-length: ${body.length}\r\n` : '') +
    '\r\n';
  return body ? Buffer.concat([Buffer.from(head), body]) : Buffer.from(head);
}

/** @param {import('./http.ts').LoadJob} job @returns {Promise<import('./http.ts').LoadResult>} */
async function run(job) {
  /** @type {number[]} */
  const latencies = [];
  /** @type {string[]} */
  const errors = [];
  const start = Date.now();
  const clients = job.flows.map(() => connection(job.port));
  await Promise.all(
    job.flows.map(async (flow, c) => {
      const conn = clients[c];
      // requests whose path does not depend on an earlier answer are built once
      const fixed = flow.map((step) => (step.path.includes('{id}') ? undefined : request(step, job.auth)));
      while (Date.now() - start < job.ms && errors.length === 0) {
        const t0 = process.hrtime.bigint();
        /** @type {string | undefined} */
        let id;
        /** @type {Record<string, unknown>} */
        let last = {};
        for (let i = 0; i < flow.length; i++) {
          const step = flow[i];
          const r = await conn.send(fixed[i] ?? request(step, job.auth, id));
          const json = JSON.parse(r.body.toString('utf8'));
          if (r.status !== 200) {
            errors.push(`${step.method} ${step.path} → ${r.status} ${JSON.stringify(json).slice(0, 300)}`);
            return;
          }
          last = json;
          id = typeof json.id === 'string' ? json.id : undefined;
        }
        if (job.expectStatus !== undefined && last.status !== job.expectStatus) {
          errors.push(`expected status ${job.expectStatus}, got ${String(last.status)}`);
          return;
        }
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }),
  ).finally(() => {
    for (const c of clients) c.close();
  });
  return { latencies, seconds: (Date.now() - start) / 1000, errors };
}

if (parentPort) {
  const port = parentPort;
  run(workerData).then(
    (r) => port.postMessage(r),
    (e) => port.postMessage({ latencies: [], seconds: 0, errors: [String(e)] }),
  );
}
