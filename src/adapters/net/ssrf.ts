import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

/**
 * The SSRF guard of outbound webhooks: which URLs and which resolved addresses the server may
 * call. The checks on a URL's shape and on an address are pure (unit-tested alone); resolution
 * takes an injectable lookup. The sender connects to the very address checked here (see
 * pinnedLookup), so DNS rebinding cannot switch it between the check and the connection.
 */

export interface SsrfPolicy {
  /** Development: plain http and loopback addresses are allowed (never private networks). */
  devMode: boolean;
  /** Explicit exceptions: exact host names, IP addresses or CIDR ranges (BILLVAULT_WEBHOOK_ALLOW_HOSTS). */
  allow: AllowList;
}

export interface AllowList {
  hosts: ReadonlySet<string>;
  ranges: BlockList;
  /** The entries as given, for messages and `doctor`. */
  entries: readonly string[];
}

export type SsrfReason =
  | 'url_invalid'
  | 'scheme_not_allowed'
  | 'userinfo_not_allowed'
  | 'host_unresolvable'
  | 'address_forbidden';

/** A refused URL: the reason is stable; the message names the rule, never the full URL. */
export class SsrfError extends Error {
  constructor(
    public readonly reason: SsrfReason,
    message: string,
  ) {
    super(message);
    this.name = 'SsrfError';
  }
}

export interface ResolvedTarget {
  url: URL;
  /** The address to connect to (the first one resolved; every one resolved was checked). */
  address: string;
  family: 4 | 6;
}

export type Lookup = (hostname: string) => Promise<{ address: string; family: number }[]>;

/** dns.lookup with every address (A and AAAA), as the operating system resolves it. */
export const systemLookup: Lookup = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

const MAX_URL_LENGTH = 2048;

function cidr(list: BlockList, range: string): void {
  const [net, bits] = range.split('/') as [string, string];
  list.addSubnet(net, Number(bits), isIP(net) === 6 ? 'ipv6' : 'ipv4');
}

/** Never reachable from a webhook, whatever the mode: private, shared, link-local, reserved, multicast. */
const FORBIDDEN = new BlockList();
for (const r of [
  '0.0.0.0/8', // "this network"
  '10.0.0.0/8',
  '100.64.0.0/10', // carrier-grade NAT
  '169.254.0.0/16', // link-local, incl. cloud metadata 169.254.169.254
  '172.16.0.0/12',
  '192.0.0.0/24', // IETF protocol assignments
  '192.0.2.0/24', // documentation
  '192.88.99.0/24', // 6to4 relay anycast
  '192.168.0.0/16',
  '198.18.0.0/15', // benchmarking
  '198.51.100.0/24', // documentation
  '203.0.113.0/24', // documentation
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, incl. 255.255.255.255
  '::/128', // unspecified
  '::/96', // IPv4-compatible (deprecated)
  '64:ff9b:1::/48', // local-use NAT64
  '100::/64', // discard
  '2001::/32', // Teredo (the IPv4 inside is obfuscated: refuse it whole)
  '2001:db8::/32', // documentation
  'fc00::/7', // unique local
  'fe80::/10', // link-local
  'fec0::/10', // site-local (deprecated)
  'ff00::/8', // multicast
]) {
  cidr(FORBIDDEN, r);
}

const LOOPBACK = new BlockList();
cidr(LOOPBACK, '127.0.0.0/8');
cidr(LOOPBACK, '::1/128');

/** Parses `host,host,10.0.0.0/8,fd00::/8`: names, addresses and CIDR ranges. */
export function parseAllowList(value: string | undefined): AllowList {
  const hosts = new Set<string>();
  const ranges = new BlockList();
  const entries: string[] = [];
  for (const raw of (value ?? '').split(',')) {
    const entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    const [net, bits, extra] = entry.split('/');
    const family = isIP(net ?? '');
    if (extra !== undefined) throw new Error(`"${entry}" is not a host name, address or CIDR range`);
    if (family !== 0) {
      const max = family === 4 ? 32 : 128;
      const n = bits === undefined ? max : Number(bits);
      if (!Number.isInteger(n) || n < 0 || n > max || (bits !== undefined && !/^\d+$/.test(bits))) {
        throw new Error(`"${entry}" has an invalid prefix length`);
      }
      ranges.addSubnet(net as string, n, family === 4 ? 'ipv4' : 'ipv6');
    } else if (
      bits === undefined &&
      /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/.test(entry)
    ) {
      hosts.add(entry);
    } else {
      throw new Error(`"${entry}" is not a host name, address or CIDR range`);
    }
    entries.push(entry);
  }
  return { hosts, ranges, entries };
}

export const EMPTY_ALLOW_LIST: AllowList = parseAllowList('');

/** The default policy: https only, public addresses only. */
export const STRICT_POLICY: SsrfPolicy = { devMode: false, allow: EMPTY_ALLOW_LIST };

