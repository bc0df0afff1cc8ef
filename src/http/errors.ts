import type { ErrorCode } from '../domain/errors.js';

/** The one exhaustive map from stable error codes to HTTP statuses (a new code must be placed here). */
export const STATUS_BY_CODE: Record<ErrorCode, number> = {
  bad_request: 400,
  invalid_json: 400,
  payload_too_large: 413,
  signature_invalid: 400,
  unauthenticated: 401,
  invalid_credentials: 401,
  forbidden: 403,
  csrf_failed: 403,
  step_up_required: 403,
  mfa_enrolment_required: 403,
  refund_self_approval: 403,
  not_found: 404,
  conflict: 409,
  idempotency_key_reused: 409,
  invoice_not_draft: 409,
  invoice_not_open: 409,
  invoice_credit_outstanding: 409,
  invoice_has_payments: 409,
  quote_not_draft: 409,
  quote_not_sent: 409,
  quote_expired: 409,
  quote_not_accepted: 409,
  refund_not_pending: 409,
  allocation_already_unapplied: 409,
  customer_erased: 409,
  legal_hold: 409,
  validation_failed: 422,
  currency_unknown: 422,
  currency_mismatch: 422,
  amount_invalid: 422,
  rate_invalid: 422,
  quantity_invalid: 422,
  allocation_invalid: 422,
  password_rejected: 422,
  token_invalid: 422,
  card_number_not_allowed: 422,
  date_invalid: 422,
  tax_rate_invalid: 422,
  tax_inclusive_mixed: 422,
  discount_invalid: 422,
  invoice_empty: 422,
  amount_exceeds_remaining: 422,
  credit_exceeds_remaining: 422,
  numbering_pattern_invalid: 422,
  credit_insufficient: 422,
  amount_exceeds_refundable: 422,
  webhook_url_forbidden: 422,
  ledger_entry_invalid: 500,
  rate_limited: 429,
  internal_error: 500,
  ledger_unbalanced: 500,
};

const TYPE_BY_STATUS: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'invalid_request_error',
  409: 'conflict_error',
  413: 'invalid_request_error',
  422: 'validation_error',
  429: 'rate_limit_error',
  500: 'api_error',
};

export interface ErrorBody {
  error: { type: string; code: ErrorCode; message: string; param?: string; request_id: string };
}

/** Builds the error shape of DESIGN.md §6. */
export function errorBody(code: ErrorCode, message: string, requestId: string, param?: string): ErrorBody {
  const status = STATUS_BY_CODE[code];
  return {
    error: {
      type: TYPE_BY_STATUS[status] ?? 'api_error',
      code,
      message,
      ...(param ? { param } : {}),
      request_id: requestId,
    },
  };
}
