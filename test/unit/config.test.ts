import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/config.js';

function fails(env: Record<string, string>, variable: string, pattern: RegExp) {
  assert.throws(
    () => loadConfig(env),
    (e: unknown) => e instanceof ConfigError && e.variable === variable && pattern.test(e.message),
  );
}

describe('config', () => {
  it('has safe defaults', () => {
    const c = loadConfig({});
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.port, 3000);
    assert.equal(c.databaseUrl, undefined);
    assert.equal(c.session.idleMinutes, 15);
    assert.equal(c.session.absoluteHours, 12);
    assert.equal(c.publicUrl, 'http://localhost:3000');
    assert.equal(c.masterKey.source, 'file');
    assert.ok(path.isAbsolute(c.dataDir));
  });

  it('names the variable and the problem for a bad port', () => {
    fails({ PORT: 'eighty' }, 'PORT', /whole number/);
    fails({ PORT: '70000' }, 'PORT', /at most 65535/);
    fails({ PORT: '-1' }, 'PORT', /at least 0/);
  });

  it("reads the embedded server's nice value (0–19; unset leaves the server's default)", () => {
    assert.equal(loadConfig({}).embeddedNice, undefined);
    assert.equal(loadConfig({ BILLVAULT_EMBEDDED_NICE: '0' }).embeddedNice, 0);
    assert.equal(loadConfig({ BILLVAULT_EMBEDDED_NICE: '10' }).embeddedNice, 10);
    fails({ BILLVAULT_EMBEDDED_NICE: '20' }, 'BILLVAULT_EMBEDDED_NICE', /at most 19/);
    fails({ BILLVAULT_EMBEDDED_NICE: '-5' }, 'BILLVAULT_EMBEDDED_NICE', /at least 0/);
  });

  it('reads how finalisations share transactions (defaults 16 callers, 2 transactions in flight)', () => {
    assert.deepEqual(loadConfig({}).txBatch, { maxBatch: 16, maxInFlight: 2 });
    assert.deepEqual(loadConfig({ BILLVAULT_TX_BATCH_MAX: '1', BILLVAULT_TX_BATCH_IN_FLIGHT: '4' }).txBatch, {
      maxBatch: 1,
      maxInFlight: 4,
    });
    fails({ BILLVAULT_TX_BATCH_MAX: '0' }, 'BILLVAULT_TX_BATCH_MAX', /at least 1/);
    fails({ BILLVAULT_TX_BATCH_MAX: 'lots' }, 'BILLVAULT_TX_BATCH_MAX', /whole number/);
    fails({ BILLVAULT_TX_BATCH_IN_FLIGHT: '65' }, 'BILLVAULT_TX_BATCH_IN_FLIGHT', /at most 64/);
  });

  it('rejects a DATABASE_URL that is not a PostgreSQL URL, without echoing it', () => {
    fails({ DATABASE_URL: 'mysql://u:hunter2@h/db' }, 'DATABASE_URL', /postgres:\/\//);
    fails({ DATABASE_URL: 'not a url' }, 'DATABASE_URL', /postgres:\/\//);
    try {
      loadConfig({ DATABASE_URL: 'mysql://u:hunter2@h/db' });
    } catch (e) {
      assert.doesNotMatch((e as Error).message, /hunter2/);
    }
    assert.equal(
      loadConfig({ DATABASE_URL: 'postgres://u:p@db:5432/x' }).databaseUrl,
      'postgres://u:p@db:5432/x',
    );
  });

  it('validates the master key as base64 of 32 bytes', () => {
    fails({ BILLVAULT_MASTER_KEY: 'c2hvcnQ=' }, 'BILLVAULT_MASTER_KEY', /32 bytes/);
    const key = Buffer.alloc(32, 7).toString('base64');
    const c = loadConfig({ BILLVAULT_MASTER_KEY: key });
    assert.deepEqual(c.masterKey, { source: 'env', keyBase64: key });
  });

  it('reads BILLVAULT_STRIPE_WEBHOOK_SECRET, refusing a short one without echoing it', () => {
    assert.deepEqual(loadConfig({}).gatewaySecrets, {});
    const secret = 'whsec_0123456789abcdefghij';
    assert.equal(loadConfig({ BILLVAULT_STRIPE_WEBHOOK_SECRET: secret }).gatewaySecrets.stripe, secret);
    fails(
      { BILLVAULT_STRIPE_WEBHOOK_SECRET: 'whsec_short' },
      'BILLVAULT_STRIPE_WEBHOOK_SECRET',
      /^(?!.*whsec_short)/,
    );
  });

  it('needs both TLS files', () => {
    fails({ BILLVAULT_TLS_CERT: '/x.pem' }, 'BILLVAULT_TLS_KEY', /both/);
  });

  it('reads an optional JSON config file, with the environment taking precedence', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bv-cfg-'));
    const file = path.join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ PORT: 4000, BILLVAULT_SESSION_IDLE_MINUTES: 5 }));
    const c = loadConfig({ BILLVAULT_CONFIG: file, PORT: '4100' });
    assert.equal(c.port, 4100);
    assert.equal(c.session.idleMinutes, 5);
    writeFileSync(file, JSON.stringify({ PROT: 1 }));
    fails({ BILLVAULT_CONFIG: file }, 'BILLVAULT_CONFIG', /unknown setting "PROT"/);
    writeFileSync(file, '{nope');
    fails({ BILLVAULT_CONFIG: file }, 'BILLVAULT_CONFIG', /not valid JSON/);
  });
});
