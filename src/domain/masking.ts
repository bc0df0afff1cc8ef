/**
 * PII masking for roles without `customers:read_pii`: enough to recognise a record, not enough
 * to learn who it is. Masked values are never the input to anything but display.
 */

const STAR = '*';

/** "Jane Doe" → "J*** D***". */
export function maskName(value: string): string {
  return value
    .split(/\s+/)
    .filter(Boolean)
    .map((w) => `${[...w][0] ?? ''}${STAR.repeat(3)}`)
    .join(' ');
}

/** "jane@example.com" → "j***@e***.com". */
export function maskEmail(value: string): string {
  const at = value.lastIndexOf('@');
  if (at < 1) return maskName(value);
  const local = value.slice(0, at);
  const domain = value.slice(at + 1);
  const dot = domain.lastIndexOf('.');
  const host = dot > 0 ? domain.slice(0, dot) : domain;
  const tld = dot > 0 ? domain.slice(dot) : '';
  return `${[...local][0] ?? ''}${STAR.repeat(3)}@${[...host][0] ?? ''}${STAR.repeat(3)}${tld}`;
}

/** Keeps only the last `keep` characters: "+44 20 7946 0958" → "***58". */
export function maskTail(value: string, keep = 2): string {
  const chars = [...value.replace(/\s+/g, '')];
  if (chars.length <= keep) return STAR.repeat(3);
  return `${STAR.repeat(3)}${chars.slice(-keep).join('')}`;
}

/** Free text (notes, address lines): nothing of it is shown. */
export function maskText(_value: string): string {
  return STAR.repeat(3);
}
