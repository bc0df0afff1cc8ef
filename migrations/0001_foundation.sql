-- Foundation: the application role, orgs, the Row-Level Security pattern, the audit table.
--
-- THE RLS PATTERN every org-scoped table copies:
--   1. org_id text NOT NULL REFERENCES orgs(id), leading the primary key and every unique
--      and foreign key: PRIMARY KEY (org_id, id), FOREIGN KEY (org_id, x_id) REFERENCES x (org_id, id).
--   2. ALTER TABLE t ENABLE ROW LEVEL SECURITY; ALTER TABLE t FORCE ROW LEVEL SECURITY;
--   3. CREATE POLICY org_isolation ON t
--        USING (org_id = current_setting('app.org_id', true))
--        WITH CHECK (org_id = current_setting('app.org_id', true));
--   4. GRANT only the verbs the application needs TO billvault_app.
-- Business transactions run as billvault_app (src/adapters/db/tx.ts) with app.org_id set
-- per transaction, so a query that forgets its org filter still sees one org only.

DO $$
BEGIN
  CREATE ROLE billvault_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
EXCEPTION
  WHEN duplicate_object OR unique_violation THEN NULL; -- roles are cluster-wide; another database made it
END
$$;

-- The connecting (owner) role must be able to SET ROLE to the application role.
DO $$
BEGIN
  IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    EXECUTE format('GRANT billvault_app TO %I', current_user);
  END IF;
EXCEPTION
  WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

GRANT USAGE ON SCHEMA public TO billvault_app;

CREATE TABLE orgs (
  id text PRIMARY KEY CHECK (id ~ '^org_[0-9a-z]{32}$'),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  base_currency char(3) NOT NULL CHECK (base_currency ~ '^[A-Z]{3}$'),
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE orgs ENABLE ROW LEVEL SECURITY;
ALTER TABLE orgs FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON orgs
  USING (id = current_setting('app.org_id', true))
  WITH CHECK (id = current_setting('app.org_id', true));
GRANT SELECT, INSERT, UPDATE ON orgs TO billvault_app;

-- The example table of the pattern: per-org settings.
CREATE TABLE org_settings (
  org_id text NOT NULL REFERENCES orgs (id),
  key text NOT NULL CHECK (key ~ '^[a-z][a-z0-9_.]{0,63}$'),
  value jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, key)
);
ALTER TABLE org_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE org_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON org_settings
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON org_settings TO billvault_app;

-- Append-only audit trail. org_id is null only for events with no org (e.g. a failed login
-- for an unknown email). The tamper-evident chain is added by a later migration.
CREATE TABLE audit_events (
  id text PRIMARY KEY CHECK (id ~ '^evt_[0-9a-z]{32}$'),
  org_id text REFERENCES orgs (id),
  occurred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor_type text NOT NULL CHECK (actor_type IN ('user', 'api_key', 'system', 'anonymous')),
  actor_id text,
  session_id text,
  action text NOT NULL CHECK (action ~ '^[a-z_]+(\.[a-z_]+)+$'),
  target_type text,
  target_id text,
  outcome text NOT NULL CHECK (outcome IN ('success', 'denied', 'failed')),
  request_id text,
  ip text,
  user_agent text,
  details jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_events_org_time ON audit_events (org_id, occurred_at, id);
CREATE INDEX audit_events_org_target ON audit_events (org_id, target_type, target_id);
ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_read ON audit_events FOR SELECT
  USING (org_id = current_setting('app.org_id', true));
CREATE POLICY audit_append ON audit_events FOR INSERT
  WITH CHECK (org_id IS NULL OR org_id = current_setting('app.org_id', true));
-- The application role may only append and read: no UPDATE, DELETE or TRUNCATE.
GRANT SELECT, INSERT ON audit_events TO billvault_app;

-- Even the owner cannot rewrite history by accident: updates, deletes and truncation raise.
CREATE FUNCTION audit_events_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_immutable();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_immutable();
