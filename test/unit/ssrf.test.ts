import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkUrlShape,
  embeddedIpv4,
  forbiddenAddress,
  type Lookup,
  parseAllowList,
  resolveTarget,
  SsrfError,
  type SsrfPolicy,
  STRICT_POLICY,
} from '../../src/adapters/net/ssrf.js';
import { retryDelayMs } from '../../src/app/webhook-dispatcher.js';
import { ConfigError, loadConfig } from '../../src/config/config.js';

const DEV: SsrfPolicy = { devMode: true, allow: parseAllowList('') };
const fakeDns =
  (table: Record<string, string[]>): Lookup =>
  async (host) => {
    const a = table[host];
    if (!a) throw Object.assign(new Error('nx'), { code: 'ENOTFOUND' });
    return a.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof SsrfError, String(e));
    return e.reason;
  }
  assert.fail('expected a refusal');
}

describe('SSRF guard: addresses', () => {
  const forbidden = [
    '10.0.0.1',
    '10.255.255.255',
    '172.16.0.1',
    '172.31.255.254',
    '192.168.1.1',
    '100.64.0.1',
    '100.127.255.255',
    '169.254.169.254', // cloud metadata
    '169.254.0.1',
    '0.0.0.0',
    '0.1.2.3',
    '127.0.0.1',
    '127.1.2.3',
    '224.0.0.1',
    '239.255.255.250',
    '255.255.255.255',
    '240.0.0.1',
    '198.18.0.1',
    '::1',
    '::',
    'fe80::1',
    'fe80::abcd:1234%eth0',
    'fc00::1',
    'fd12:3456::1',
    'ff02::1',
    '::ffff:10.0.0.1', // IPv4-mapped private
    '::ffff:127.0.0.1',
    '::ffff:a9fe:a9fe', // ::ffff:169.254.169.254 in hex
    '::ffff:169.254.169.254',
    '64:ff9b::a00:1', // NAT64 of 10.0.0.1
    '2002:c0a8:0101::1', // 6to4 of 192.168.1.1
    '2001:0:4136:e378::1', // Teredo
    '::10.0.0.1', // IPv4-compatible
  ];
  for (const a of forbidden) {
    it(`refuses ${a}`, () => assert.notEqual(forbiddenAddress(a, STRICT_POLICY), null));
  }
  for (const a of [
    '93.184.215.14',
    '1.1.1.1',
    '8.8.8.8',
    '2606:4700:4700::1111',
    '::ffff:8.8.8.8',
    '172.32.0.1',
    '100.128.0.1',
  ]) {
    it(`allows the public address ${a}`, () => assert.equal(forbiddenAddress(a, STRICT_POLICY), null));
  }
  it('dev mode allows loopback only, never private networks or metadata', () => {
    assert.equal(forbiddenAddress('127.0.0.1', DEV), null);
    assert.equal(forbiddenAddress('::1', DEV), null);
    assert.equal(forbiddenAddress('::ffff:127.0.0.1', DEV), null);
    assert.notEqual(forbiddenAddress('10.0.0.1', DEV), null);
    assert.notEqual(forbiddenAddress('169.254.169.254', DEV), null);
  });
  it('reads the IPv4 address inside mapped, NAT64 and 6to4 forms', () => {
    assert.equal(embeddedIpv4('::ffff:10.1.2.3'), '10.1.2.3');
    assert.equal(embeddedIpv4('::ffff:0a01:0203'), '10.1.2.3');
    assert.equal(embeddedIpv4('64:ff9b::0a01:0203'), '10.1.2.3');
    assert.equal(embeddedIpv4('2002:0a01:0203::'), '10.1.2.3');
    assert.equal(embeddedIpv4('2606:4700::1'), undefined);
  });
  it('an allowlisted CIDR or address opens exactly that range', () => {
    const p: SsrfPolicy = { devMode: false, allow: parseAllowList('10.20.0.0/16, 192.168.5.7') };
    assert.equal(forbiddenAddress('10.20.3.4', p), null);
    assert.equal(forbiddenAddress('::ffff:10.20.3.4', p), null);
    assert.notEqual(forbiddenAddress('10.21.0.1', p), null);
    assert.equal(forbiddenAddress('192.168.5.7', p), null);
    assert.notEqual(forbiddenAddress('192.168.5.8', p), null);
  });
  it('the allowlist refuses entries that are neither names, addresses nor ranges', () => {
    for (const bad of ['10.0.0.0/33', 'a b', 'http://x', '10.0.0.0/8/1', 'fd00::/129', 'x/8']) {
      assert.throws(() => parseAllowList(bad), Error, bad);
    }
    assert.deepEqual(parseAllowList(' Hooks.Internal , ,fd00::/8').entries, ['hooks.internal', 'fd00::/8']);
  });
});

