import type { Generated } from 'kysely';

/** Row types of the outbound webhook tables (migration 0011). */
export interface WebhookEndpointsTable {
  org_id: string;
  id: string;
  url_enc: string | null;
  url_host: string;
  secret_enc: string | null;
  secret_hint: string;
  description: string | null;
  enabled_events: string[];
  enabled: boolean;
  created_by: string | null;
  created_at: Date;
  updated_at: Date;
  secret_rotated_at: Date | null;
  deleted_at: Date | null;
}

export type WebhookDeliveryStatus = 'pending' | 'failed' | 'succeeded' | 'dead';

export interface WebhookDeliveriesTable {
  org_id: string;
  id: string;
  endpoint_id: string;
  event_id: string;
  event_type: string;
  payload: string;
  status: WebhookDeliveryStatus;
  attempts: Generated<number>;
  next_attempt_at: Date;
  claim_token: string | null;
  last_attempt_at: Date | null;
  last_status_code: number | null;
  last_error: string | null;
  delivered_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

export interface WebhookTables {
  webhook_endpoints: WebhookEndpointsTable;
  webhook_deliveries: WebhookDeliveriesTable;
}
