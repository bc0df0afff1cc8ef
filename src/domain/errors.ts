/**
 * Stable error codes. Clients rely on them; add new ones, never rename.
 * Each code maps to exactly one HTTP status in src/http/errors.ts (the map is exhaustive).
 */
export const ERROR_CODES = [
  // 400: malformed request
  'bad_request',
  'invalid_json',
  'payload_too_large',
  'signature_invalid',
  // 401
  'unauthenticated',
  'invalid_credentials',
  // 403
  'forbidden',
  'csrf_failed',
  'step_up_required',
  'mfa_enrolment_required',
  'refund_self_approval',
  // 404
  'not_found',
  // 409
  'conflict',
  'idempotency_key_reused',
  'invoice_not_draft',
  'invoice_not_open',
  'invoice_has_payments',
  'invoice_credit_outstanding',
  'quote_not_draft',
  'quote_not_sent',
  'quote_expired',
  'quote_not_accepted',
  'refund_not_pending',
  'allocation_already_unapplied',
  'customer_erased',
  'legal_hold',
  // 422: well-formed but invalid
  'validation_failed',
  'currency_unknown',
  'currency_mismatch',
  'amount_invalid',
  'rate_invalid',
  'quantity_invalid',
  'allocation_invalid',
  'password_rejected',
  'token_invalid',
  'card_number_not_allowed',
  'date_invalid',
  'tax_rate_invalid',
  'tax_inclusive_mixed',
  'discount_invalid',
  'invoice_empty',
  'amount_exceeds_remaining',
  'credit_exceeds_remaining',
  'numbering_pattern_invalid',
  'credit_insufficient',
  'amount_exceeds_refundable',
  'ledger_entry_invalid',
  'webhook_url_forbidden',
  // 429
  'rate_limited',
  // 500
  'internal_error',
  'ledger_unbalanced',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** The one error type of the domain and use cases: a stable code, a safe message, and the offending param. */
export class DomainError extends Error {
  constructor(
    public readonly code: ErrorCode,
    message: string,
    public readonly param?: string,
    public readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

/** True when the value is a DomainError carrying the given code. */
export function isDomainError(e: unknown, code?: ErrorCode): e is DomainError {
  return e instanceof DomainError && (code === undefined || e.code === code);
}
