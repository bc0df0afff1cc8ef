import type { ColumnType, Generated } from 'kysely';
import type { BillingTables } from './schema-billing.js';
import type { WebhookTables } from './schema-webhooks.js';

/** Row types of the tables, for the typed query builder. One interface per table. */
export interface OrgsTable {
  id: string;
  name: string;
  base_currency: string;
  created_at: Generated<Date>;
}

export interface OrgSettingsTable {
  org_id: string;
  key: string;
  value: ColumnType<unknown, string, string>;
  updated_at: Generated<Date>;
}

export interface AuditEventsTable {
  id: string;
  org_id: string | null;
  occurred_at: Generated<Date>;
  actor_type: string;
  actor_id: string | null;
  session_id: string | null;
  action: string;
  target_type: string | null;
  target_id: string | null;
  outcome: 'success' | 'denied' | 'failed';
  request_id: string | null;
  ip: string | null;
  user_agent: string | null;
  details: ColumnType<Record<string, unknown>, string, string>;
  /** SHA-256 of the canonical encoding (migration 0007); set by the database on insert (v3, migration 0016). */
  content_hash: ColumnType<string | null, string | null | undefined, never>;
  /**
   * 1: JavaScript canonical JSON (0007); 2: the database's text of one array of the columns (0015);
   * 3: the length-prefixed fields as binary COPY sends them (0016).
   */
  hash_version: ColumnType<number, number | undefined, never>;
}

export interface SchemaMigrationsTable {
  version: number;
  name: string;
  checksum: string;
  applied_at: Generated<Date>;
}

export type KeyStatus = 'active' | 'decrypt_only' | 'destroyed';

export interface OrgKeyVersionsTable {
  org_id: string;
  version: number;
  status: KeyStatus;
  master_key_id: string;
  wrapped_key: Buffer | null;
  created_at: Generated<Date>;
  retired_at: Date | null;
  destroyed_at: Date | null;
}

export interface OrgDataKeysTable {
  org_id: string;
  id: string;
  purpose: 'data' | 'blind_index';
  subject_type: 'org' | 'customer' | 'user';
  subject_id: string;
  kek_version: number;
  status: KeyStatus;
  wrapped_key: Buffer | null;
  usage_count: Generated<bigint>;
  created_at: Generated<Date>;
  retired_at: Date | null;
  destroyed_at: Date | null;
}

export interface PlatformKeyVersionsTable {
  version: number;
  status: KeyStatus;
  master_key_id: string;
  wrapped_key: Buffer | null;
  created_at: Generated<Date>;
  retired_at: Date | null;
  destroyed_at: Date | null;
}

export interface PlatformDataKeysTable {
  id: string;
  purpose: 'data' | 'blind_index';
  subject_type: 'platform' | 'customer' | 'user';
  subject_id: string;
  kek_version: number;
  status: KeyStatus;
  wrapped_key: Buffer | null;
  usage_count: Generated<bigint>;
  created_at: Generated<Date>;
  retired_at: Date | null;
  destroyed_at: Date | null;
}

export interface OrgContactsTable {
  org_id: string;
  id: string;
  kind: 'billing' | 'privacy' | 'security';
  name_enc: string;
  email_enc: string | null;
  email_bidx: string | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

// --- Identity (migrations/0003_identity.sql) ---
export interface UsersTable {
  id: string;
  email: string;
  password_hash: string | null;
  password_changed_at: Date | null;
  failed_logins: Generated<number>;
  locked_until: Date | null;
  disabled_at: Date | null;
  totp_secret_enc: string | null;
  totp_enabled_at: Date | null;
  totp_last_step: bigint | null;
  webauthn_user_handle: Buffer;
  created_at: Date;
  updated_at: Date;
}

export interface MembershipsTable {
  org_id: string;
  id: string;
  user_id: string;
  role: string;
  disabled_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

export interface RecoveryCodesTable {
  user_id: string;
  id: string;
  code_hash: string;
  used_at: Date | null;
  created_at: Date;
}

export interface WebauthnCredentialsTable {
  user_id: string;
  id: string;
  name: string;
  public_key: Buffer;
  counter: ColumnType<bigint, bigint | number, bigint | number>;
  transports: ColumnType<string[], string[], string[]>;
  aaguid: string | null;
  created_at: Date;
  last_used_at: Date | null;
}

export interface AuthChallengesTable {
  id: string;
  kind: 'mfa' | 'webauthn_register' | 'webauthn_login' | 'password_reset';
  user_id: string | null;
  org_id: string | null;
  secret_hash: string;
  challenge: string | null;
  attempts: Generated<number>;
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
}

export interface AuthThrottleTable {
  key: string;
  failures: number;
  window_started_at: Date;
}

export interface SessionsTable {
  org_id: string;
  id: string;
  user_id: string;
  token_hash: string;
  created_at: Date;
  last_seen_at: Date;
  authenticated_at: Date;
  expires_at: Date;
  idle_seconds: number;
  mfa: boolean;
  restricted: Generated<boolean>;
  ip: string | null;
  user_agent: string | null;
  revoked_at: Date | null;
  revoked_reason: string | null;
}

export interface ApiKeysTable {
  org_id: string;
  id: string;
  name: string;
  secret_hash: string;
  secret_hint: string;
  role: string;
  scopes: string[] | null;
  created_by: string | null;
  created_at: Date;
  expires_at: Date | null;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

export interface InvitationsTable {
  org_id: string;
  id: string;
  email: string;
  role: string;
  token_hash: string;
  invited_by: string | null;
  created_at: Date;
  expires_at: Date;
  accepted_at: Date | null;
  revoked_at: Date | null;
}

export interface BreakGlassGrantsTable {
  org_id: string;
  id: string;
  user_id: string;
  role: string;
  reason: string;
  granted_by: string | null;
  created_at: Date;
  expires_at: Date;
  revoked_at: Date | null;
}

export interface OutboxTable {
  id: string;
  org_id: string | null;
  user_id: string | null;
  kind: string;
  payload: ColumnType<Record<string, unknown>, string, string>;
  created_at: Date;
  sent_at: Date | null;
}

export interface DB extends BillingTables, WebhookTables {
  orgs: OrgsTable;
  org_settings: OrgSettingsTable;
  audit_events: AuditEventsTable;
  schema_migrations: SchemaMigrationsTable;
  org_key_versions: OrgKeyVersionsTable;
  org_data_keys: OrgDataKeysTable;
  platform_key_versions: PlatformKeyVersionsTable;
  platform_data_keys: PlatformDataKeysTable;
  org_contacts: OrgContactsTable;
  users: UsersTable;
  memberships: MembershipsTable;
  recovery_codes: RecoveryCodesTable;
  webauthn_credentials: WebauthnCredentialsTable;
  auth_challenges: AuthChallengesTable;
  auth_throttle: AuthThrottleTable;
  sessions: SessionsTable;
  api_keys: ApiKeysTable;
  invitations: InvitationsTable;
  break_glass_grants: BreakGlassGrantsTable;
  outbox: OutboxTable;
}