describe('SSRF guard: URLs', () => {
  it('only https, unless dev mode (then http too)', () => {
    assert.throws(() => checkUrlShape('http://example.com/h', STRICT_POLICY), /Only https/);
    for (const u of [
      'ftp://example.com/',
      'file:///etc/passwd',
      'gopher://x/',
      'javascript:alert(1)',
      'data:text/plain,x',
    ]) {
      assert.throws(() => checkUrlShape(u, STRICT_POLICY), SsrfError, u);
      assert.throws(() => checkUrlShape(u, DEV), SsrfError, u);
    }
    assert.equal(checkUrlShape('https://example.com:8443/h?x=1', STRICT_POLICY).port, '8443');
    assert.equal(checkUrlShape('http://localhost:3000/h', DEV).hostname, 'localhost');
  });
  it('refuses user info, relative and oversized URLs', () => {
    assert.throws(
      () => checkUrlShape('https://user:pw@example.com/', STRICT_POLICY),
      /user name or password/,
    );
    assert.throws(() => checkUrlShape('https://user@example.com/', STRICT_POLICY), /user name or password/);
    assert.throws(() => checkUrlShape('/relative', STRICT_POLICY), /absolute/);
    assert.throws(() => checkUrlShape(`https://example.com/${'a'.repeat(2100)}`, STRICT_POLICY), /longer/);
  });
  it('refuses hosts that resolve to private, loopback or metadata addresses', async () => {
    const dns = fakeDns({
      'internal.example': ['10.0.0.5'],
      localhost: ['127.0.0.1', '::1'],
      'meta.example': ['169.254.169.254'],
      'mixed.example': ['93.184.215.14', '192.168.0.10'],
      'public.example': ['93.184.215.14'],
      'v6.example': ['fd00::1'],
    });
    assert.equal(
      await refusal(resolveTarget('https://internal.example/h', STRICT_POLICY, dns)),
      'address_forbidden',
    );
    assert.equal(
      await refusal(resolveTarget('https://localhost/h', STRICT_POLICY, dns)),
      'address_forbidden',
    );
    assert.equal(
      await refusal(resolveTarget('https://meta.example/h', STRICT_POLICY, dns)),
      'address_forbidden',
    );
    assert.equal(
      await refusal(resolveTarget('https://mixed.example/h', STRICT_POLICY, dns)),
      'address_forbidden',
    );
    assert.equal(
      await refusal(resolveTarget('https://v6.example/h', STRICT_POLICY, dns)),
      'address_forbidden',
    );
    assert.equal(
      await refusal(resolveTarget('https://nowhere.example/h', STRICT_POLICY, dns)),
      'host_unresolvable',
    );
    assert.equal(
      await refusal(resolveTarget('https://169.254.169.254/latest/meta-data', STRICT_POLICY, dns)),
      'address_forbidden',
    );
    assert.equal(
      await refusal(resolveTarget('https://[::ffff:169.254.169.254]/', STRICT_POLICY, dns)),
      'address_forbidden',
    );
    assert.equal(
      await refusal(resolveTarget('https://0x7f000001/', STRICT_POLICY, dns)),
      'address_forbidden',
    );
    const ok = await resolveTarget('https://public.example/h', STRICT_POLICY, dns);
    assert.equal(ok.address, '93.184.215.14');
    assert.equal(ok.family, 4);
  });
  it('dev mode: http to loopback only; still no private networks', async () => {
    const dns = fakeDns({
      localhost: ['127.0.0.1'],
      'public.example': ['93.184.215.14'],
      'lan.example': ['192.168.1.2'],
    });
    assert.equal((await resolveTarget('http://localhost:4000/h', DEV, dns)).address, '127.0.0.1');
    assert.equal((await resolveTarget('http://127.0.0.1:4000/h', DEV, dns)).address, '127.0.0.1');
    assert.equal(await refusal(resolveTarget('http://public.example/h', DEV, dns)), 'scheme_not_allowed');
    assert.equal(await refusal(resolveTarget('https://lan.example/h', DEV, dns)), 'address_forbidden');
  });
  it('an allowlisted host name may resolve to a private address; https is still required', async () => {
    const dns = fakeDns({ 'hooks.internal': ['10.9.8.7'], 'other.internal': ['10.9.8.8'] });
    const p: SsrfPolicy = { devMode: false, allow: parseAllowList('hooks.internal') };
    assert.equal((await resolveTarget('https://hooks.internal/h', p, dns)).address, '10.9.8.7');
    assert.equal(await refusal(resolveTarget('https://other.internal/h', p, dns)), 'address_forbidden');
    assert.equal(await refusal(resolveTarget('http://hooks.internal/h', p, dns)), 'scheme_not_allowed');
  });
});

