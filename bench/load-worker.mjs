// A load generator on its own thread: 16 keep-alive HTTP clients driving the API while the server
// keeps the main thread's event loop to itself, as a server does when its clients are elsewhere.
// Plain JavaScript: a worker thread does not get tsx's loader. Started by `drive` (bench/http.ts);
// each client repeats its flow of requests for a while.
import http from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';

/** @param {import('./http.ts').LoadJob} job @returns {Promise<import('./http.ts').LoadResult>} */
async function run(job) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  /** @param {import('./http.ts').LoadStep} step @param {string | undefined} id @returns {Promise<{ status: number, json: Record<string, unknown> }>} */
  const send = (step, id) =>
    new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: job.port,
          method: step.method,
          path: id === undefined ? step.path : step.path.replace('{id}', id),
          agent,
          headers: {
            authorization: job.auth,
            ...(step.body
              ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(step.body) }
              : {}),
          },
        },
        (res) => {
          /** @type {Buffer[]} */
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => {
            try {
              resolve({
                status: res.statusCode ?? 0,
                json: JSON.parse(Buffer.concat(chunks).toString('utf8')),
              });
            } catch (e) {
              reject(e);
            }
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(step.body);
    });
  /** @type {number[]} */
  const latencies = [];
  /** @type {string[]} */
  const errors = [];
  const start = Date.now();
  await Promise.all(
    job.flows.map(async (flow) => {
      while (Date.now() - start < job.ms && errors.length === 0) {
        const t0 = process.hrtime.bigint();
        /** @type {string | undefined} */
        let id;
        /** @type {Record<string, unknown>} */
        let last = {};
        for (const step of flow) {
          const r = await send(step, id);
          if (r.status !== 200) {
            errors.push(`${step.method} ${step.path} → ${r.status} ${JSON.stringify(r.json).slice(0, 300)}`);
            return;
          }
          last = r.json;
          id = typeof r.json.id === 'string' ? r.json.id : undefined;
        }
        if (job.expectStatus !== undefined && last.status !== job.expectStatus) {
          errors.push(`expected status ${job.expectStatus}, got ${String(last.status)}`);
          return;
        }
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }),
  );
  agent.destroy();
  return { latencies, seconds: (Date.now() - start) / 1000, errors };
}

if (parentPort) {
  const port = parentPort;
  run(workerData).then(
    (r) => port.postMessage(r),
    (e) => port.postMessage({ latencies: [], seconds: 0, errors: [String(e)] }),
  );
}