/** The 16 bytes of an IPv6 address (any textual form, including a dotted IPv4 tail). */
function ipv6Bytes(address: string): number[] | undefined {
  let text = address.toLowerCase();
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  const last = text.slice(lastColon + 1);
  if (last.includes('.')) {
    if (isIP(last) !== 4) return undefined;
    tail = last.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((h) => Number.parseInt(h, 16)));
  const head = parse(halves[0] ?? '');
  const rest = halves.length === 2 ? parse(halves[1] ?? '') : [];
  const missing = 8 - head.length - rest.length;
  if (missing < 0 || (halves.length === 1 && missing !== 0)) return undefined;
  const groups = [...head, ...new Array(missing).fill(0), ...rest];
  if (groups.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff)) return undefined;
  const bytes = groups.flatMap((g) => [g >> 8, g & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

/**
 * The IPv4 address an IPv6 address stands for, when it embeds one the network would reach:
 * IPv4-mapped (::ffff:a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002:AABB:CCDD::/48).
 */
export function embeddedIpv4(address: string): string | undefined {
  const b = ipv6Bytes(address);
  if (!b) return undefined;
  const zeros = (from: number, to: number) => b.slice(from, to).every((x) => x === 0);
  if (zeros(0, 10) && b[10] === 0xff && b[11] === 0xff) return b.slice(12, 16).join('.');
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zeros(4, 12))
    return b.slice(12, 16).join('.');
  if (b[0] === 0x20 && b[1] === 0x02) return b.slice(2, 6).join('.');
  return undefined;
}

/**
 * Why an address may not be called (a short phrase), or null when it may. Pure.
 * Loopback is allowed in dev mode only; an allowlisted range overrides everything else.
 */
export function forbiddenAddress(address: string, policy: SsrfPolicy): string | null {
  const family = isIP(address);
  if (family === 0) return 'not an IP address';
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (policy.allow.ranges.check(address, type)) return null;
  if (family === 6) {
    const v4 = embeddedIpv4(address);
    if (v4 !== undefined) {
      if (policy.allow.ranges.check(v4, 'ipv4')) return null;
      const inner = forbiddenAddress(v4, policy);
      return inner && `${inner} (embedded in an IPv6 address)`;
    }
  }
  if (LOOPBACK.check(address, type)) return policy.devMode ? null : 'a loopback address';
  if (FORBIDDEN.check(address, type)) return 'a private, link-local or reserved address';
  return null;
}

/** Checks a URL's shape (scheme, no userinfo, length); returns it parsed. Pure. */
export function checkUrlShape(raw: string, policy: SsrfPolicy): URL {
  if (raw.length > MAX_URL_LENGTH)
    throw new SsrfError('url_invalid', `The URL is longer than ${MAX_URL_LENGTH} characters.`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new SsrfError('url_invalid', 'The URL is not an absolute URL.');
  }
  if (url.protocol !== 'https:' && !(policy.devMode && url.protocol === 'http:')) {
    throw new SsrfError(
      'scheme_not_allowed',
      policy.devMode ? 'Only http and https URLs are allowed.' : 'Only https URLs are allowed.',
    );
  }
  if (url.username !== '' || url.password !== '') {
    throw new SsrfError('userinfo_not_allowed', 'A webhook URL may not carry a user name or password.');
  }
  if (url.hostname === '') throw new SsrfError('url_invalid', 'The URL has no host.');
  return url;
}

/** The host as connect() wants it: IPv6 literals without their brackets. */
export function bareHost(url: URL): string {
  const h = url.hostname;
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}

/**
 * Checks the URL, resolves its host and checks every address it resolves to. Plain http is
 * allowed only in dev mode and only when every address is loopback.
 */
export async function resolveTarget(
  raw: string,
  policy: SsrfPolicy,
  lookup: Lookup = systemLookup,
): Promise<ResolvedTarget> {
  const url = checkUrlShape(raw, policy);
  const host = bareHost(url).toLowerCase().replace(/\.$/, '');
  let addresses: { address: string; family: number }[];
  if (isIP(host) !== 0) {
    addresses = [{ address: host, family: isIP(host) }];
  } else {
    try {
      addresses = await lookup(host);
    } catch {
      throw new SsrfError('host_unresolvable', `The host ${host} does not resolve.`);
    }
    if (addresses.length === 0)
      throw new SsrfError('host_unresolvable', `The host ${host} does not resolve.`);
  }
  const hostAllowed = policy.allow.hosts.has(host);
  for (const a of addresses) {
    const why = hostAllowed ? null : forbiddenAddress(a.address, policy);
    if (why) throw new SsrfError('address_forbidden', `The host ${host} resolves to ${why}.`);
  }
  if (url.protocol === 'http:') {
    const allLoopback = addresses.every((a) => {
      const v4 = isIP(a.address) === 6 ? embeddedIpv4(a.address) : undefined;
      const x = v4 ?? a.address;
      return LOOPBACK.check(x, isIP(x) === 4 ? 'ipv4' : 'ipv6');
    });
    if (!allLoopback)
      throw new SsrfError(
        'scheme_not_allowed',
        'Plain http is allowed to loopback addresses only (dev mode).',
      );
  }
  const first = addresses[0] as { address: string; family: number };
  return { url, address: first.address, family: first.family === 6 ? 6 : 4 };
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | { address: string; family: number }[],
  family?: number,
) => void;

/**
 * A `lookup` for http(s).request that answers with the checked address only, whatever the
 * name: the connection goes where the guard looked, and TLS still verifies the host name.
 */
export function pinnedLookup(target: ResolvedTarget) {
  return (_hostname: string, options: { all?: boolean } | number | undefined, callback: LookupCallback) => {
    const all = typeof options === 'object' && options !== null && options.all === true;
    if (all) callback(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  };
}
