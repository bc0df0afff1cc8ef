import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { sql } from 'kysely';
import { connect } from '../../src/adapters/db/index.js';
import { createLogger } from '../../src/adapters/log/logger.js';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import { checkTransport, type RunningServer, startServer } from '../../src/main/server.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let t: TestDatabase;
let dir: string;
let certPath: string;
let keyPath: string;

before(async () => {
  t = await createTestDatabase();
  dir = mkdtempSync(path.join(tmpdir(), 'bv-tls-'));
  certPath = path.join(dir, 'cert.pem');
  keyPath = path.join(dir, 'key.pem');
  // A throwaway self-signed certificate for 127.0.0.1 and localhost.
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyPath,
      '-out',
      certPath,
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    { stdio: 'ignore' },
  );
});
after(async () => {
  await t.drop();
  rmSync(dir, { recursive: true, force: true });
});

async function serve(env: Record<string, string>): Promise<RunningServer> {
  const config = loadConfig({ HOST: '127.0.0.1', PORT: '0', BILLVAULT_LOG_LEVEL: 'silent', ...env });
  return startServer({
    config,
    logger: createLogger('silent'),
    database: {
      db: t.db,
      pool: t.pool,
      kind: 'external',
      url: t.url,
      describe: 'test',
      close: async () => {},
    },
    applied: [],
    close: async () => {},
  });
}

function get(
  url: string,
  opts: https.RequestOptions = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; protocol: string | null }> {
  return new Promise((resolve, reject) => {
    const client = url.startsWith('https') ? https : http;
    const req = client.get(url, opts, (res) => {
      const protocol = (res.socket as TLSSocket).getProtocol?.() ?? null;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, protocol }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
  });
}

describe('HTTPS', () => {
  it('serves HTTPS (TLS 1.2+) with HSTS for one year when given a certificate and key', async () => {
    const server = await serve({ BILLVAULT_TLS_CERT: certPath, BILLVAULT_TLS_KEY: keyPath });
    try {
      assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      const ca = readFileSync(certPath);
      const res = await get(`${server.url}/healthz`, { ca });
      assert.equal(res.status, 200);
      assert.equal(res.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains');
      assert.ok(res.protocol === 'TLSv1.2' || res.protocol === 'TLSv1.3', `negotiated ${res.protocol}`);
      // TLS 1.1 and older are refused.
      await assert.rejects(
        get(`${server.url}/healthz`, {
          ca,
          minVersion: 'TLSv1',
          maxVersion: 'TLSv1.1',
          ciphers: 'DEFAULT@SECLEVEL=0',
        }),
      );
      // The certificate is checked by clients: an unknown CA is refused.
      await assert.rejects(get(`${server.url}/healthz`), /self-signed|certificate/i);
      // Plain HTTP on the TLS port gets no application response.
      const plain = await get(server.url.replace('https', 'http')).catch(() => ({ status: 0, headers: {} }));
      assert.notEqual(plain.status, 200);
    } finally {
      await server.close();
    }
  });

  it('plain HTTP on loopback sends no HSTS; behind a TLS proxy it does', async () => {
    const plain = await serve({});
    try {
      const res = await get(`${plain.url}/healthz`);
      assert.equal(res.status, 200);
      assert.equal(res.headers['strict-transport-security'], undefined);
    } finally {
      await plain.close();
    }
    const proxied = await serve({ BILLVAULT_BEHIND_TLS_PROXY: 'true' });
    try {
      const res = await get(`${proxied.url}/healthz`);
      assert.equal(res.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains');
    } finally {
      await proxied.close();
    }
  });

  it('refuses a non-loopback listener without TLS unless told a TLS proxy is in front', async () => {
    for (const host of ['0.0.0.0', '::', '192.168.1.10', 'billing.example.com']) {
      assert.throws(() => checkTransport({ host, tls: undefined, behindTlsProxy: false }), ConfigError, host);
      checkTransport({ host, tls: undefined, behindTlsProxy: true });
      checkTransport({ host, tls: { certPath, keyPath }, behindTlsProxy: false });
    }
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost'])
      checkTransport({ host, tls: undefined, behindTlsProxy: false });
    await assert.rejects(serve({ HOST: '0.0.0.0' }), /refusing to listen on 0\.0\.0\.0 without TLS/);
  });

  it('needs both a certificate and a key', () => {
    assert.throws(() => loadConfig({ BILLVAULT_TLS_CERT: certPath }), /BILLVAULT_TLS_KEY/);
  });
});

describe('PostgreSQL sslmode', () => {
  it('honours sslmode in the connection URL: never silently falls back to plaintext', async () => {
    const base = new URL(t.url);
    const disabled = new URL(base);
    disabled.searchParams.set('sslmode', 'disable');
    const d = connect(disabled.toString(), 1);
    try {
      const r = await sql<{
        ssl: boolean;
      }>`SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false) AS ssl`.execute(
        d.db,
      );
      assert.equal(r.rows[0]?.ssl, false);
    } finally {
      await d.db.destroy();
    }
    const required = new URL(base);
    required.searchParams.set('sslmode', 'require');
    const q = connect(required.toString(), 1);
    try {
      // Either the connection is encrypted, or it fails: it must not succeed in clear.
      const outcome = await sql<{
        ssl: boolean;
      }>`SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false) AS ssl`
        .execute(q.db)
        .then(
          (r) => ({ ok: true as const, ssl: r.rows[0]?.ssl }),
          (e: Error) => ({ ok: false as const, error: e.message }),
        );
      if (outcome.ok) assert.equal(outcome.ssl, true);
      else assert.match(outcome.error, /ssl|certificate|self.signed/i);
    } finally {
      await q.db.destroy();
    }
  });
});
