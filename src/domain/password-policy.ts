/**
 * Password rules of DESIGN.md §5 (NIST SP 800-63B style): length 12 to 128 characters, no
 * composition rules, and never a common or breached password or one built on the user's own
 * identifiers. Pure: the list of common passwords is handed in by the caller.
 */
export const PASSWORD_MIN_LENGTH = 12;
export const PASSWORD_MAX_LENGTH = 128;

export type PasswordProblem = 'too_short' | 'too_long' | 'common' | 'contextual' | 'repetitive';

export interface PasswordCheckInput {
  password: string;
  /** True when the (lower-cased) candidate is on the bundled list of common passwords. */
  isCommon: (lowercased: string) => boolean;
  /** Words specific to this user or service that must not make up the password (email, org name). */
  context?: readonly string[];
}

/** Normalises a password the same way before hashing and before checking (Unicode NFKC). */
export function normalizePassword(password: string): string {
  return password.normalize('NFKC');
}

/** Length in user-perceived code points, not UTF-16 units. */
export function passwordLength(password: string): number {
  return [...normalizePassword(password)].length;
}

function stripDecorations(s: string): string {
  // "Password2024!" is still "password": drop the digits and symbols people tack on.
  return s.replace(/^[^\p{L}]+/u, '').replace(/[^\p{L}]+$/u, '');
}

/** Returns the first problem with a candidate password, or null when it is acceptable. */
export function checkPassword(input: PasswordCheckInput): PasswordProblem | null {
  const pw = normalizePassword(input.password);
  const len = [...pw].length;
  if (len < PASSWORD_MIN_LENGTH) return 'too_short';
  if (len > PASSWORD_MAX_LENGTH) return 'too_long';
  const lower = pw.toLowerCase();
  if (new Set(lower).size <= 2) return 'repetitive';
  if (input.isCommon(lower)) return 'common';
  const stripped = stripDecorations(lower);
  if (stripped.length >= 4 && stripped !== lower && input.isCommon(stripped)) return 'common';
  // A common password repeated ("dragondragondragon") is as weak as the word itself.
  for (let size = 1; size <= lower.length / 2; size++) {
    if (lower.length % size !== 0) continue;
    const unit = lower.slice(0, size);
    if (unit.repeat(lower.length / size) === lower && (size <= 3 || input.isCommon(unit)))
      return 'repetitive';
  }
  for (const word of input.context ?? []) {
    const w = word.toLowerCase().trim();
    if (w.length >= 4 && (stripped === w || lower === w || (w.length >= 6 && lower.includes(w)))) {
      return 'contextual';
    }
  }
  return null;
}

/** A safe, user-facing explanation for each problem (never echoes the password). */
export const PASSWORD_PROBLEM_MESSAGES: Readonly<Record<PasswordProblem, string>> = {
  too_short: `The password must be at least ${PASSWORD_MIN_LENGTH} characters long.`,
  too_long: `The password must be at most ${PASSWORD_MAX_LENGTH} characters long.`,
  common: 'This password is too common: it appears in lists of breached passwords. Choose another.',
  contextual: 'The password must not be built from your email address or the organisation name.',
  repetitive: 'The password is a repetition of a few characters or of a common word. Choose another.',
};