describe('retry schedule', () => {
  it('doubles from the base, caps, and jitters within ±20 %', () => {
    const opts = { baseDelayMs: 120_000, maxDelayMs: 86_400_000 };
    assert.equal(
      retryDelayMs(1, opts, () => 0.5),
      120_000,
    );
    assert.equal(
      retryDelayMs(2, opts, () => 0.5),
      240_000,
    );
    assert.equal(
      retryDelayMs(5, opts, () => 0.5),
      120_000 * 16,
    );
    assert.equal(
      retryDelayMs(30, opts, () => 0.5),
      86_400_000,
    );
    assert.equal(
      retryDelayMs(1, opts, () => 0),
      96_000,
    );
    assert.ok(retryDelayMs(1, opts, () => 0.999999) <= 144_000);
    let total = 0;
    for (let n = 1; n < 12; n++) total += retryDelayMs(n, opts, () => 0.5);
    assert.ok(total > 2 * 86_400_000 && total < 3 * 86_400_000, `12 attempts span ${total / 3_600_000} h`);
  });
});

describe('webhook configuration', () => {
  it('dev mode is off by default; the allowlist and interval are read and checked at start-up', () => {
    const d = loadConfig({});
    assert.equal(d.devMode, false);
    assert.deepEqual(d.webhooks, { allowHosts: '', dispatchIntervalMs: 1000 });
    const c = loadConfig({
      BILLVAULT_DEV_MODE: '1',
      BILLVAULT_WEBHOOK_ALLOW_HOSTS: 'hooks.internal,10.0.0.0/8',
      BILLVAULT_WEBHOOK_DISPATCH_INTERVAL_MS: '500',
    });
    assert.equal(c.devMode, true);
    assert.equal(c.webhooks.dispatchIntervalMs, 500);
    assert.deepEqual(parseAllowList(c.webhooks.allowHosts).entries, ['hooks.internal', '10.0.0.0/8']);
    assert.throws(
      () => loadConfig({ BILLVAULT_WEBHOOK_ALLOW_HOSTS: '10.0.0.0/99' }),
      (e: unknown) => e instanceof ConfigError && e.variable === 'BILLVAULT_WEBHOOK_ALLOW_HOSTS',
    );
    assert.throws(() => loadConfig({ BILLVAULT_WEBHOOK_DISPATCH_INTERVAL_MS: '5' }), ConfigError);
  });
});
