// `billvault serve` runs the webhook dispatcher: an event waiting in the outbox reaches a real
// receiver, signed with the endpoint's secret; a failing receiver is logged without the secret
// or the URL; SIGTERM stops the dispatcher and the server cleanly.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createFieldCipher } from '../../src/adapters/crypto/field-cipher.js';
import { LocalKeyProvider } from '../../src/adapters/crypto/key-provider.js';
import { inOrg } from '../../src/adapters/db/index.js';
import { parseAllowList } from '../../src/adapters/net/ssrf.js';
import { systemCtx } from '../../src/app/context.js';
import { createOrg } from '../../src/app/orgs.js';
import { systemClock } from '../../src/app/ports.js';
import { createWebhookEndpoint, emitEvent } from '../../src/app/webhooks.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let t: TestDatabase;
const masterKey = randomBytes(32);
const dataDir = mkdtempSync(path.join(tmpdir(), 'bv-hooks-'));
const got: { path: string; headers: http.IncomingHttpHeaders; body: string }[] = [];
const receiver = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => {
    body += c;
  });
  req.on('end', () => {
    got.push({ path: req.url ?? '', headers: req.headers, body });
    res.writeHead(req.url === '/fail' ? 500 : 200);
    res.end(req.url === '/fail' ? 'boom' : 'ok');
  });
});

function serve(env: Record<string, string>): Promise<{ child: ChildProcess; logs: () => string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/billvault.js', 'serve'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d) => (out += d));
    child.stderr?.on('data', (d) => {
      err += d;
      if (/serving on/.test(err)) resolve({ child, logs: () => out + err });
    });
    child.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${err}`)));
  });
}

async function until(cond: () => boolean, ms = 30_000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

before(async () => {
  t = await createTestDatabase();
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
});
after(async () => {
  receiver.closeAllConnections();
  await new Promise<void>((r) => receiver.close(() => r()));
  await t.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('webhooks through billvault serve', () => {
  it('delivers signed events from the outbox and logs failures without secrets', async () => {
    const port = (receiver.address() as AddressInfo).port;
    const cipher = createFieldCipher(new LocalKeyProvider([masterKey], 'BILLVAULT_MASTER_KEY'));
    const deps = { db: t.db, cipher, clock: systemClock, ssrf: { devMode: true, allow: parseAllowList('') } };
    const org = (await createOrg(t.db, { name: 'Serve hooks', baseCurrency: 'EUR' })).id;
    const ok = await createWebhookEndpoint(deps, systemCtx(org), {
      url: `http://127.0.0.1:${port}/ok`,
      enabled_events: ['invoice.paid'],
    });
    const bad = await createWebhookEndpoint(deps, systemCtx(org), {
      url: `http://127.0.0.1:${port}/fail`,
      enabled_events: ['*'],
    });
    // waiting before the server starts: the outbox is durable
    const eventId = await inOrg(t.db, org, (tx) =>
      emitEvent(tx, org, 'invoice.paid', { id: 'inv_x', object: 'invoice', total: 4200 }, new Date()),
    );
    const s = await serve({
      DATABASE_URL: t.url,
      BILLVAULT_DATA_DIR: dataDir,
      BILLVAULT_MASTER_KEY: masterKey.toString('base64'),
      BILLVAULT_DEV_MODE: '1',
      BILLVAULT_WEBHOOK_DISPATCH_INTERVAL_MS: '100',
    });
    let code: number | null = -1;
    try {
      await until(() => got.length >= 2);
      await until(() => /webhook delivery failed/.test(s.logs()));
    } finally {
      const exited = new Promise<number | null>((r) => s.child.once('exit', (c) => r(c)));
      s.child.kill('SIGTERM');
      code = await exited;
    }
    assert.equal(code, 0);
    const delivered = got.find((g) => g.path === '/ok');
    assert.ok(delivered);
    assert.equal(delivered.headers['billvault-event-id'], eventId);
    const [tPart, v1Part] = String(delivered.headers['billvault-signature']).split(',');
    const ts = tPart?.slice(2) ?? '';
    const mac = createHmac('sha256', ok.secret).update(`${ts}.${delivered.body}`).digest('hex');
    assert.equal(v1Part, `v1=${mac}`);
    const logs = s.logs();
    for (const secret of [ok.secret, bad.secret])
      assert.ok(!logs.includes(secret), 'a secret reached the logs');
    assert.ok(!logs.includes('/fail'), 'the URL reached the logs');
    assert.match(logs, /"component":"webhook-dispatcher".*"error":"HTTP 500"/);
  });
});
