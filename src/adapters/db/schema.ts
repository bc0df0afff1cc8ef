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

export interface DB {
  orgs: OrgsTable;
  org_settings: OrgSettingsTable;
  audit_events: AuditEventsTable;
  schema_migrations: SchemaMigrationsTable;
}
