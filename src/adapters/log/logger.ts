import pino, { type DestinationStream, type Logger } from 'pino';

/** Fields never written to a log, wherever they appear. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-csrf-token"]',
  'res.headers["set-cookie"]',
  'password',
  '*.password',
  '*.new_password',
  '*.current_password',
  'secret',
  '*.secret',
  'token',
  '*.token',
  '*.mfa_token',
  '*.code',
  '*.recovery_code',
  '*.totp_secret',
  '*.api_key',
  '*.master_key',
  '*.passphrase',
  'databaseUrl',
  '*.databaseUrl',
  '*.adminUrl',
];

export type { Logger };

/**
 * Strips the query string (URLs may carry identifiers we do not want in logs) and masks long
 * digit runs in the path: the access log is written before the card-number guard refuses one.
 */
export function pathOnly(url: string | undefined): string | undefined {
  if (!url) return url;
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const masked = path.replace(/\d(?:[\d ._%-]|%20){11,}\d/g, '[digits]');
  return q === -1 ? masked : `${masked}?…`;
}

/** The structured JSON logger, with the redaction list and PII-free request serializers. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'billvault' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: {
        req: (req: { id?: string; method?: string; url?: string; ip?: string }) => ({
          id: req.id,
          method: req.method,
          url: pathOnly(req.url),
        }),
        res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
        err: pino.stdSerializers.err,
      },
    },
    destination,
  );
}
