import type { ColumnType, Generated } from 'kysely';

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

export interface DB {
  orgs: OrgsTable;
  org_settings: OrgSettingsTable;
  audit_events: AuditEventsTable;
  schema_migrations: SchemaMigrationsTable;
  org_key_versions: OrgKeyVersionsTable;
  org_data_keys: OrgDataKeysTable;
  platform_key_versions: PlatformKeyVersionsTable;
  platform_data_keys: PlatformDataKeysTable;
  org_contacts: OrgContactsTable;
}
