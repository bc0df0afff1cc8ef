import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DomainError } from '../domain/errors.js';

/**
 * The card-number guard (DESIGN.md §5 Card data): Billvault never receives a primary account
 * number. Any request whose body, query or path holds a Luhn-valid 13–19 digit number (digits
 * may be grouped with spaces or dashes) outside a declared token field is refused with 422
 * `card_number_not_allowed`. The error names the field, never the number, and nothing logs it.
 */

/**
 * Fields exempt everywhere: a payment gateway's token (never a card number), and secrets the
 * user chooses (passwords, webhook signing secrets). Secrets are hashed or encrypted, never
 * echoed, and may legitimately hold any run of digits; refusing one would only make a strong
 * random secret fail now and then.
 */
export const TOKEN_FIELDS: ReadonlySet<string> = new Set([
  'gateway_token',
  'payment_method_token',
  'password',
  'current_password',
  'new_password',
  'webhook_secret',
  'previous_webhook_secret',
]);

/** Per route: `config: { cardGuard: { exempt: ['field'] } }` adds token fields; `false` turns the guard off (signed gateway webhooks). */
export type CardGuardConfig = false | { exempt: readonly string[] };

declare module 'fastify' {
  interface FastifyContextConfig {
    cardGuard?: CardGuardConfig;
  }
}

/** Luhn (mod 10) check of a string of digits. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return digits.length > 0 && sum % 10 === 0;
}

// Digit groups separated by at most two spaces or dashes.
const DIGIT_RUN = /\d+(?:[ \-\u00a0]{1,2}\d+)*/g;

/**
 * True when the text holds something that looks like a card number: a run of digit groups of
 * which some consecutive groups total 13 to 19 digits and pass the Luhn check. An unbroken run
 * of more than 19 digits is a reference number, not a card.
 */
export function containsCardNumber(text: string): boolean {
  if (text.length < 13) return false;
  for (const m of text.matchAll(DIGIT_RUN)) {
    const groups = m[0].split(/[ \-\u00a0]+/);
    const total = groups.reduce((n, g) => n + g.length, 0);
    if (total < 13) continue;
    for (let start = 0; start < groups.length; start++) {
      let digits = '';
      for (let end = start; end < groups.length; end++) {
        digits += groups[end];
        if (digits.length > 19) break;
        if (digits.length >= 13 && luhnValid(digits)) return true;
      }
    }
  }
  return false;
}

/**
 * Walks any JSON-like value (iteratively: hostile nesting cannot overflow the stack) and
 * returns the path of the first string, number or key that holds a card number.
 */
export function findCardNumber(
  value: unknown,
  exempt: ReadonlySet<string> = TOKEN_FIELDS,
): string | undefined {
  const stack: { v: unknown; path: string }[] = [{ v: value, path: '' }];
  let visited = 0;
  while (stack.length > 0) {
    const { v, path } = stack.pop()!;
    if (++visited > 1_000_000) return path || 'body';
    if (typeof v === 'string') {
      if (containsCardNumber(v)) return path || 'body';
    } else if (typeof v === 'number' || typeof v === 'bigint') {
      const s =
        typeof v === 'number' && !Number.isSafeInteger(v) ? BigInt(Math.trunc(v)).toString() : String(v);
      if (containsCardNumber(s)) return path || 'body';
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--)
        stack.push({ v: v[i], path: path ? `${path}.${i}` : String(i) });
    } else if (v !== null && typeof v === 'object') {
      for (const [k, child] of Object.entries(v)) {
        const childPath = path ? `${path}.${k}` : k;
        if (containsCardNumber(k)) return path || 'body';
        if (exempt.has(k)) continue;
        stack.push({ v: child, path: childPath });
      }
    }
  }
  return undefined;
}

function check(request: FastifyRequest): void {
  const config = request.routeOptions.config?.cardGuard;
  if (config === false) return;
  const exempt = config ? new Set([...TOKEN_FIELDS, ...config.exempt]) : TOKEN_FIELDS;
  for (const [where, value] of [
    ['body', request.body],
    ['query', request.query],
    ['params', request.params],
  ] as const) {
    if (value === undefined || value === null) continue;
    const path = findCardNumber(value, exempt);
    if (path !== undefined) {
      throw new DomainError(
        'card_number_not_allowed',
        'Card numbers must never be sent to Billvault: send the payment gateway token instead.',
        where === 'body' ? path : `${where}.${path}`,
      );
    }
  }
}

/** Installs the guard as a preValidation hook: it sees the parsed input before any handler. */
export function registerCardGuard(app: Pick<FastifyInstance, 'addHook'>): void {
  app.addHook('preValidation', async (request) => {
    check(request);
  });
}
